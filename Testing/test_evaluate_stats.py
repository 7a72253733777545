"""Evaluation statistics with known answers: bootstrap intervals, Bland–Altman limits, breakdowns by slice
thickness and lesion size, risk-group accuracy, and the `iacseg evaluate` summary, JSON and PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from iacseg.cli.main import main
from iacseg.core.contracts import LABELS_FILE, TRUTH_LABELS_FILE
from iacseg.evaluate import (bland_altman, bootstrap_ci, by_lesion_size, by_slice_thickness, lesion_detection,
                             risk_group_accuracy)
from iacseg.evaluate.breakdown import quartile_cutpoints, slice_thickness_bin
from iacseg.core.grid import Grid
from iacseg.io.writers import write_image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_bootstrap_interval_of_a_constant_is_that_constant() -> None:
    ci = bootstrap_ci([0.75] * 12, n_resamples=1000, seed=3)
    assert ci["estimate"] == ci["ci_low"] == ci["ci_high"] == 0.75
    assert ci["n"] == 12 and ci["n_resamples"] == 1000


def test_bootstrap_interval_contains_the_mean_and_narrows_with_more_cases() -> None:
    rng = np.random.default_rng(7)
    small, large = rng.normal(0.8, 0.1, 20), rng.normal(0.8, 0.1, 500)
    a, b = bootstrap_ci(small, seed=0), bootstrap_ci(large, seed=0)
    assert a["ci_low"] < small.mean() < a["ci_high"] and a["estimate"] == pytest.approx(small.mean())
    assert b["ci_low"] < large.mean() < b["ci_high"]
    # the width of a mean's interval shrinks like 1/sqrt(n): 25× the cases → about 1/5 of the width
    assert (b["ci_high"] - b["ci_low"]) < 0.35 * (a["ci_high"] - a["ci_low"])


def test_bootstrap_percentiles_match_numpy_on_a_fixed_seed() -> None:
    values = np.array([0.2, 0.9, 0.4, 0.7, 0.55, 0.1, 0.8])
    ci = bootstrap_ci(values, n_resamples=1000, seed=42)
    idx = np.random.default_rng(42).integers(0, values.size, size=(1000, values.size))
    low, high = np.percentile(values[idx].mean(axis=1), [2.5, 97.5])
    assert (ci["ci_low"], ci["ci_high"]) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    assert bootstrap_ci(values, seed=42) == ci  # reproducible
    assert bootstrap_ci(values, seed=43)["ci_low"] != ci["ci_low"]


def test_bootstrap_leaves_out_missing_values() -> None:
    ci = bootstrap_ci([1.0, None, 3.0, float("nan")], seed=0)
    assert ci["n"] == 2 and ci["estimate"] == 2.0 and 1.0 <= ci["ci_low"] <= ci["ci_high"] <= 3.0
    assert bootstrap_ci([None], seed=0)["ci_low"] is None


def test_bland_altman_limits_of_a_known_sample() -> None:
    truth = [10.0, 20.0, 30.0, 40.0, 50.0]
    pred = [11.0, 22.0, 33.0, 44.0, 55.0]  # differences 1..5: mean 3, sample SD sqrt(2.5)
    ba = bland_altman(pred, truth)
    sd = np.sqrt(2.5)
    assert ba["mean_difference"] == pytest.approx(3.0) and ba["sd_difference"] == pytest.approx(sd)
    assert ba["lower_limit"] == pytest.approx(3.0 - 1.96 * sd) and ba["upper_limit"] == pytest.approx(3.0 + 1.96 * sd)
    assert ba["mean_of_pair"][0] == pytest.approx(10.5) and ba["difference"][-1] == pytest.approx(5.0)


def test_slice_thickness_bins_include_their_upper_bound() -> None:
    assert [slice_thickness_bin(s) for s in (0.625, 1.0, 1.25, 2.5, 3.0, 5.0, 7.5)] == \
        ["<=1mm", "<=1mm", "1-2.5mm", "1-2.5mm", "2.5-5mm", "2.5-5mm", ">5mm"]
    cases = [{"status": "ok", "slice_spacing_mm": s, "dice": d, "volume_difference_mm3": v}
             for s, d, v in ((0.625, 0.9, 1.0), (1.0, 0.7, -3.0), (5.0, 0.5, 2.0))]
    cases.append({"status": "failed"})
    table = by_slice_thickness(cases)
    assert table["<=1mm"]["n_cases"] == 2 and table["<=1mm"]["mean_dice"] == pytest.approx(0.8)
    assert table["<=1mm"]["mean_volume_difference_mm3"] == pytest.approx(-1.0)
    assert table["1-2.5mm"] == {"n_cases": 0, **{k: None for k in table["1-2.5mm"] if k != "n_cases"}}
    assert table["2.5-5mm"]["n_cases"] == 1


def test_lesion_size_breakdown_counts_hand_built_lesions() -> None:
    truth = np.zeros((6, 12, 12), np.uint8)
    truth[0, 0, 0:2] = 1           # 2 voxels  → 4 mm³ (< 5), missed
    truth[2, 2, 2] = 3             # 2 voxels touching only at a corner (26-connected: one lesion) → 4 mm³, hit
    truth[3, 3, 3] = 3
    truth[0, 6:9, 6:9] = 5         # 9 voxels → 18 mm³ (5–20), hit in 1 voxel
    truth[4:6, 0:4, 6:9] = 2       # 24 voxels → 48 mm³ (≥ 20), hit in 6 voxels
    pred = np.zeros_like(truth)
    pred[3, 3, 3] = 1
    pred[0, 7, 7] = 1
    pred[5, 0:2, 6:9] = 4
    pred[1, 10, 10] = 1            # a false positive does not count as a detection
    counts = lesion_detection(pred, truth, voxel_volume_mm3=2.0)
    assert counts["<5mm3"] == {"n_lesions": 2, "n_detected": 1, "voxels": 4, "voxels_hit": 1}
    assert counts["5-20mm3"] == {"n_lesions": 1, "n_detected": 1, "voxels": 9, "voxels_hit": 1}
    assert counts[">=20mm3"] == {"n_lesions": 1, "n_detected": 1, "voxels": 24, "voxels_hit": 6}
    pooled = by_lesion_size([{"status": "ok", "lesions_by_size": counts},
                             {"status": "ok", "lesions_by_size": lesion_detection(pred * 0, truth, 2.0)}])
    assert pooled["<5mm3"]["n_lesions"] == 4 and pooled["<5mm3"]["detection_rate"] == pytest.approx(0.25)
    assert pooled[">=20mm3"]["voxel_recall"] == pytest.approx(6 / 48)


def test_risk_group_accuracy_with_quartiles_of_the_true_volumes() -> None:
    truth = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]
    assert quartile_cutpoints(truth) == pytest.approx([17.5, 35.0, 52.5])
    # groups of truth: Q1 Q1 Q2 Q2 Q3 Q3 Q4 Q4; predictions move cases 2 (20→17) and 7 (70→50) down a group
    pred = [0.0, 12.0, 17.0, 33.0, 41.0, 52.5, 90.0, 50.0]
    r = risk_group_accuracy(pred, truth)
    assert r["n_correct"] == 6 and r["accuracy"] == pytest.approx(0.75) and r["groups"] == ["Q1", "Q2", "Q3", "Q4"]
    assert r["confusion"]["Q2"]["Q1"] == 1 and r["confusion"]["Q4"]["Q3"] == 1 and r["confusion"]["Q3"]["Q3"] == 2


def test_risk_group_accuracy_with_the_engines_cut_points() -> None:
    r = risk_group_accuracy([0.0, 40.0, 50.0, 150.0], [0.0, 10.0, 50.0, 200.0], cutpoints_mm3=[30.0, 100.0])
    assert r["groups"] == ["none", "low", "moderate", "high"] and r["accuracy"] == pytest.approx(0.75)
    assert r["confusion"]["low"]["moderate"] == 1


def _write_case(root: Path, name: str, truth: np.ndarray, pred: np.ndarray, grid: Grid) -> None:
    write_image(root / "truth" / name / TRUTH_LABELS_FILE, truth, grid)
    write_image(root / "pred" / name / LABELS_FILE, pred, grid)


def _two_cases(root: Path) -> None:
    thin, thick = Grid((10, 12, 12), (1.0, 1.0, 0.625), (0, 0, 0)), Grid((10, 12, 12), (1.0, 1.0, 3.0), (0, 0, 0))
    truth = np.zeros((10, 12, 12), np.uint8)
    truth[2:4, 2:4, 2:4] = 1     # one lesion of 8 voxels
    truth[7, 8, 8:10] = 6        # one of 2 voxels
    pred = truth.copy()
    pred[7, 8, 8:10] = 0         # case a misses the small lesion
    _write_case(root, "a", truth, pred, thin)
    _write_case(root, "b", truth, truth, thick)


def test_evaluate_folders_adds_intervals_breakdowns_and_risk_groups(tmp_path: Path) -> None:
    from iacseg.evaluate import evaluate_folders

    _two_cases(tmp_path)
    s = evaluate_folders(tmp_path / "pred", tmp_path / "truth", n_resamples=200, seed=1)["summary"]
    dice_a = 2 * 8 / 18
    ci = s["confidence_intervals"]["dice"]
    assert ci["estimate"] == pytest.approx((dice_a + 1.0) / 2) and ci["n_resamples"] == 200
    assert dice_a <= ci["ci_low"] <= ci["ci_high"] <= 1.0
    assert set(s["confidence_intervals"]) >= {"dice", "precision", "recall", "volume_difference_mm3"}
    assert s["by_slice_thickness"]["<=1mm"]["n_cases"] == 1 and s["by_slice_thickness"]["2.5-5mm"]["n_cases"] == 1
    # thin (0.625 mm³ voxels): lesions of 5 mm³ (hit) and 1.25 mm³ (missed); thick (3 mm³): 24 and 6 mm³, both hit
    sizes = {k: (v["n_lesions"], v["n_detected"]) for k, v in s["by_lesion_size"].items()}
    assert sizes == {"<5mm3": (1, 0), "5-20mm3": (2, 2), ">=20mm3": (1, 1)}
    assert s["bland_altman_mm3"]["mean_difference"] == pytest.approx(-2 * 0.625 / 2)
    assert s["risk_groups"]["n_cases"] == 2


def test_evaluate_cli_writes_metrics_and_nonempty_plots(tmp_path: Path, capsys) -> None:
    _two_cases(tmp_path)
    out = tmp_path / "metrics.json"
    code = main(["evaluate", "--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "truth"), "-o", str(out),
                 "--plots", str(tmp_path / "plots"), "--bootstrap", "100"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "bootstrap intervals (100 resamples" in printed and "risk group accuracy" in printed
    assert "by slice thickness" in printed and "Bland–Altman" in printed
    metrics = json.loads(out.read_text())
    assert metrics["summary"]["confidence_intervals"]["dice"]["n_resamples"] == 100
    for name in ("bland_altman.png", "segment_volumes.png"):
        data = (tmp_path / "plots" / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000
    assert metrics["plots"]["bland_altman"].endswith("bland_altman.png")


def test_evaluate_cli_refuses_bad_statistics_options(tmp_path: Path, capsys) -> None:
    _two_cases(tmp_path)
    args = ["evaluate", "--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "truth")]
    assert main([*args, "--bootstrap", "0"]) == 2
    assert main([*args, "--risk-cutpoints", "a,b"]) == 2
    assert main([*args, "--risk-cutpoints", "10,20,30"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "--bootstrap" in err[0] and "--risk-cutpoints" in err[1] and "cut points" in err[2]
