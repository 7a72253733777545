"""Agatston-style calcium score on the slices of a label map.

Formula (Agatston et al. 1990, adapted to arbitrary slice spacing):

* the grid's k slices are scored one by one; in each slice, a *lesion* is a 2D 8-connected (in-plane) group of
  calcified voxels (label > 0, whatever their segment);
* a lesion counts only when its area ``n_pixels × si × sj`` is ≥ 1 mm² (``MIN_LESION_AREA_MM2``);
* its density weight comes from its peak HU in that slice: 130–199 → 1, 200–299 → 2, 300–399 → 3, ≥ 400 → 4
  (peak < 130 HU → 0, possible only for hand-edited labels);
* slice score = Σ lesion area (mm²) × weight; the case score = Σ slice scores × (sk / 3.0), which normalises to
  the 3 mm slices the original score was defined on (sk = slice spacing in mm).

A lesion that straddles segments gives each segment its own pixels' area × the lesion's weight, so the
segment scores add up to the total exactly.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..core.contracts import CALCIUM_HU

REFERENCE_SLICE_MM = 3.0
MIN_LESION_AREA_MM2 = 1.0
#: Lower HU bounds of density weights 1, 2, 3, 4.
DENSITY_BOUNDS_HU: tuple[float, ...] = (CALCIUM_HU, 200.0, 300.0, 400.0)

_IN_PLANE_8 = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE_8[1] = True  # connect within a k slice only (8-connected), never across slices


def density_weight(peak_hu: np.ndarray | float) -> np.ndarray:
    """Agatston density weight 0..4 of a lesion's peak HU (see module docstring)."""
    return np.digitize(np.asarray(peak_hu, dtype=np.float64), DENSITY_BOUNDS_HU).astype(np.int64)


def agatston_by_label(labels: np.ndarray, hu: np.ndarray, spacing: tuple[float, float, float],
                      n_labels: int = 8) -> np.ndarray:
    """Agatston-style score per label value: float64 array of length ``n_labels + 1`` (index 0 unused, 0.0).

    ``labels``/``hu``: ``[k, j, i]`` arrays (HU float) on a grid with ``spacing`` ``(si, sj, sk)`` mm. Callers
    may pass a crop around the calcified voxels; the score does not depend on the crop.
    """
    si, sj, sk = (float(s) for s in spacing)
    labels = np.asarray(labels)
    components, n = ndimage.label(labels > 0, structure=_IN_PLANE_8)
    out = np.zeros(n_labels + 1, dtype=np.float64)
    if n == 0:
        return out
    in_lesion = components > 0
    lesion = components[in_lesion].astype(np.int64)
    peak = np.full(n + 1, -np.inf)  # per lesion over its pixels only (ndimage.maximum sorts the whole array)
    np.maximum.at(peak, lesion, np.asarray(hu)[in_lesion].astype(np.float64))
    peak = peak[1:]
    counts = np.bincount(lesion * (n_labels + 1) + labels[in_lesion].astype(np.int64),
                         minlength=(n + 1) * (n_labels + 1))
    counts = counts.reshape(n + 1, n_labels + 1)[1:]  # [lesion, label] pixel counts
    pixel_area = si * sj
    area = counts.sum(axis=1) * pixel_area
    weight = density_weight(peak) * (area >= MIN_LESION_AREA_MM2 - 1e-9)
    out += (counts * pixel_area * weight[:, None]).sum(axis=0)
    out[0] = 0.0
    return out * (sk / REFERENCE_SLICE_MM)
