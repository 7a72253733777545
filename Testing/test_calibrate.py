"""Threshold calibration: the choice rule with known answers, the per-case sweep, storing the threshold in
config.json without touching the weights, `--threshold auto` using it, and `iacseg calibrate` end to end."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import iacseg.pipeline
from iacseg.cli.main import main
from iacseg.core.contracts import PHANTOM_CT_FILE, TRUTH_LABELS_FILE
from iacseg.core.errors import InputError, ModelError
from iacseg.evaluate import calibrate_model, calibrate_threshold, overlap_metrics, write_calibration
from iacseg.evaluate.calibrate import parse_thresholds, sweep_case
from iacseg.core.grid import Grid
from iacseg.io.writers import write_image
from iacseg.models.segmenter import CalcificationSegmenter
from iacseg.models.postprocess import calcium_mask
from iacseg.models.folders import CONFIG_FILE, WEIGHTS_FILE
from iacseg.models.loading import save_model
from iacseg.core.files import sha256_of
from iacseg.models.networks.unet import ResEncUNet

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TOY = {"in_channels": 2, "features": [4, 8], "strides": [[1, 1, 1], [1, 2, 2]], "blocks": [1, 1]}


def test_calibration_picks_the_threshold_that_zeroes_a_known_volume_bias() -> None:
    truth = [0.0, 12.0, 40.0, 150.0]
    thresholds = [round(0.05 * n, 2) for n in range(1, 20)]
    # the model over-segments at low thresholds and under-segments at high ones; no bias at exactly t = 0.35
    volumes = {t: [max(0.0, v + 200.0 * (0.35 - t)) if v else 0.0 for v in truth] for t in thresholds}
    best, table = calibrate_threshold(volumes, truth)
    assert best == 0.35
    row = next(r for r in table if r["threshold"] == 0.35)
    assert row["mean_abs_volume_difference_mm3"] == pytest.approx(0.0, abs=1e-9)
    assert [r["threshold"] for r in table] == sorted(thresholds)
    assert next(r for r in table if r["threshold"] == 0.25)["mean_volume_difference_mm3"] == pytest.approx(15.0)


def test_ties_go_to_the_smaller_signed_difference_then_the_lower_threshold() -> None:
    best, _ = calibrate_threshold({0.2: [5.0, 5.0], 0.4: [5.0, -5.0], 0.6: [20.0, 0.0]}, [0.0, 0.0])
    assert best == 0.4  # mean |ΔV| 5 at 0.2 and 0.4; the signed mean is 0 only at 0.4
    best, _ = calibrate_threshold({0.7: [3.0], 0.3: [3.0]}, [0.0])
    assert best == 0.3


def test_threshold_lists_and_ranges_are_parsed_and_bad_ones_refused() -> None:
    assert parse_thresholds("0.1:0.3:0.1") == [0.1, 0.2, 0.3]
    assert parse_thresholds("0.5, 0.05,0.5") == [0.05, 0.5]
    assert parse_thresholds(None)[:3] == [0.01, 0.02, 0.03] and len(parse_thresholds(None)) == 99
    for bad in ("0.2:0.1:0.1", "abc", "0,0.5", "0.5,1.0"):
        with pytest.raises(InputError):
            parse_thresholds(bad)


def test_sweep_equals_thresholding_the_whole_volume_with_the_engines_rule() -> None:
    rng = np.random.default_rng(5)
    prob = rng.random((12, 20, 20)).astype(np.float32) ** 3
    hu = rng.normal(150.0, 80.0, prob.shape).astype(np.float32)
    truth = (rng.random(prob.shape) < 0.05).astype(np.uint8) * 3
    thresholds = [0.1, 0.3, 0.6, 0.9]
    sweep = sweep_case(prob, hu, truth, 0.5, thresholds)
    assert sweep["truth_volume_mm3"] == pytest.approx((truth > 0).sum() * 0.5)
    for n, t in enumerate(thresholds):
        mask = calcium_mask(prob, hu, t)
        assert sweep["pred_volume_mm3"][n] == pytest.approx(mask.sum() * 0.5)
        assert sweep["dice"][n] == pytest.approx(overlap_metrics(mask, truth)["dice"])
    empty = sweep_case(np.zeros_like(prob), hu, truth * 0, 0.5, thresholds)
    assert empty["pred_volume_mm3"] == [0.0] * 4 and empty["dice"] == [1.0] * 4


# --- a development set whose "network" output is known: calcium 500 HU (truth) has probability 0.6, a 300 HU rim
# --- around it 0.4, one isolated 900 HU voxel 0.95 (always dropped as a single voxel).

GRID = Grid((6, 16, 16), (0.5, 0.5, 1.0), (0.0, 0.0, 0.0))  # 0.25 mm³ voxels


def _dev_case(folder: Path, half: int) -> float:
    """A case with a calcified block of (2, 2·half, 2·half) voxels; returns its true volume (mm³)."""
    hu = np.full(GRID.shape, 40, np.int16)
    c = 8
    hu[2:4, c - half - 1:c + half + 1, c - half - 1:c + half + 1] = 300
    hu[2:4, c - half:c + half, c - half:c + half] = 500
    hu[5, 0, 0] = 900
    hu[0, -1, :] = -1000  # a row of air, so the reader accepts the image as a CT in HU
    truth = (hu == 500).astype(np.uint8) * 2
    write_image(folder / PHANTOM_CT_FILE, hu, GRID)
    write_image(folder / TRUTH_LABELS_FILE, truth, GRID)
    return float(truth.astype(bool).sum() * 0.25)


def _fake_engine(calls: list) -> object:
    """Stands in for `segment_volume`: the probability map above, labels at the model's own threshold."""
    def segment_volume(vol, options, progress=None):
        calls.append(options)
        prob = np.select([vol.hu >= 900, vol.hu >= 500, vol.hu >= 300], [0.95, 0.6, 0.4], 0.0).astype(np.float32)
        cfg = json.loads((Path(options.segmenter) / CONFIG_FILE).read_text())
        labels = calcium_mask(prob, vol.hu, cfg["threshold"]).astype(np.uint8)
        info = {"probability": prob if options.keep_probability else None, "threshold": cfg["threshold"],
                "models": {"segmenter": {"name": cfg["name"], "version": cfg["version"], "sha256": cfg["sha256"]}}}
        return labels, {}, None, info
    return segment_volume


