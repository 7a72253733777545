"""The one threshold-calibration rule (Jin et al.): the probability threshold that minimises the volume difference
between prediction and truth on development cases. Training (`iacseg.train.segmenter`, on its validation cases)
and ``iacseg calibrate`` (`iacseg.evaluate.calibrate`, on a development set) both write ``config["threshold"]``
with `calibrate_threshold` over the grid `THRESHOLDS`, each threshold applied by `threshold_sweep` with the
engine's own rule (`iacseg.models.postprocess.calcium_mask`). Numpy and SciPy only (no torch).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..core.contracts import CALCIUM_HU

#: The candidate thresholds: 0.01, 0.02, …, 0.99.
THRESHOLDS: tuple[float, ...] = tuple(round(0.01 * n, 2) for n in range(1, 100))


def calibrate_threshold(per_case_volumes_by_threshold: Mapping[float, Sequence[float]],
                        truth_volumes: Sequence[float]) -> tuple[float, list[dict[str, float]]]:
    """The threshold whose predicted volumes (one per case, same order as ``truth_volumes``, any one unit) have the
    smallest mean absolute difference from the true volumes, and the table of every threshold.

    Why this rule: Jin et al. calibrate "by choosing the decision threshold to minimise the volume difference on
    the development set", and the volume difference they report and minimise (their Table 2, "Volume Δ") is the
    mean over cases of the absolute difference between predicted and annotated volume, |ΔV| per case. A summed
    (or mean) signed difference would let over-segmented cases cancel under-segmented ones, so a threshold could
    reach a total of zero while every case's volume is wrong; the per-case absolute difference cannot be
    cancelled, and it is the error a reader of one patient's volume or risk group sees. The mean signed
    difference only breaks ties. Both callers search the same grid, `THRESHOLDS` (0.01–0.99 in steps of 0.01,
    the finer and wider of the two grids used before), so the same predictions give the same threshold.

    Table rows (ascending threshold): ``{"threshold", "mean_abs_volume_difference_mm3",
    "mean_volume_difference_mm3"}`` (difference = prediction − truth; the key says mm³, the unit is the one
    given). Ties in the mean absolute difference (within 1e-9) go to the smaller |mean signed difference|, then
    to the lower threshold.
    """
    truth = np.asarray(truth_volumes, dtype=np.float64)
    if not per_case_volumes_by_threshold:
        raise ValueError("no thresholds to choose from")
    if truth.size == 0:
        raise ValueError("calibration needs at least one case")
    table = []
    for t in sorted(per_case_volumes_by_threshold):
        pred = np.asarray(per_case_volumes_by_threshold[t], dtype=np.float64)
        if pred.shape != truth.shape:
            raise ValueError(f"threshold {t}: {pred.size} predicted volumes for {truth.size} cases")
        diff = pred - truth
        table.append({"threshold": float(t), "mean_abs_volume_difference_mm3": float(np.abs(diff).mean()),
                      "mean_volume_difference_mm3": float(diff.mean())})
    best_abs = min(r["mean_abs_volume_difference_mm3"] for r in table)
    tied = [r for r in table if r["mean_abs_volume_difference_mm3"] <= best_abs + 1e-9]
    best = min(tied, key=lambda r: (abs(r["mean_volume_difference_mm3"]), r["threshold"]))
    return best["threshold"], table


def threshold_sweep(prob: np.ndarray, hu: np.ndarray, truth: np.ndarray, thresholds: Sequence[float],
                    min_hu: float = CALCIUM_HU) -> dict[str, Any]:
    """The engine's calcium mask of one case at every threshold, counted against the truth (all ``[k, j, i]``,
    same grid; ``truth``: calcified = > 0).

    Returns ``{"truth_voxels": int, "pred_voxels": int64 [T], "overlap_voxels": int64 [T]}`` (threshold order as
    given). Only the box holding voxels with prob ≥ min(thresholds) and HU ≥ ``min_hu`` (plus one voxel) is
    thresholded: outside it every mask is empty, so the result equals thresholding the whole volume.
    """
    from .postprocess import calcium_mask

    truth_mask = np.asarray(truth) > 0
    pred_vox, tp_vox = np.zeros(len(thresholds), np.int64), np.zeros(len(thresholds), np.int64)
    candidates = (prob >= min(thresholds)) & (hu >= min_hu) if len(thresholds) else np.zeros(prob.shape, bool)
    if candidates.any():
        nz = np.argwhere(candidates)
        box = tuple(slice(max(0, lo - 1), hi + 2) for lo, hi in zip(nz.min(0), nz.max(0)))
        p, h, t = prob[box], hu[box], truth_mask[box]
        for n, thr in enumerate(thresholds):
            mask = calcium_mask(p, h, float(thr), min_hu=min_hu)
            pred_vox[n], tp_vox[n] = int(mask.sum()), int((mask & t).sum())
    return {"truth_voxels": int(truth_mask.sum()), "pred_voxels": pred_vox, "overlap_voxels": tp_vox}
