"""All measures of one case, per ICA segment and in total (the numbers of report.json / report.csv).

Per segment (the 8 DESIGN names) and in total:

* ``volume_mm3`` = voxel count × voxel volume (si·sj·sk) — equal to the label map's volume exactly;
* ``agatston`` — Agatston-style score, see `iacseg.measure.agatston` (area mm² × density weight 1–4 per 2D
  lesion ≥ 1 mm², summed over slices, × slice spacing / 3 mm);
* ``mass_mg`` — mass score = c × Σ over voxels (voxel volume mm³ × HU) = c × volume × mean HU, with the scanner
  calibration factor c in mg/(mm³·HU); default ``DEFAULT_MASS_CALIBRATION`` = 0.001 (i.e. 1 mg/cm³ of calcium
  hydroxyapatite per HU, an uncalibrated approximation — pass the factor measured on your scanner's phantom);
* ``lesion_count`` — 3D 26-connected components of all calcified voxels; a lesion straddling two segments
  counts in each, the total counts it once;
* ``peak_hu`` / ``mean_hu`` — over the segment's voxels (None when empty).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..core.contracts import CALCIUM_HU, SEGMENTS
from ..core.grid import Grid
from ..mapping.sparse import nonzero_kji
from .agatston import MIN_LESION_AREA_MM2, REFERENCE_SLICE_MM, agatston_by_label
from .lesions import lesion_stats, lesion_table
from .risk import risk_group

DEFAULT_MASS_CALIBRATION = 0.001  # mg / (mm³ · HU)
N_LABELS = max(SEGMENTS)


def _crop(labels: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Bounding box (padded by one voxel) of the non-zero voxels, or None when there are none."""
    kji = nonzero_kji(labels)
    if len(kji) == 0:
        return None
    lo = np.maximum(kji.min(axis=0) - 1, 0)
    hi = np.minimum(kji.max(axis=0) + 2, labels.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]


def measure_case(labels: np.ndarray, hu: np.ndarray, grid: Grid,
                 risk_cutpoints_mm3: Sequence[float] | Mapping[str, float] | None = None,
                 mass_calibration: float | None = None) -> dict[str, Any]:
    """Measures of a segment label map (uint8 ``[k, j, i]``, values 0..8) with its CT (HU, same shape) on ``grid``.

    Returns ``{"segments": {name: {label, voxel_count, volume_mm3, agatston, mass_mg, lesion_count, peak_hu,
    mean_hu}}, "total": {...same without label}, "lesions": [per-lesion records], "risk_group": {...},
    "methods": {...}}``. Units: mm³, mg, HU; see the module docstring for the formulas.
    """
    labels = np.asarray(labels)
    hu = np.asarray(hu)
    if labels.shape != tuple(grid.shape) or hu.shape != labels.shape:
        raise ValueError(f"labels {labels.shape}, HU {hu.shape} and grid {grid.shape} shapes differ")
    if labels.size and int(labels.max()) > N_LABELS:
        raise ValueError(f"label values must be 0..{N_LABELS}, found {int(labels.max())}")
    c = DEFAULT_MASS_CALIBRATION if mass_calibration is None else float(mass_calibration)
    voxel_mm3 = grid.voxel_volume_mm3
    box = _crop(labels)
    if box is None:
        lab_c = np.zeros((1, 1, 1), np.uint8)
        hu_c = np.zeros((1, 1, 1), np.float32)
        offset = (0, 0, 0)
    else:
        lab_c, hu_c = labels[box], hu[box]
        offset = tuple(s.start for s in box)

    inside = lab_c > 0
    lab_v = lab_c[inside].astype(np.int64)
    hu_v = hu_c[inside].astype(np.float64)
    counts = np.bincount(lab_v, minlength=N_LABELS + 1)
    sum_hu = np.bincount(lab_v, weights=hu_v, minlength=N_LABELS + 1)
    peak = np.full(N_LABELS + 1, -np.inf)
    np.maximum.at(peak, lab_v, hu_v)
    agatston = agatston_by_label(lab_c, hu_c, grid.spacing, N_LABELS)
    stats = lesion_stats(lab_c, hu_c, N_LABELS)
    lesions_by_label = stats.lesion_count_by_label()

    segments: dict[str, dict[str, Any]] = {}
    for value, name in SEGMENTS.items():
        n = int(counts[value])
        segments[name] = {
            "label": value,
            "voxel_count": n,
            "volume_mm3": n * voxel_mm3,
            "agatston": float(agatston[value]),
            "mass_mg": float(c * voxel_mm3 * sum_hu[value]),
            "lesion_count": int(lesions_by_label[value]),
            "peak_hu": float(peak[value]) if n else None,
            "mean_hu": float(sum_hu[value] / n) if n else None,
        }
    n_total = int(counts[1:].sum())
    total = {
        "voxel_count": n_total,
        "volume_mm3": n_total * voxel_mm3,
        "agatston": float(agatston[1:].sum()),
        "mass_mg": float(c * voxel_mm3 * sum_hu[1:].sum()),
        "lesion_count": stats.n,
        "peak_hu": float(hu_v.max()) if n_total else None,
        "mean_hu": float(hu_v.mean()) if n_total else None,
    }
    return {
        "segments": segments,
        "total": total,
        "lesions": lesion_table(stats, grid, offset),  # type: ignore[arg-type]
        "risk_group": risk_group(total["volume_mm3"], risk_cutpoints_mm3),
        "methods": {
            "voxel_volume_mm3": voxel_mm3,
            "calcium_hu": CALCIUM_HU,
            "agatston": f"per k slice: 2D 8-connected lesions with area >= {MIN_LESION_AREA_MM2} mm2, area mm2 x "
                        f"density weight (peak HU 130-199:1, 200-299:2, 300-399:3, >=400:4), summed, x slice "
                        f"spacing / {REFERENCE_SLICE_MM} mm",
            "mass": "c x sum(voxel volume mm3 x HU) over calcified voxels",
            "mass_calibration_mg_per_mm3_hu": c,
            "lesions": "3D 26-connected components of calcified voxels",
        },
    }
