"""The region around both internal carotid arteries at the skull base (a box of array slices ``[k, j, i]``).

With landmarks: z from the lowest carotid canal − 30 mm to the highest anterior clinoid + 25 mm; left–right
within 45 mm of the midsagittal plane; antero-posterior from the plane point's y − 50 mm (anterior) to
y + 40 mm (posterior). All in LPS mm, clipped to the volume.

Without landmarks (fallback from anatomy): the skull-base level is the axial level, in the lower half of the
head, whose 10 mm band holds the most dense bone (> 700 HU: petrous bones, clivus, sphenoid) of the head
(head rests excluded, `head.analyse_head`) within 60 mm of the midsagittal plane; z spans that level ± 50 mm.
The in-plane limits are the same as above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from ..core.plane import MidsagittalPlane
from ..io.volume import CTVolume
from .head import BONE_HU, CoarseHead, analyse_head

if TYPE_CHECKING:  # only for type hints: keep this stage importable without the outputs stage
    import torch

    from ..core.landmarks import Landmark

LATERAL_MM = 45.0
ANTERIOR_MM = 50.0
POSTERIOR_MM = 40.0
BELOW_CANAL_MM = 30.0
ABOVE_CLINOID_MM = 25.0
SKULL_BASE_HALF_HEIGHT_MM = 50.0
DENSE_BONE_HU = 700.0
BAND_MM = 10.0


@dataclass(frozen=True)
class ICARegion:
    """The ICA box: array ``slices`` ``(k, j, i)`` on the volume's grid and its LPS extent for reports."""

    slices: tuple[slice, slice, slice]
    box_mm: dict            # {"min_lps_mm": [x, y, z], "max_lps_mm": [...], "size_mm": [...]}
    method: str             # "landmarks" | "skull_base_bone" | "whole_volume"
    skull_base_z_mm: float | None = None


def skull_base_z(vol: CTVolume, plane: MidsagittalPlane, device: "str | torch.device | None" = None,
                 analysis: CoarseHead | None = None) -> float | None:
    """World z (mm) of the densest-bone axial band in the lower half of the head (see module docstring).

    Works on the coarse (≈2.5 mm) head analysis so that head rests and tables do not count.
    """
    a = analysis if analysis is not None else analyse_head(vol, device)
    grid = a.grid
    nk, nj, ni = grid.shape
    kji = np.argwhere(np.ones((1, nj, ni), bool))
    xyz = grid.kji_to_world(kji)
    bone = (a.max_hu > BONE_HU) & a.head
    dense_per_slice = np.zeros(nk)
    for k in range(nk):
        xyz[:, 2] = grid.index_to_world(np.array([0.0, 0.0, k]))[2]
        near = (np.abs(plane.signed_distance(xyz)) <= 60.0).reshape(nj, ni)
        dense_per_slice[k] = np.count_nonzero((a.max_hu[k] > DENSE_BONE_HU) & a.head[k] & near)
    with_bone = np.flatnonzero(bone.any(axis=(1, 2)))
    if with_bone.size == 0 or dense_per_slice.max() == 0:
        return None
    band = max(1, int(round(BAND_MM / grid.spacing[2])))
    smooth = ndimage.uniform_filter1d(dense_per_slice, band, mode="constant")
    top = int(with_bone.min() + (with_bone.max() - with_bone.min()) // 2)
    k_best = int(np.argmax(smooth[: top + 1]))
    return float(grid.index_to_world(np.array([0.0, 0.0, k_best]))[2])


def _slices_for_box(vol: CTVolume, lo: np.ndarray, hi: np.ndarray) -> tuple[slice, slice, slice]:
    """Array slices (k, j, i) of the voxels whose index box covers the LPS box ``lo..hi``, clipped."""
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    index = vol.grid.world_to_index(corners)
    first = np.floor(index.min(axis=0) + 1e-6).astype(int)
    last = np.ceil(index.max(axis=0) - 1e-6).astype(int)
    sizes = np.array(vol.grid.shape[::-1])  # (ni, nj, nk)
    first = np.clip(first, 0, sizes - 1)
    stop = np.clip(last + 1, first + 1, sizes)
    return (slice(int(first[2]), int(stop[2])), slice(int(first[1]), int(stop[1])), slice(int(first[0]), int(stop[0])))


def roi_box_mm(vol: CTVolume, roi: tuple[slice, slice, slice]) -> dict:
    """LPS extent (mm) of the voxel centres in ``roi`` on ``vol.grid``: min, max and size."""
    ks, js, is_ = roi
    corners = np.array([[i, j, k] for i in (is_.start, is_.stop - 1) for j in (js.start, js.stop - 1)
                        for k in (ks.start, ks.stop - 1)], float)
    world = vol.grid.index_to_world(corners)
    lo, hi = world.min(axis=0), world.max(axis=0)
    return {"min_lps_mm": [float(v) for v in lo], "max_lps_mm": [float(v) for v in hi],
            "size_mm": [float(v) for v in hi - lo],
            "slices_kji": [[s.start, s.stop] for s in roi]}


def ica_region_box(vol: CTVolume, plane: MidsagittalPlane, landmarks: "dict[str, Landmark] | None" = None,
                   device: "str | torch.device | None" = None) -> ICARegion:
    """The ICA box with its LPS extent and how it was found (see module docstring)."""
    base = None
    canal = [lm.z_mm for name, lm in (landmarks or {}).items() if name.endswith("carotid_canal")]
    clinoid = [lm.z_mm for name, lm in (landmarks or {}).items() if name.endswith("anterior_clinoid")]
    if canal and clinoid:
        z_lo, z_hi, method = min(canal) - BELOW_CANAL_MM, max(clinoid) + ABOVE_CLINOID_MM, "landmarks"
    else:
        base = skull_base_z(vol, plane, device)
        if base is None:
            z_lo, z_hi, method = -np.inf, np.inf, "whole_volume"
        else:
            z_lo, z_hi = base - SKULL_BASE_HALF_HEIGHT_MM, base + SKULL_BASE_HALF_HEIGHT_MM
            method = "skull_base_bone"
    p = np.asarray(plane.point, float)
    n = np.asarray(plane.normal, float) / np.linalg.norm(plane.normal)
    y_lo, y_hi = p[1] - ANTERIOR_MM, p[1] + POSTERIOR_MM
    world = vol.grid.index_to_world(np.array([[0, 0, 0], np.array(vol.grid.shape[::-1]) - 1], float))
    z_clip = (max(z_lo, world[:, 2].min()), min(z_hi, world[:, 2].max()))
    # x of the (possibly yawed/rolled) plane at the corners of the y/z range, widened by LATERAL_MM each side.
    xs = [p[0] - (n[1] * (y - p[1]) + n[2] * (z - p[2])) / n[0] for y in (y_lo, y_hi) for z in z_clip]
    lo = np.array([min(xs) - LATERAL_MM, y_lo, z_lo])
    hi = np.array([max(xs) + LATERAL_MM, y_hi, z_hi])
    lo, hi = np.maximum(lo, world.min(axis=0)), np.minimum(hi, world.max(axis=0))
    hi = np.maximum(hi, lo)
    slices = _slices_for_box(vol, lo, hi)
    return ICARegion(slices, roi_box_mm(vol, slices), method, base)


def ica_region(vol: CTVolume, plane: MidsagittalPlane,
               landmarks: "dict[str, Landmark] | None" = None) -> tuple[slice, slice, slice]:
    """Array slices ``(k, j, i)`` of a box on ``vol.grid`` around both ICAs at the skull base (see module doc)."""
    return ica_region_box(vol, plane, landmarks).slices
