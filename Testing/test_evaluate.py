"""Evaluation: metric conventions with known answers, and folder evaluation including a grid mismatch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from iacseg.core.contracts import (LABELS_FILE, LANDMARKS, LANDMARKS_FILE, REPORT_JSON, SEGMENTS, TRUTH_JSON,
    TRUTH_LABELS_FILE, TRUTH_LANDMARKS_FILE)
from iacseg.evaluate import label_accuracy, landmark_errors, overlap_metrics, volume_metrics
from iacseg.evaluate.folders import evaluate_folders
from iacseg.core.grid import Grid
from iacseg.io.writers import write_image
from iacseg.core.landmarks import Landmark
from iacseg.outputs.markups import write_landmarks


def test_dice_precision_recall_of_known_overlap() -> None:
    truth = np.zeros((1, 1, 10), np.uint8)
    pred = np.zeros_like(truth)
    truth[0, 0, 0:4] = 1  # 4 voxels
    pred[0, 0, 2:8] = 3  # 6 voxels, 2 shared
    m = overlap_metrics(pred, truth)
    assert m["dice"] == pytest.approx(2 * 2 / 10)
    assert m["precision"] == pytest.approx(2 / 6) and m["recall"] == pytest.approx(2 / 4)


def test_empty_truth_and_prediction_agree_perfectly() -> None:
    empty = np.zeros((3, 3, 3), np.uint8)
    m = overlap_metrics(empty, empty)
    assert (m["dice"], m["precision"], m["recall"]) == (1.0, 1.0, 1.0)
    one = empty.copy()
    one[1, 1, 1] = 1
    assert overlap_metrics(one, empty)["dice"] == 0.0


def test_volume_difference_and_label_accuracy() -> None:
    truth = np.array([[[1, 1, 2, 2, 0, 0]]], np.uint8)
    pred = np.array([[[1, 2, 2, 0, 5, 5]]], np.uint8)
    v = volume_metrics(pred, truth, voxel_volume_mm3=0.5)
    assert v["volume_difference_mm3"] == pytest.approx(0.5) and v["relative_volume_difference"] == pytest.approx(0.25)
    assert v["segment_volumes_mm3"]["R_cervical"] == {"pred": 1.0, "truth": 0.0}
    assert label_accuracy(pred, truth) == pytest.approx(2 / 3)  # overlap at 3 voxels, 2 agree
    assert label_accuracy(pred * 0, truth) is None


def test_landmark_errors_in_mm_and_slices() -> None:
    truth = {"L_carotid_canal": 10.0, "R_carotid_canal": 20.0, "L_petrolingual": 30.0}
    pred = {"L_carotid_canal": 12.0, "R_carotid_canal": 19.0}
    e = landmark_errors(pred, truth, slice_spacing_mm=2.0)
    assert e["landmarks"]["L_carotid_canal"]["abs_error_slices"] == 1.0
    assert e["mean_abs_error_mm"] == pytest.approx(1.5) and e["within_1_slice"] == 1.0
    assert e["missing"] == ["L_petrolingual"]


HEIGHTS = dict(zip(LANDMARKS, (10.0, 20.0, 30.0, 11.0, 21.0, 31.0)))


def _landmarks(shift: float = 0.0) -> list[Landmark]:
    return [Landmark(n, z + shift, (5.0 if n[0] == "L" else -5.0, 0.0, z + shift)) for n, z in HEIGHTS.items()]


def _write_truth(folder: Path, labels: np.ndarray, grid: Grid) -> None:
    folder.mkdir(parents=True)
    write_image(folder / TRUTH_LABELS_FILE, labels, grid)
    write_landmarks(folder / TRUTH_LANDMARKS_FILE, _landmarks())
    (folder / TRUTH_JSON).write_text("{}")


def _write_pred(folder: Path, labels: np.ndarray, grid: Grid, shift: float, report_volume_error: float = 0.0) -> None:
    folder.mkdir(parents=True)
    write_image(folder / LABELS_FILE, labels, grid)
    write_landmarks(folder / LANDMARKS_FILE, _landmarks(shift))
    counts = np.bincount(labels.ravel(), minlength=9)
    vv = grid.voxel_volume_mm3
    report = {"segments": {n: {"volume_mm3": counts[v] * vv} for v, n in SEGMENTS.items()},
              "total": {"volume_mm3": counts[1:].sum() * vv + report_volume_error}}
    (folder / REPORT_JSON).write_text(json.dumps(report, default=float))


def test_evaluate_folders_pairs_cases_resamples_and_records_failures(tmp_path: Path) -> None:
    truth_grid = Grid((20, 8, 8), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    truth = np.zeros(truth_grid.shape, np.uint8)
    truth[4:8, 3:5, 3:5] = 1  # 16 voxels
    # case a: same grid, perfect labels, landmarks 1 mm off
    _write_truth(tmp_path / "truth" / "a", truth, truth_grid)
    _write_pred(tmp_path / "pred" / "a", truth, truth_grid, shift=1.0)
    # case b: prediction on a 0.5 mm grid covering the same world box; half of the lesion predicted
    fine = Grid((40, 16, 16), (0.5, 0.5, 0.5), (-0.2, -0.2, -0.2))  # no ties for nearest neighbour
    pred_b = np.zeros(fine.shape, np.uint8)
    pred_b[8:12, 6:10, 6:10] = 2  # world z 3.8..5.3 → truth slices 4 and 5 (8 voxels), wrong segment
    _write_truth(tmp_path / "truth" / "b", truth, truth_grid)
    _write_pred(tmp_path / "pred" / "b", pred_b, fine, shift=3.0, report_volume_error=1.0)
    # case c: no prediction
    _write_truth(tmp_path / "truth" / "c", truth, truth_grid)

    result = evaluate_folders(tmp_path / "pred", tmp_path / "truth")
    cases = {c["case"]: c for c in result["cases"]}
    assert cases["a"]["dice"] == 1.0 and cases["a"]["resampled"] is False
    assert cases["a"]["landmarks"]["mean_abs_error_mm"] == pytest.approx(1.0)
    assert cases["a"]["report_volumes_match"] is True
    assert cases["b"]["resampled"] is True
    assert cases["b"]["pred_voxels"] == 8 and cases["b"]["dice"] == pytest.approx(2 * 8 / 24)
    assert cases["b"]["label_accuracy"] == 0.0
    assert cases["b"]["report_volumes_match"] is False
    assert cases["b"]["landmarks"]["within_1_slice"] == 0.0  # 3 mm = 3 slices off
    assert cases["c"]["status"] == "failed" and "no prediction" in cases["c"]["error"]
    s = result["summary"]
    assert (s["n_cases"], s["n_evaluated"], s["n_failed"]) == (3, 2, 1)
    assert s["mean_dice"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert s["landmark_mean_error_mm"] == pytest.approx(2.0) and s["landmark_within_1_slice"] == 0.5
    assert s["report_volumes_match"] is False


def test_evaluate_single_case_folders(tmp_path: Path) -> None:
    grid = Grid((6, 6, 6), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))
    labels = np.zeros(grid.shape, np.uint8)
    labels[2, 2, 2:4] = 4
    _write_truth(tmp_path / "truth_case", labels, grid)
    _write_pred(tmp_path / "my_output", labels, grid, shift=0.0)
    result = evaluate_folders(tmp_path / "my_output", tmp_path / "truth_case")
    assert len(result["cases"]) == 1 and result["cases"][0]["dice"] == 1.0
    assert result["summary"]["report_volumes_match"] is True


def test_landmark_error_in_slices_counts_slices_between_planes():
    from iacseg.evaluate import landmark_errors

    # slices centred at z = 0, 2, 4, …; truth plane at 3.1 → first slice above is z=4 (k=2).
    # A prediction at the half-slice boundary 3.0 (k=2) is 0 slices off even though |Δz| = 0.1 mm;
    # one at 5.0 (k=3) is one slice off; 7.2 (k=4) two.
    res = landmark_errors({"a": 3.0, "b": 5.0, "c": 7.2}, {"a": 3.1, "b": 3.1, "c": 3.1}, 2.0, slice_z0_mm=0.0)
    per = res["landmarks"]
    assert per["a"]["abs_error_slices"] == 0 and abs(per["a"]["abs_error_mm"] - 0.1) < 1e-9
    assert per["b"]["abs_error_slices"] == 1 and per["c"]["abs_error_slices"] == 2
    assert abs(res["within_1_slice"] - 2 / 3) < 1e-9