@pytest.fixture
def toy_model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    cfg = {"name": "toy-seg", "version": "0.1", "kind": "segmenter", "threshold": 0.4,
           "architecture": {"name": "ResEncUNet", "params": TOY}, "metrics": {"val_dice_mean": 0.5}}
    return save_model(tmp_path / "toy-seg", ResEncUNet(**TOY).eval(), cfg, "# toy\n")


@pytest.fixture
def dev_set(tmp_path: Path) -> tuple[Path, list[float]]:
    root = tmp_path / "dev"
    return root, [_dev_case(root / "case_a", 2), _dev_case(root / "case_b", 3)]


def test_calibration_on_a_known_probability_map_stores_the_threshold_but_not_new_weights(
        toy_model: Path, dev_set, monkeypatch) -> None:
    calls: list = []
    monkeypatch.setattr(iacseg.pipeline, "segment_volume", _fake_engine(calls))
    root, truth = dev_set
    report = calibrate_model(toy_model, root, thresholds=[0.3, 0.5, 0.7])
    assert len(calls) == 2 and all(c.keep_probability for c in calls)  # one network run per case, not per threshold
    rims = [(6 * 6 - 4 * 4) * 2 * 0.25, (8 * 8 - 6 * 6) * 2 * 0.25]  # 0.4-probability rim volumes (mm³)
    assert report["before"]["threshold"] == 0.4 and report["after"]["threshold"] == 0.5
    assert report["before"]["mean_abs_volume_difference_mm3"] == pytest.approx(np.mean(rims))
    assert report["after"]["mean_abs_volume_difference_mm3"] == 0.0 and report["after"]["mean_dice"] == 1.0
    assert report["before"]["bland_altman_mm3"]["mean_difference"] == pytest.approx(np.mean(rims))
    assert [r["threshold"] for r in report["table"]] == [0.3, 0.4, 0.5, 0.7]
    for case, t, rim in zip(report["cases"], truth, rims):
        assert case["truth_volume_mm3"] == t and case["pred_volume_after_mm3"] == t
        assert case["pred_volume_before_mm3"] == case["engine_volume_mm3"] == t + rim

    weights = sha256_of(toy_model / WEIGHTS_FILE)
    old = json.loads((toy_model / CONFIG_FILE).read_text())
    write_calibration(toy_model, report)
    new = json.loads((toy_model / CONFIG_FILE).read_text())
    assert sha256_of(toy_model / WEIGHTS_FILE) == weights == new["sha256"]
    assert new["threshold"] == 0.5 and new["calibration"]["previous_threshold"] == 0.4
    assert new["calibration"]["data"]["n_cases"] == 2 and len(new["calibration"]["data"]["hash"]) == 16
    assert {k: v for k, v in new.items() if k not in ("threshold", "calibration")} == \
        {k: v for k, v in old.items() if k != "threshold"}
    assert CalcificationSegmenter.load(toy_model).threshold == 0.5  # what `--threshold auto` uses


