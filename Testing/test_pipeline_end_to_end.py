"""`iacseg segment` / `batch` / `relabel` / `evaluate` / `models` end to end with the bundled demo models."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from iacseg.cli.main import main
from iacseg.core.contracts import (LABELS_FILE, LANDMARKS, LANDMARKS_FILE, REPORT_CSV, REPORT_JSON,
    SEGMENTATION_FILE, SEGMENTS, TRUTH_LABELS_FILE)
from iacseg.outputs.markups import read_landmarks, write_landmarks


@pytest.fixture(scope="module")
def phantom_case(tmp_path_factory) -> Path:
    from iacseg.phantom import generate_cases

    root = tmp_path_factory.mktemp("truth")
    (case,) = generate_cases(root, 70101, 1, slice_mm=2.5)
    return case


@pytest.fixture(scope="module")
def segmented(phantom_case, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pred") / phantom_case.name
    assert main(["segment", str(phantom_case / "ct.nii.gz"), "-o", str(out), "--progress", "none",
                 "--device", "cpu"]) == 0
    return out


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_segment_writes_every_contract_file_on_the_ct_grid(segmented, phantom_case):
    for name in (LABELS_FILE, SEGMENTATION_FILE, LANDMARKS_FILE, REPORT_JSON, REPORT_CSV):
        assert (segmented / name).is_file(), name
    ct = sitk.ReadImage(str(phantom_case / "ct.nii.gz"))
    labels = sitk.ReadImage(str(segmented / LABELS_FILE))
    assert labels.GetSize() == ct.GetSize()
    assert np.allclose(labels.GetOrigin(), ct.GetOrigin()) and np.allclose(labels.GetDirection(), ct.GetDirection())
    values = set(np.unique(sitk.GetArrayFromImage(labels)).tolist())
    assert values <= set(range(9)) and len(values) > 1
    assert set(read_landmarks(segmented / LANDMARKS_FILE)) == set(LANDMARKS)


def test_report_volumes_equal_label_map_volumes(segmented):
    report = json.loads((segmented / REPORT_JSON).read_text())
    labels = _array(segmented / LABELS_FILE)
    voxel = float(np.prod(sitk.ReadImage(str(segmented / LABELS_FILE)).GetSpacing()))
    for value, name in SEGMENTS.items():
        assert report["segments"][name]["volume_mm3"] == pytest.approx((labels == value).sum() * voxel)
    assert report["total"]["volume_mm3"] == pytest.approx((labels > 0).sum() * voxel)
    rows = list(csv.DictReader((segmented / REPORT_CSV).open()))
    assert [r["segment"] for r in rows[:8]] == list(SEGMENTS.values())
    assert {m["kind"] for m in report["models"]} == {"segmenter", "landmarks"}
    assert all(len(m["sha256"]) == 64 for m in report["models"])


def test_demo_models_find_the_phantom_calcium_and_landmarks(segmented, phantom_case, tmp_path):
    from iacseg.evaluate import evaluate_folders

    result = evaluate_folders(segmented.parent, phantom_case.parent)["summary"]
    assert result["mean_dice"] > 0.7
    assert result["mean_label_accuracy"] > 0.9
    assert result["landmark_mean_error_slices"] <= 1.0
    assert result["report_volumes_match"] is True


def test_jsonl_progress_is_machine_readable(phantom_case, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(phantom_case / "ct.nii.gz"), "-o", str(out), "--progress", "jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    stages = [r["stage"] for r in lines]
    assert {"read", "preprocess", "landmarks", "segment", "write"} <= set(stages)
    assert stages[-1] == "done" and lines[-1]["fraction"] == 1.0
    assert all(0.0 <= r["fraction"] <= 1.0 and "message" in r for r in lines)


def test_relabel_with_a_moved_landmark_moves_labels_between_segments(segmented, phantom_case, tmp_path):
    landmarks = read_landmarks(segmented / LANDMARKS_FILE)
    labels = _array(segmented / LABELS_FILE)
    # Move both anterior clinoid planes far down, below the petrolingual plane's neighbour: every cavernous
    # voxel above the new height must become supraclinoid, and the reader is told nothing was lost.
    for side in "LR":
        lm = landmarks[f"{side}_anterior_clinoid"]
        lm.z_mm = landmarks[f"{side}_petrolingual"].z_mm + 0.5
        lm.position = (lm.position[0], lm.position[1], lm.z_mm)
    corrected = tmp_path / "corrected.mrk.json"
    write_landmarks(corrected, landmarks.values())
    out = tmp_path / "relabelled"
    assert main(["relabel", "--mask", str(segmented / LABELS_FILE), "--landmarks", str(corrected),
                 "-o", str(out), "--ct", str(phantom_case / "ct.nii.gz")]) == 0
    new = _array(out / LABELS_FILE)
    assert ((new > 0) == (labels > 0)).all()  # the same calcium, only labels change
    assert (new == 3).sum() + (new == 7).sum() < (labels == 3).sum() + (labels == 7).sum()
    assert (new == 4).sum() + (new == 8).sum() > (labels == 4).sum() + (labels == 8).sum()
    report = json.loads((out / REPORT_JSON).read_text())
    assert report["landmarks"]["L_anterior_clinoid"]["z_mm"] == pytest.approx(landmarks["L_anterior_clinoid"].z_mm)


def test_relabel_refuses_landmarks_out_of_order(segmented, tmp_path, capsys):
    landmarks = read_landmarks(segmented / LANDMARKS_FILE)
    lm = landmarks["R_carotid_canal"]
    lm.position = (lm.position[0], lm.position[1], landmarks["R_anterior_clinoid"].z_mm + 10)
    bad = tmp_path / "bad.mrk.json"
    write_landmarks(bad, landmarks.values())
    code = main(["relabel", "--mask", str(segmented / LABELS_FILE), "--landmarks", str(bad), "-o", str(tmp_path / "o")])
    assert code == 2 and "out of order" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_batch_records_failures_goes_on_and_skips_finished_cases(phantom_case, tmp_path, capsys):
    inputs = tmp_path / "cases"
    inputs.mkdir()
    (inputs / "good").symlink_to(phantom_case, target_is_directory=True)
    (inputs / "broken.nii.gz").write_bytes(b"not an image at all")
    out = tmp_path / "results"
    assert main(["batch", str(inputs), "-o", str(out), "--progress", "none"]) == 1
    rows = {r["case"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert rows["good"]["status"] == "done" and float(rows["good"]["total_volume_mm3"]) > 0
    assert rows["broken"]["status"] == "failed" and "broken.nii.gz" in rows["broken"]["error"]
    assert (out / "good" / REPORT_JSON).is_file() and not (out / "broken").exists()
    before = (out / "good" / REPORT_JSON).stat().st_mtime_ns
    capsys.readouterr()
    main(["batch", str(inputs), "-o", str(out), "--progress", "none"])
    assert "1 skipped" in capsys.readouterr().err
    assert (out / "good" / REPORT_JSON).stat().st_mtime_ns == before


def test_evaluate_and_models_commands(segmented, phantom_case, capsys):
    assert main(["evaluate", "--pred", str(segmented.parent), "--truth", str(phantom_case.parent)]) == 0
    assert "mean Dice" in capsys.readouterr().out
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "unet-demo" in listing and "dst-demo" in listing


@pytest.mark.slow
def test_tilted_dicom_series_is_segmented_on_the_corrected_grid(tmp_path):
    from iacseg.evaluate import evaluate_folders
    from iacseg.phantom import generate_cases

    (case,) = generate_cases(tmp_path / "truth", 70102, 1, slice_mm=2.5, tilt_deg=18.0, dicom=True)
    out = tmp_path / "pred" / case.name
    assert main(["segment", str(case / "dicom"), "-o", str(out), "--progress", "none", "--device", "cpu"]) == 0
    truth = sitk.ReadImage(str(case / TRUTH_LABELS_FILE))
    pred = sitk.ReadImage(str(out / LABELS_FILE))
    assert pred.GetSize() == truth.GetSize()
    assert np.allclose(pred.GetDirection(), truth.GetDirection(), atol=1e-3)
    assert np.allclose(pred.GetOrigin(), truth.GetOrigin(), atol=0.05)
    report = json.loads((out / REPORT_JSON).read_text())
    assert any("tilt" in c for c in report["acquisition"]["corrections"])
    summary = evaluate_folders(out.parent, case.parent)["summary"]
    assert summary["mean_dice"] > 0.6 and summary["landmark_mean_error_slices"] <= 1.5
