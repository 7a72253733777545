"""Output folder: seg.nrrd round trip, atomic writes, report files, resource files in step with the contracts."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from iacseg.core.contracts import (LABELS_FILE, LANDMARKS_FILE, REPORT_CSV, REPORT_JSON, SEGMENT_COLORS,
    SEGMENTATION_FILE, SEGMENTS)
from iacseg.core.errors import InputError
from iacseg.core.grid import Grid
from iacseg.measure import measure_case
from iacseg.outputs import terminology, writer
from iacseg.core.landmarks import Landmark
from iacseg.outputs.markups import read_landmarks
from iacseg.outputs.report import build_report, report_csv_text
from iacseg.core.folder_guard import RESULT_MARKER
from iacseg.outputs.segnrrd import read_segmentation_labels, write_segmentation_nrrd

RESOURCES = Path(__file__).resolve().parents[1] / "Resources"
HEIGHTS = {"L_carotid_canal": 4.0, "L_petrolingual": 8.0, "L_anterior_clinoid": 12.0,
           "R_carotid_canal": 4.5, "R_petrolingual": 8.5, "R_anterior_clinoid": 12.5}


def _case():
    # oblique-ish grid (flipped i axis) to check the geometry survives
    grid = Grid((8, 10, 12), (0.5, 0.6, 2.0), (10.0, -3.0, 1.0), (-1, 0, 0, 0, 1, 0, 0, 0, 1))
    labels = np.zeros(grid.shape, np.uint8)
    labels[1, 2, 3:5] = 1
    labels[5, 6, 7] = 8
    labels[3, 3, 3] = 6
    hu = np.where(labels > 0, 420.0, 20.0).astype(np.float32)
    landmarks = {n: Landmark(n, z, (5.0 if n[0] == "L" else -5.0, 0.0, z), slice=z / 2, confidence=0.9)
                 for n, z in HEIGHTS.items()}
    return grid, labels, hu, landmarks


def _report(grid, labels, hu, landmarks):
    return build_report(measures=measure_case(labels, hu, grid), landmarks=landmarks,
                        models={"segmenter": {"name": "demo", "version": "1", "sha256": "ab" * 32}},
                        timings={"segment": 1.5}, warnings=["demo model"], grid=grid,
                        acquisition={"slice_thickness_mm": 2.0})


def test_segnrrd_round_trip_with_slicerio(tmp_path: Path) -> None:
    import slicerio

    grid, labels, _, _ = _case()
    path = write_segmentation_nrrd(tmp_path / SEGMENTATION_FILE, labels, grid)
    back, ijk_to_lps, segments = read_segmentation_labels(path)
    assert np.array_equal(back, labels)
    assert np.allclose(ijk_to_lps, grid.affine)
    assert [s["name"] for s in segments] == [SEGMENTS[v] for v in sorted(SEGMENTS)]  # all 8, empty ones too
    assert [s["labelValue"] for s in segments] == sorted(SEGMENTS)
    seg = slicerio.read_segmentation(str(path))
    r_petrous = slicerio.segment_from_name(seg, "R_petrous")
    assert np.allclose(r_petrous["color"], SEGMENT_COLORS[6])
    assert r_petrous["terminology"]["type"][1] == "18115005"
    assert r_petrous["terminology"]["anatomicRegionModifier"][2] == "Right"
    assert slicerio.segment_mask(seg, "L_cervical").sum() == 2
    assert slicerio.segment_mask(seg, "L_petrous").sum() == 0
    assert [p.name for p in tmp_path.iterdir()] == [SEGMENTATION_FILE]  # no temporary left


def test_write_case_outputs_writes_the_five_contract_files(tmp_path: Path) -> None:
    import SimpleITK as sitk

    grid, labels, hu, landmarks = _case()
    out = writer.write_case_outputs(tmp_path / "case", labels=labels, grid=grid, landmarks=landmarks,
                                    report=_report(grid, labels, hu, landmarks))
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [LABELS_FILE, SEGMENTATION_FILE, LANDMARKS_FILE, REPORT_JSON, REPORT_CSV, RESULT_MARKER])
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out / LABELS_FILE))), labels)
    read = read_landmarks(out / LANDMARKS_FILE)
    assert {n: lm.z_mm for n, lm in read.items()} == HEIGHTS
    report = json.loads((out / REPORT_JSON).read_text())
    assert report["total"]["volume_mm3"] == 4 * grid.voxel_volume_mm3
    assert report["landmarks"]["R_petrolingual"]["confidence"] == 0.9
    assert report["models"][0]["sha256"] == "ab" * 32 and report["versions"]["numpy"]
    assert [p.name for p in tmp_path.iterdir()] == ["case"]


def test_existing_folder_is_refused_unless_overwrite_of_a_previous_result(tmp_path: Path) -> None:
    grid, labels, hu, landmarks = _case()
    report = _report(grid, labels, hu, landmarks)
    out = tmp_path / "case"
    out.mkdir()
    (out / "keep.txt").write_text("previous")
    with pytest.raises(InputError, match="not empty"):
        writer.write_case_outputs(out, labels=labels, grid=grid, landmarks=landmarks, report=report)
    with pytest.raises(InputError, match="not a previous IACSeg result"):  # a user's folder is never replaced
        writer.write_case_outputs(out, labels=labels, grid=grid, landmarks=landmarks, report=report, overwrite=True)
    assert (out / "keep.txt").read_text() == "previous" and not (out / REPORT_CSV).exists()
    (out / "keep.txt").unlink()
    writer.write_case_outputs(out, labels=labels, grid=grid, landmarks=landmarks, report=report)
    (out / REPORT_CSV).write_text("old")
    writer.write_case_outputs(out, labels=labels, grid=grid, landmarks=landmarks, report=report, overwrite=True)
    assert (out / REPORT_CSV).read_text() != "old" and (out / RESULT_MARKER).is_file()


def test_failure_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    grid, labels, hu, landmarks = _case()
    report = _report(grid, labels, hu, landmarks)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(writer, "write_report", broken)  # fails after three files were written
    with pytest.raises(OSError, match="disk full"):
        writer.write_case_outputs(tmp_path / "case", labels=labels, grid=grid, landmarks=landmarks, report=report)
    assert list(tmp_path.iterdir()) == []


def test_report_that_disagrees_with_the_labels_is_rejected(tmp_path: Path) -> None:
    grid, labels, hu, landmarks = _case()
    report = _report(grid, labels, hu, landmarks)
    labels = labels.copy()
    labels[0, 0, 0] = 2
    with pytest.raises(ValueError, match="L_petrous"):
        writer.write_case_outputs(tmp_path / "case", labels=labels, grid=grid, landmarks=landmarks, report=report)
    assert list(tmp_path.iterdir()) == []


def test_report_csv_has_one_row_per_segment_and_a_total() -> None:
    grid, labels, hu, landmarks = _case()
    rows = list(csv.DictReader(io.StringIO(report_csv_text(_report(grid, labels, hu, landmarks)))))
    assert [r["segment"] for r in rows] == [SEGMENTS[v] for v in sorted(SEGMENTS)] + ["total"]
    by_name = {r["segment"]: r for r in rows}
    assert float(by_name["L_cervical"]["volume_mm3"]) == 2 * grid.voxel_volume_mm3
    assert by_name["L_cervical"]["label"] == "1" and by_name["L_cervical"]["lesion_count"] == "1"
    assert by_name["L_petrous"]["peak_hu"] == ""  # empty segment: no peak
    assert by_name["total"]["lesion_count"] == "3" and float(by_name["total"]["peak_hu"]) == 420.0
    assert list(rows[0]) == ["segment", "label", "volume_mm3", "agatston", "mass_mg", "lesion_count", "peak_hu",
                             "assessable", "coverage_fraction", "qc_status"]


def test_resource_files_agree_with_the_contracts() -> None:
    assert (RESOURCES / terminology.COLOR_TABLE_FILE).read_text() == terminology.color_table_text()
    assert (RESOURCES / terminology.TERMINOLOGY_FILE).read_text() == terminology.terminology_text()
    entries = list(csv.DictReader(io.StringIO(terminology.color_table_text())))
    assert (entries[0]["LabelValue"], entries[0]["Name"], entries[0]["Color_A"]) == ("0", "background", "0")
    for row in entries[1:]:
        value = int(row["LabelValue"])
        assert SEGMENTS[value] == row["Name"] == row["TypeModifier_CodeValue"]
        assert (int(row["Color_R"]), int(row["Color_G"]), int(row["Color_B"])) == \
            tuple(round(c * 255) for c in SEGMENT_COLORS[value]) and row["Color_A"] == "255"
    modifiers = json.loads((RESOURCES / terminology.TERMINOLOGY_FILE).read_text())[
        "SegmentationCodes"]["Category"][0]["Type"][0]["Modifier"]
    assert {m["3dSlicerIntegerLabel"]: m["CodeValue"] for m in modifiers} == SEGMENTS


def test_overview_png_is_written(tmp_path: Path) -> None:
    from iacseg.outputs.overview import write_overview_png

    grid, labels, hu, landmarks = _case()
    path = write_overview_png(tmp_path / "overview.png", hu, labels, grid, landmarks)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["overview.png"]