def test_write_refuses_a_report_made_for_other_weights(toy_model: Path) -> None:
    report = {"model": {"sha256": "0" * 64}, "before": {}, "after": {}}
    with pytest.raises(ModelError):
        write_calibration(toy_model, report)


def test_calibrate_command_writes_report_png_and_config(toy_model: Path, dev_set, monkeypatch, capsys,
                                                        tmp_path: Path) -> None:
    monkeypatch.setattr(iacseg.pipeline, "segment_volume", _fake_engine([]))
    root, _ = dev_set
    code = main(["calibrate", "--model", str(toy_model), "--data", str(root), "--thresholds", "0.3,0.5,0.7",
                 "-o", str(tmp_path / "cal.json"), "--png", str(tmp_path / "ba.png"), "--write", "--progress", "none"])
    out = capsys.readouterr().out
    assert code == 0 and "before  threshold 0.400" in out and "after   threshold 0.500" in out
    assert json.loads((tmp_path / "cal.json").read_text())["after"]["threshold"] == 0.5
    assert (tmp_path / "ba.png").read_bytes().startswith(PNG_SIGNATURE)
    assert json.loads((toy_model / CONFIG_FILE).read_text())["threshold"] == 0.5


@pytest.mark.parametrize("what", ["model", "data", "thresholds"])
def test_calibrate_command_refuses_bad_input_with_one_line(what: str, toy_model: Path, dev_set, capsys,
                                                           tmp_path: Path) -> None:
    args = {"model": str(toy_model), "data": str(dev_set[0]), "thresholds": "0.3,0.5"}
    args[what] = {"model": str(tmp_path / "no_model"), "data": str(tmp_path / "no_data"), "thresholds": "1.5"}[what]
    code = main(["calibrate", "--model", args["model"], "--data", args["data"], "--thresholds", args["thresholds"],
                 "--progress", "none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and re.match(r"iacseg: error( \([^)]*\))?: ", err[0])
    assert json.loads((toy_model / CONFIG_FILE).read_text())["threshold"] == 0.4


@pytest.mark.slow  # 19–40 s on 2 busy CPU cores: the shipped U-Net and DST on two small phantoms, then one segmentation
def test_calibrate_the_shipped_model_end_to_end_and_segment_with_auto(tmp_path: Path, capsys) -> None:
    from iacseg.io import read_ct
    from iacseg.models.defaults import resolve_model
    from iacseg.phantom import make_phantom, write_phantom
    from iacseg.pipeline import SegmentOptions, segment_volume

    for seed in (11, 12):
        write_phantom(make_phantom(seed, slice_mm=5.0, matrix=192), tmp_path / "dev" / f"phantom_{seed:05d}")
    model = shutil.copytree(resolve_model("unet-demo", "segmenter"), tmp_path / "unet-copy")
    weights = sha256_of(model / WEIGHTS_FILE)
    code = main(["calibrate", "--model", str(model), "--data", str(tmp_path / "dev"), "--device", "cpu",
                 "--thresholds", "0.05,0.2,0.5,0.9", "-o", str(tmp_path / "cal.json"), "--write",
                 "--progress", "none"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "cal.json").read_text())
    for case in report["cases"]:  # the sweep reproduces the engine's own mask at the model's threshold
        assert case["pred_volume_before_mm3"] == pytest.approx(case["engine_volume_mm3"])
    assert report["after"]["mean_abs_volume_difference_mm3"] <= report["before"]["mean_abs_volume_difference_mm3"]
    config = json.loads((model / CONFIG_FILE).read_text())
    assert config["threshold"] == report["after"]["threshold"] and sha256_of(model / WEIGHTS_FILE) == weights

    vol = read_ct(tmp_path / "dev" / "phantom_00012" / PHANTOM_CT_FILE)
    labels, _, _, info = segment_volume(vol, SegmentOptions(segmenter=model, device="cpu", threshold="auto"))
    assert info["threshold"] == report["after"]["threshold"]
    assert (labels > 0).sum() * vol.grid.voxel_volume_mm3 == pytest.approx(report["cases"][1]["pred_volume_after_mm3"])
