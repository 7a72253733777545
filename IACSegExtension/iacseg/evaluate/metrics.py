"""Agreement of a predicted case with its truth: overlap, volume, segment labels, landmark heights (pure numpy).

Conventions: "calcified" means label > 0. Dice of an empty truth and an empty prediction is 1.0 (perfect
agreement on "no calcium"); precision is 1.0 when the prediction is empty, recall is 1.0 when the truth is
empty. Volume difference = prediction − truth (mm³); relative = difference / truth volume (None when the truth
is empty). Label accuracy = among voxels calcified in both, the fraction with the same segment label (None when
they share no voxel).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..core.contracts import SEGMENTS


def overlap_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Binary Dice, precision, recall and voxel counts of ``pred > 0`` vs ``truth > 0`` (same shape)."""
    p, t = np.asarray(pred) > 0, np.asarray(truth) > 0
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and truth {t.shape} are on different grids; resample first")
    n_p, n_t = int(p.sum()), int(t.sum())
    tp = int(np.logical_and(p, t).sum())
    return {
        "dice": 1.0 if n_p + n_t == 0 else 2.0 * tp / (n_p + n_t),
        "precision": 1.0 if n_p == 0 else tp / n_p,
        "recall": 1.0 if n_t == 0 else tp / n_t,
        "true_positive_voxels": tp,
        "pred_voxels": n_p,
        "truth_voxels": n_t,
    }


def volume_metrics(pred: np.ndarray, truth: np.ndarray, voxel_volume_mm3: float) -> dict[str, Any]:
    """Total and per-segment volumes (mm³) of prediction and truth, and their difference (pred − truth)."""
    n = max(SEGMENTS) + 1
    cp = np.bincount(np.asarray(pred, dtype=np.int64).reshape(-1), minlength=n)[:n]
    ct = np.bincount(np.asarray(truth, dtype=np.int64).reshape(-1), minlength=n)[:n]
    v_pred, v_truth = float(cp[1:].sum() * voxel_volume_mm3), float(ct[1:].sum() * voxel_volume_mm3)
    diff = v_pred - v_truth
    return {
        "pred_volume_mm3": v_pred,
        "truth_volume_mm3": v_truth,
        "volume_difference_mm3": diff,
        "abs_volume_difference_mm3": abs(diff),
        "relative_volume_difference": diff / v_truth if v_truth > 0 else None,
        "segment_volumes_mm3": {name: {"pred": float(cp[v] * voxel_volume_mm3), "truth": float(ct[v] * voxel_volume_mm3)}
                                for v, name in SEGMENTS.items()},
    }


def label_accuracy(pred: np.ndarray, truth: np.ndarray) -> float | None:
    """Among voxels calcified in both, the fraction whose segment labels agree (None when none overlap)."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    both = (pred > 0) & (truth > 0)
    n = int(both.sum())
    return None if n == 0 else float((pred[both] == truth[both]).sum() / n)


def landmark_errors(pred_z: Mapping[str, float], truth_z: Mapping[str, float],
                    slice_spacing_mm: float, slice_z0_mm: float | None = None) -> dict[str, Any]:
    """Per landmark |Δz| (mm) and the error in slices, for the names in ``truth_z``.

    With ``slice_z0_mm`` (the height of any slice centre) the error in slices is the number of slices between
    the planes: |k(pred) − k(truth)| with k(z) = ceil((z − z0) / spacing), the first slice at or above the
    plane — i.e. how many slices of voxels the predicted plane puts in the wrong segment (the DST's metric).
    Without it, |Δz| / spacing. A landmark missing from the prediction is listed in ``missing`` and left out.
    """
    per: dict[str, dict[str, float]] = {}
    missing = []
    for name, zt in truth_z.items():
        if name not in pred_z or pred_z[name] is None:
            missing.append(name)
            continue
        err = abs(float(pred_z[name]) - float(zt))
        if slice_z0_mm is None:
            err_slices = err / slice_spacing_mm
        else:
            def first_slice(z: float) -> int:
                return int(np.ceil((z - slice_z0_mm) / slice_spacing_mm - 1e-6))
            err_slices = float(abs(first_slice(float(pred_z[name])) - first_slice(float(zt))))
        per[name] = {"pred_z_mm": float(pred_z[name]), "truth_z_mm": float(zt), "abs_error_mm": err,
                     "abs_error_slices": err_slices}
    errors_mm = [v["abs_error_mm"] for v in per.values()]
    errors_sl = [v["abs_error_slices"] for v in per.values()]
    return {
        "landmarks": per,
        "missing": missing,
        "mean_abs_error_mm": float(np.mean(errors_mm)) if errors_mm else None,
        "mean_abs_error_slices": float(np.mean(errors_sl)) if errors_sl else None,
        "within_1_slice": float(np.mean([e <= 1.0 + 1e-9 for e in errors_sl])) if errors_sl else None,
        "slice_spacing_mm": float(slice_spacing_mm),
    }


def case_metrics(pred: np.ndarray, truth: np.ndarray, voxel_volume_mm3: float) -> dict[str, Any]:
    """Overlap, volume and label-accuracy metrics of one case (label maps on the same grid)."""
    return {**overlap_metrics(pred, truth), **volume_metrics(pred, truth, voxel_volume_mm3),
            "label_accuracy": label_accuracy(pred, truth)}
