"""One calibration rule (`iacseg.models.calibration`): training's validation and `iacseg calibrate` choose the same
threshold on the same predictions — the least mean per-case |volume difference|, not the least summed signed one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import iacseg.pipeline
import iacseg.train.segmenter as segmenter
from iacseg.core.contracts import PHANTOM_CT_FILE, TRUTH_LABELS_FILE
from iacseg.core.grid import Grid
from iacseg.evaluate import calibrate_model
from iacseg.io.writers import write_image
from iacseg.models.calibration import THRESHOLDS, calibrate_threshold
from iacseg.models.loading import save_model
from iacseg.models.networks.unet import ResEncUNet
from iacseg.models.postprocess import calcium_mask

GRID = Grid((8, 16, 16), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))  # 1 mm³ voxels: mm³ and voxel counts agree
#: The "network": probability by HU code (all ≥ 130 HU, blocks, so no single voxel is dropped).
PROB_OF_HU = {500: 0.6, 310: 0.3, 320: 0.15, 330: 0.2}
TOY = {"in_channels": 2, "features": [4, 8], "strides": [[1, 1, 1], [1, 2, 2]], "blocks": [1, 1]}


def prob_of(hu: np.ndarray) -> np.ndarray:
    prob = np.zeros(hu.shape, np.float32)
    for value, p in PROB_OF_HU.items():
        prob[hu == value] = p
    return prob


def cases() -> list[tuple[np.ndarray, np.ndarray]]:
    """(HU, truth) of two cases. A: 8 true voxels (p 0.6), 20 false ones at p 0.3 and 20 at p 0.15.
    B: 32 true voxels, 10 at p 0.6 and 22 at p 0.2. Volume differences (A, B) by threshold t:
    t ≤ 0.15: (+40, 0); 0.15 < t ≤ 0.2: (+20, 0); 0.2 < t ≤ 0.3: (+20, −22); 0.3 < t ≤ 0.6: (0, −22).
    Least mean |ΔV| (10): 0.16; least |summed ΔV| (2): 0.21–0.30."""
    out = []
    for blocks in ({(1, 3, 2, 4, 2, 4): (500, True), (1, 3, 2, 4, 6, 11): (310, False),
                    (5, 7, 10, 12, 9, 14): (320, False)},
                   {(1, 3, 2, 3, 2, 7): (500, True), (4, 6, 2, 13, 2, 3): (330, True)}):
        hu = np.full(GRID.shape, 40, np.int16)
        hu[0, -1, :] = -1000  # a row of air, so the reader accepts the image as a CT in HU
        truth = np.zeros(GRID.shape, np.uint8)
        for (k0, k1, j0, j1, i0, i1), (value, calcified) in blocks.items():
            hu[k0:k1, j0:j1, i0:i1] = value
            truth[k0:k1, j0:j1, i0:i1] = 2 if calcified else 0
        out.append((hu, truth))
    return out


def test_the_rule_is_the_least_mean_absolute_difference_and_differs_from_the_summed_signed_one():
    pred = {t: [float(calcium_mask(prob_of(hu), hu, t).sum()) for hu, _ in cases()] for t in THRESHOLDS}
    truth = [float((tr > 0).sum()) for _, tr in cases()]
    best, _ = calibrate_threshold(pred, truth)
    assert best == 0.16 and THRESHOLDS[0] == 0.01 and THRESHOLDS[-1] == 0.99 and len(THRESHOLDS) == 99
    summed = min(THRESHOLDS, key=lambda t: abs(sum(pred[t]) - sum(truth)))
    assert summed != best  # the former training rule would have chosen another threshold


def test_training_validation_and_calibrate_choose_the_same_threshold(tmp_path: Path, monkeypatch) -> None:
    # training: the validation of `train_segmenter`, with the network's output replaced by the known map
    prepared = [segmenter.SegmenterCase(f"case_{n}", hu, truth > 0, (slice(None),) * 3, np.empty((0, 3), np.int64),
                                        np.empty((0, 3), np.int64), 0) for n, (hu, truth) in enumerate(cases())]
    monkeypatch.setattr(segmenter, "predict_crop", lambda module, c, input_cfg, device: prob_of(c.hu)[c.roi])
    metrics = segmenter.validate(None, prepared, {}, torch.device("cpu"))  # type: ignore[arg-type]

    # iacseg calibrate: the same cases as a development set, the engine's probability replaced by the same map
    torch.manual_seed(0)
    model = save_model(tmp_path / "toy-seg", ResEncUNet(**TOY).eval(),
                       {"name": "toy-seg", "version": "0.1", "kind": "segmenter", "threshold": 0.5,
                        "architecture": {"name": "ResEncUNet", "params": TOY}}, "# toy\n")
    for n, (hu, truth) in enumerate(cases()):
        write_image(tmp_path / "dev" / f"case_{n}" / PHANTOM_CT_FILE, hu, GRID)
        write_image(tmp_path / "dev" / f"case_{n}" / TRUTH_LABELS_FILE, truth, GRID)

    def segment_volume(vol, options, progress=None):
        prob = prob_of(np.asarray(vol.hu).round().astype(np.int16))
        return calcium_mask(prob, vol.hu, 0.5).astype(np.uint8), {}, None, {
            "probability": prob, "models": {"segmenter": {"name": "toy-seg", "version": "0.1"}}}

    monkeypatch.setattr(iacseg.pipeline, "segment_volume", segment_volume)
    report = calibrate_model(model, tmp_path / "dev")

    assert metrics["threshold"] == report["after"]["threshold"] == 0.16
    assert metrics["val_mean_abs_volume_diff_voxels"] == pytest.approx(10.0)
    assert report["after"]["mean_abs_volume_difference_mm3"] == pytest.approx(10.0)


def test_training_keeps_the_parents_threshold_when_too_few_validation_cases_hold_calcium(monkeypatch) -> None:
    # two validation cases would calibrate to 0.16; a fine-tune with so few keeps its parent's 0.4 and says why
    def prepared(copies: int) -> list:
        return [segmenter.SegmenterCase(f"case_{n}", hu, truth > 0, (slice(None),) * 3, np.empty((0, 3), np.int64),
                                        np.empty((0, 3), np.int64), 0)
                for n, (hu, truth) in enumerate(cases() * copies)]

    monkeypatch.setattr(segmenter, "predict_crop", lambda module, c, input_cfg, device: prob_of(c.hu)[c.roi])
    few = segmenter.validate(None, prepared(1), {}, torch.device("cpu"), 0.4)  # type: ignore[arg-type]
    assert few["threshold"] == 0.4 and "only 2 validation cases" in few["threshold_source"]
    enough = segmenter.validate(None, prepared(3), {}, torch.device("cpu"), 0.4)  # type: ignore[arg-type]
    assert len(prepared(3)) >= segmenter.MIN_CALIBRATION_CASES
    assert enough["threshold"] == 0.16 and enough["threshold_source"].startswith("calibrated on 6")
