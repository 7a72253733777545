"""Head and skull masks that ignore head rests, tables and pillows.

The work is done on a coarse copy of the CT (≈2.5 mm voxels, block mean and block maximum) and brought back
to full resolution at the end:

1. **skull** — among the bone components (> 300 HU), the one that *encloses brain-density tissue* in axial
   slices (a closed ring around 0–90 HU voxels). A head rest or table can be the largest bright component,
   but it never encloses brain, so it is not mistaken for the skull.
2. **foreign objects** — other bone-density components that are not enclosed by soft tissue (over 30 % of
   their in-slice surface faces air), i.e. head holders, table tops; vertebrae and mandible are not.
3. **head** — soft tissue (> -300 HU) minus the foreign objects; after a one-voxel erosion (which breaks thin
   contacts with pillows and pads) the components that touch the skull's interior are kept, grown back by
   a few voxels inside the soft tissue, and holes are filled slice by slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..io.volume import CTVolume
from ..core.grid import Grid
from ..core.device import resolve_device

SOFT_TISSUE_HU = -300.0
BONE_HU = 300.0
BRAIN_HU = (0.0, 90.0)
AIR_HU = -500.0
COARSE_MM = 2.5

#: 3×3×3 structure connecting only within an axial slice (per-slice filling / labelling).
IN_SLICE = np.zeros((3, 3, 3), bool)
IN_SLICE[1] = ndimage.generate_binary_structure(2, 1)


def fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """Fill holes in each axial slice ``[k]`` of a boolean ``[k, j, i]`` mask."""
    return ndimage.binary_fill_holes(mask, structure=IN_SLICE)


@dataclass
class CoarseHead:
    """A coarse (≈2.5 mm) view of the head with its masks, all ``[k, j, i]`` on ``grid``."""

    grid: Grid
    factors: tuple[int, int, int]   # block size (fk, fj, fi) in source voxels
    mean_hu: np.ndarray             # block mean HU, float32
    max_hu: np.ndarray              # block maximum HU, float32
    skull: np.ndarray               # the chosen skull component (bool)
    skull_filled: np.ndarray        # skull with its per-slice interior
    head: np.ndarray                # head (skin inward, holes filled), bool
    foreign: np.ndarray             # bright objects outside the head (head rest, table), bool
    skull_choice: str               # "encloses_brain" | "largest" (fallback or requested)


def coarse_factors(spacing: tuple[float, float, float], target_mm: float = COARSE_MM) -> tuple[int, int, int]:
    """Block size ``(fk, fj, fi)`` that brings ``spacing`` (si, sj, sk) mm close to ``target_mm``."""
    si, sj, sk = spacing
    return tuple(max(1, int(round(target_mm / s))) for s in (sk, sj, si))  # type: ignore[return-value]


def coarse_grid(grid: Grid, factors: tuple[int, int, int]) -> Grid:
    """The grid of ``[fk, fj, fi]`` blocks of ``grid`` (incomplete blocks at the far ends are dropped)."""
    fk, fj, fi = factors
    shape = (max(1, grid.shape[0] // fk), max(1, grid.shape[1] // fj), max(1, grid.shape[2] // fi))
    centre = grid.index_to_world(np.array([(fi - 1) / 2, (fj - 1) / 2, (fk - 1) / 2]))
    spacing = (grid.spacing[0] * fi, grid.spacing[1] * fj, grid.spacing[2] * fk)
    return Grid(shape, spacing, tuple(centre), grid.direction)


def block_pool(hu: np.ndarray, factors: tuple[int, int, int], device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Block mean and block maximum (HU, float32) of ``hu`` ``[k, j, i]`` over ``factors`` blocks."""
    f = tuple(min(fa, n) for fa, n in zip(factors, hu.shape))
    crop = tuple(slice(0, (n // fa) * fa) for n, fa in zip(hu.shape, f))
    t = torch.as_tensor(np.ascontiguousarray(hu[crop], dtype=np.float32), device=device)[None, None]
    mean = F.avg_pool3d(t, f, f)[0, 0].cpu().numpy()
    peak = F.max_pool3d(t, f, f)[0, 0].cpu().numpy()
    return mean, peak


def _enclosed_brain(component: np.ndarray, mean_hu: np.ndarray) -> int:
    """Number of brain-density voxels inside ``component`` in axial slices (0 for open shapes)."""
    box = ndimage.find_objects(component.astype(np.uint8))[0]
    comp = component[box]
    interior = fill_holes_per_slice(comp) & ~comp
    hu = mean_hu[box]
    return int(np.count_nonzero(interior & (hu >= BRAIN_HU[0]) & (hu <= BRAIN_HU[1])))


def _air_facing_fraction(component: np.ndarray, air: np.ndarray) -> float:
    """Fraction of a component's surface voxels within one in-slice voxel of air (bones inside the head ≈ 0)."""
    surface = component & ~ndimage.binary_erosion(component, structure=IN_SLICE)
    near_air = ndimage.binary_dilation(air, structure=IN_SLICE) & surface
    return float(np.count_nonzero(near_air)) / max(1, int(np.count_nonzero(surface)))


def analyse_head(vol: CTVolume, device: "str | torch.device | None" = None, *, skull_choice: str = "enclosing",
                 target_mm: float = COARSE_MM) -> CoarseHead:
    """Coarse skull / head / foreign-object analysis of ``vol`` (see module docstring).

    ``skull_choice="largest"`` reproduces the published rule (largest bright component) for comparison.
    """
    dev = resolve_device(device)
    factors = coarse_factors(vol.grid.spacing, target_mm)
    mean_hu, max_hu = block_pool(vol.hu, factors, dev)
    grid = coarse_grid(vol.grid, factors)
    bone = mean_hu > BONE_HU
    labels, count = ndimage.label(bone, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0
    order = [int(v) for v in np.argsort(sizes)[::-1] if sizes[v] > 0]
    candidates = [v for v in order[:10] if sizes[v] >= 0.02 * sizes[order[0]]] if order else []
    choice = "largest"
    skull_label = candidates[0] if candidates else 0
    if skull_choice == "enclosing" and candidates:
        scores = {v: _enclosed_brain(labels == v, mean_hu) for v in candidates}
        best = max(candidates, key=lambda v: scores[v])
        if scores[best] > 0:
            skull_label, choice = best, "encloses_brain"
    skull = labels == skull_label if skull_label else np.zeros_like(bone)
    air = mean_hu < AIR_HU
    skull_filled = fill_holes_per_slice(skull) if skull.any() else skull
    foreign = np.zeros_like(bone)
    if choice == "encloses_brain":
        for v in candidates:
            if v != skull_label and _air_facing_fraction(labels == v, air) > 0.3:
                foreign |= labels == v
    soft = (mean_hu > SOFT_TISSUE_HU) & ~ndimage.binary_dilation(foreign)
    core = ndimage.binary_erosion(soft)
    core_labels, _ = ndimage.label(core)
    touching = np.unique(core_labels[skull_filled & core])
    touching = touching[touching > 0]
    head = np.isin(core_labels, touching) if touching.size else skull_filled.copy()
    head = ndimage.binary_dilation(head, iterations=3, mask=soft) | skull_filled
    head = fill_holes_per_slice(head)
    return CoarseHead(grid, factors, mean_hu, max_hu, skull, skull_filled, head, foreign, choice)


def upsample_mask(coarse: np.ndarray, factors: tuple[int, int, int], shape: tuple[int, int, int]) -> np.ndarray:
    """Nearest-block upsampling of a coarse ``[k, j, i]`` mask to the full ``shape`` (far-edge blocks extended)."""
    out = coarse
    for axis, (f, n) in enumerate(zip(factors, shape)):
        out = np.repeat(out, f, axis=axis)
        if out.shape[axis] < n:
            pad = [(0, 0)] * 3
            pad[axis] = (0, n - out.shape[axis])
            out = np.pad(out, pad, mode="edge")
        out = out[tuple(slice(0, n) if a == axis else slice(None) for a in range(3))]
    return out


def _full_region(vol: CTVolume, a: CoarseHead) -> np.ndarray:
    """The coarse head grown by one coarse voxel (not into foreign objects), at full resolution."""
    region = (ndimage.binary_dilation(a.head) & ~ndimage.binary_dilation(a.foreign)) | a.head
    return upsample_mask(region, a.factors, vol.grid.shape)


def head_mask(vol: CTVolume, device: "str | torch.device | None" = None,
              analysis: CoarseHead | None = None) -> np.ndarray:
    """The head (skin surface inward) as bool ``[k, j, i]`` on ``vol.grid``; head rests, tables, pillows excluded.

    Soft tissue (> -300 HU) inside the coarse head region (grown by one coarse voxel), holes filled per
    axial slice (so sinuses and the skull interior are included).
    """
    a = analysis if analysis is not None else analyse_head(vol, device)
    return fill_holes_per_slice((vol.hu > SOFT_TISSUE_HU) & _full_region(vol, a))


def skull_mask(vol: CTVolume, device: "str | torch.device | None" = None, bone_hu: float = BONE_HU,
               analysis: CoarseHead | None = None) -> np.ndarray:
    """Bone (> ``bone_hu`` HU, default 300) belonging to the head, as bool ``[k, j, i]`` on ``vol.grid``."""
    a = analysis if analysis is not None else analyse_head(vol, device)
    return (vol.hu > bone_hu) & _full_region(vol, a)
