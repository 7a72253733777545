"""Calcified lesions: 3D 26-connected components of a label map's non-zero voxels, and their table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ..core.contracts import SEGMENTS
from ..core.grid import Grid

_FULL_26 = np.ones((3, 3, 3), dtype=bool)


@dataclass
class LesionStats:
    """Per-lesion arrays (lesion n at row n - 1) computed on one labelling of the calcified voxels."""

    counts: np.ndarray  # int64 [n_lesions, n_labels + 1]: voxels of each label value in each lesion
    peak_hu: np.ndarray  # float64 [n_lesions]
    sum_hu: np.ndarray  # float64 [n_lesions]
    centroid_kji: np.ndarray  # float64 [n_lesions, 3], array index (k, j, i) of the voxel centres' mean

    @property
    def n(self) -> int:
        return int(self.counts.shape[0])

    def lesion_count_by_label(self) -> np.ndarray:
        """Number of lesions touching each label value (index 0 unused); a straddling lesion counts in each."""
        return (self.counts > 0).sum(axis=0)


def lesion_stats(labels: np.ndarray, hu: np.ndarray, n_labels: int = 8) -> LesionStats:
    """26-connected lesions of ``labels > 0`` (``[k, j, i]``) with HU from ``hu`` (same shape, HU)."""
    components, n = ndimage.label(np.asarray(labels) > 0, structure=_FULL_26)
    if n == 0:
        return LesionStats(np.zeros((0, n_labels + 1), np.int64), np.zeros(0), np.zeros(0), np.zeros((0, 3)))
    inside = components > 0
    comp = components[inside].astype(np.int64) - 1
    lab = np.asarray(labels)[inside].astype(np.int64)
    values = np.asarray(hu, dtype=np.float64)[inside]
    counts = np.bincount(comp * (n_labels + 1) + lab, minlength=n * (n_labels + 1)).reshape(n, n_labels + 1)
    peak = np.full(n, -np.inf)
    np.maximum.at(peak, comp, values)
    sum_hu = np.bincount(comp, weights=values, minlength=n)
    kji = np.nonzero(inside)
    voxels = counts.sum(axis=1)
    centroid = np.stack([np.bincount(comp, weights=axis.astype(np.float64), minlength=n) / voxels for axis in kji],
                        axis=1)
    return LesionStats(counts, peak, sum_hu, centroid)


def lesion_table(stats: LesionStats, grid: Grid, offset_kji: tuple[int, int, int] = (0, 0, 0)) -> list[dict[str, Any]]:
    """One record per lesion (ids 1..n in raster order of their first voxel).

    ``segment``: the label with most voxels in the lesion (ties → the lower label value); ``segments``: every
    segment it touches; ``volume_mm3`` = voxel count × voxel volume; HU in HU; ``centroid_lps_mm``: mean voxel
    centre in world LPS mm. ``offset_kji`` is the crop origin when ``stats`` came from a crop of ``grid``.
    """
    voxel_mm3 = grid.voxel_volume_mm3
    table = []
    for n in range(stats.n):
        per_label = stats.counts[n]
        voxels = int(per_label.sum())
        touched = [SEGMENTS[v] for v in np.flatnonzero(per_label) if v in SEGMENTS]
        majority = int(np.argmax(per_label[1:]) + 1)
        centre = grid.kji_to_world((stats.centroid_kji[n] + np.asarray(offset_kji))[None, :])[0]
        table.append({
            "id": n + 1,
            "segment": SEGMENTS.get(majority, str(majority)),
            "segments": touched,
            "voxel_count": voxels,
            "volume_mm3": voxels * voxel_mm3,
            "peak_hu": float(stats.peak_hu[n]),
            "mean_hu": float(stats.sum_hu[n] / voxels),
            "centroid_lps_mm": [round(float(v), 3) for v in centre],
        })
    return table
