"""Breakdowns of agreement: by slice thickness, by truth-lesion size, and risk-group classification (pure numpy).

* Slice thickness: each case's slice spacing (mm, the CT grid's k spacing) falls in a bin of
  `SLICE_BINS_MM` (upper bounds inclusive: ≤1, 1–2.5, 2.5–5, >5 mm); per bin the case means of Dice,
  precision, recall and volume difference.
* Lesion size: truth lesions are 26-connected components of ``truth > 0``; a lesion is *detected* when at
  least one of its voxels is calcified in the prediction. Per size bin of `LESION_BINS_MM3` (lower bounds
  inclusive: <5, 5–20, ≥20 mm³): lesions, detected lesions, detection rate, voxel recall within them.
* Risk groups (Jin et al.'s clinical scenario): the evaluated cases are put in four groups by their
  *true* total volume — cut points = the 25th/50th/75th percentiles of the true volumes over these cases
  (``numpy.percentile``, linear) — and the predicted total volume of each case is put in a group with the same
  cut points; accuracy = fraction of cases in the right group. A group holds volumes ``> lower cut`` and
  ``≤ upper cut``. Alternatively the engine's fixed research cut points (`iacseg.measure.risk`: none / low /
  moderate / high) can be used, so the groups mean the same thing across evaluations.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from scipy import ndimage

#: Slice-thickness bins: (name, upper bound in mm, inclusive); the last bound is infinite.
SLICE_BINS_MM: tuple[tuple[str, float], ...] = (("<=1mm", 1.0), ("1-2.5mm", 2.5), ("2.5-5mm", 5.0),
                                                (">5mm", float("inf")))
#: Truth-lesion size bins: (name, lower bound in mm³, inclusive).
LESION_BINS_MM3: tuple[tuple[str, float], ...] = (("<5mm3", 0.0), ("5-20mm3", 5.0), (">=20mm3", 20.0))
QUARTILE_GROUPS: tuple[str, ...] = ("Q1", "Q2", "Q3", "Q4")
_TOL = 1e-6  # spacings are stored as float32 in NIfTI: 2.5 mm must stay in the "1–2.5 mm" bin

_MEANS = ("dice", "precision", "recall", "volume_difference_mm3", "abs_volume_difference_mm3")


def slice_thickness_bin(spacing_mm: float, bins: Sequence[tuple[str, float]] = SLICE_BINS_MM) -> str:
    """Name of the bin of a slice spacing (mm): the first whose inclusive upper bound is ≥ the spacing."""
    for name, upper in bins:
        if spacing_mm <= upper + _TOL:
            return name
    return bins[-1][0]


def _mean(values: Sequence[Any]) -> float | None:
    v = [float(x) for x in values if x is not None]
    return float(np.mean(v)) if v else None


def by_slice_thickness(cases: Sequence[Mapping[str, Any]],
                       bins: Sequence[tuple[str, float]] = SLICE_BINS_MM) -> dict[str, dict[str, Any]]:
    """``{bin: {"n_cases", "mean_dice", "mean_precision", "mean_recall", "mean_volume_difference_mm3",
    "mean_abs_volume_difference_mm3"}}`` over evaluated cases with a ``slice_spacing_mm``; every bin is listed
    (empty bins have ``n_cases`` 0 and None means)."""
    ok = [c for c in cases if c.get("status", "ok") == "ok" and c.get("slice_spacing_mm") is not None]
    out: dict[str, dict[str, Any]] = {}
    for name, _ in bins:
        members = [c for c in ok if slice_thickness_bin(float(c["slice_spacing_mm"]), bins) == name]
        out[name] = {"n_cases": len(members), **{f"mean_{m}": _mean([c.get(m) for c in members]) for m in _MEANS}}
    return out


def lesion_size_bin(volume_mm3: float, bins: Sequence[tuple[str, float]] = LESION_BINS_MM3) -> str:
    """Name of the bin of a lesion volume (mm³): the last whose inclusive lower bound is ≤ the volume."""
    name = bins[0][0]
    for b, lower in bins:
        if volume_mm3 >= lower - _TOL:
            name = b
    return name


def lesion_detection(pred: np.ndarray, truth: np.ndarray, voxel_volume_mm3: float,
                     bins: Sequence[tuple[str, float]] = LESION_BINS_MM3) -> dict[str, dict[str, int]]:
    """Per size bin: ``{"n_lesions", "n_detected", "voxels", "voxels_hit"}`` of the truth lesions of one case.

    ``pred`` and ``truth`` are label maps ``[k, j, i]`` on the same grid (calcified = label > 0); lesions are the
    26-connected components of the truth; ``voxel_volume_mm3`` converts voxel counts to mm³.
    """
    p, t = np.asarray(pred) > 0, np.asarray(truth) > 0
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and truth {t.shape} are on different grids; resample first")
    out = {name: {"n_lesions": 0, "n_detected": 0, "voxels": 0, "voxels_hit": 0} for name, _ in bins}
    labels, n = ndimage.label(t, structure=np.ones((3, 3, 3), dtype=bool))
    if n == 0:
        return out
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    hits = np.bincount(labels[p].ravel(), minlength=n + 1)[1:]
    for size, hit in zip(sizes, hits):
        row = out[lesion_size_bin(float(size) * voxel_volume_mm3, bins)]
        row["n_lesions"] += 1
        row["n_detected"] += int(hit > 0)
        row["voxels"] += int(size)
        row["voxels_hit"] += int(hit)
    return out


def by_lesion_size(cases: Sequence[Mapping[str, Any]],
                   bins: Sequence[tuple[str, float]] = LESION_BINS_MM3) -> dict[str, dict[str, Any]]:
    """Pooled over evaluated cases (their ``lesions_by_size`` from `lesion_detection`):
    ``{bin: {"n_lesions", "n_detected", "detection_rate", "voxel_recall"}}`` (rates None for empty bins)."""
    out: dict[str, dict[str, Any]] = {}
    ok = [c.get("lesions_by_size") or {} for c in cases if c.get("status", "ok") == "ok"]
    for name, _ in bins:
        n = sum(int(c.get(name, {}).get("n_lesions", 0)) for c in ok)
        hit = sum(int(c.get(name, {}).get("n_detected", 0)) for c in ok)
        vox = sum(int(c.get(name, {}).get("voxels", 0)) for c in ok)
        vox_hit = sum(int(c.get(name, {}).get("voxels_hit", 0)) for c in ok)
        out[name] = {"n_lesions": n, "n_detected": hit, "detection_rate": hit / n if n else None,
                     "voxel_recall": vox_hit / vox if vox else None}
    return out


def quartile_cutpoints(truth_volumes_mm3: Sequence[float]) -> list[float]:
    """The 25th, 50th and 75th percentiles (mm³) of the true total volumes (``numpy.percentile``, linear)."""
    v = np.asarray(truth_volumes_mm3, dtype=np.float64)
    if v.size == 0:
        raise ValueError("quartiles need at least one volume")
    return [float(q) for q in np.percentile(v, [25.0, 50.0, 75.0])]


def quartile_group(volume_mm3: float, cutpoints_mm3: Sequence[float]) -> str:
    """``Q1``…``Q4``: the number of cut points strictly below the volume picks the group (upper bounds inclusive)."""
    return QUARTILE_GROUPS[int(np.searchsorted(np.asarray(cutpoints_mm3, dtype=np.float64), volume_mm3, "left"))]


def risk_group_accuracy(pred_volumes_mm3: Sequence[float], truth_volumes_mm3: Sequence[float],
                        cutpoints_mm3: Sequence[float] | None = None) -> dict[str, Any]:
    """Accuracy of the risk group from the predicted total volume (mm³) against the group from the true one.

    ``cutpoints_mm3`` None → quartile groups ``Q1``…``Q4`` with cut points from the true volumes
    (`quartile_cutpoints`); otherwise the engine's groups (``none``/``low``/``moderate``/``high``,
    `iacseg.measure.risk.risk_group`) with these two cut points. Returns ``{"method", "cutpoints_mm3", "groups",
    "n_cases", "n_correct", "accuracy", "confusion"}``; ``confusion[true group][predicted group]`` counts cases.
    """
    p, t = [float(v) for v in pred_volumes_mm3], [float(v) for v in truth_volumes_mm3]
    if len(p) != len(t):
        raise ValueError("predicted and true volumes must pair one to one")
    if not t:
        return {"method": None, "cutpoints_mm3": None, "groups": [], "n_cases": 0, "n_correct": 0,
                "accuracy": None, "confusion": {}}
    if cutpoints_mm3 is None:
        cuts = quartile_cutpoints(t)
        groups, method = list(QUARTILE_GROUPS), "quartiles of the true total volume over the evaluated cases"

        def group(v: float) -> str:
            return quartile_group(v, cuts)
        cut_record: Any = cuts
    else:
        from ..measure.risk import risk_group

        cuts = [float(c) for c in cutpoints_mm3]
        first = risk_group(0.0, cuts)["cutpoints_mm3"]
        groups, method, cut_record = list(first), "engine risk groups (iacseg.measure.risk)", first

        def group(v: float) -> str:
            return str(risk_group(v, cuts)["group"])
    confusion = {g: {h: 0 for h in groups} for g in groups}
    correct = 0
    for vp, vt in zip(p, t):
        gt, gp = group(vt), group(vp)
        confusion[gt][gp] += 1
        correct += int(gt == gp)
    return {"method": method, "cutpoints_mm3": cut_record, "groups": groups, "n_cases": len(t), "n_correct": correct,
            "accuracy": correct / len(t), "confusion": confusion}
