"""Orientation to the axial LPS grid and resampling between grids (world coordinates, LPS mm).

The engine's later stages assume an *axial LPS* grid: direction == identity, so index ``i`` grows to the
patient's left (+x), ``j`` to posterior (+y) and ``k`` to superior (+z). `to_axial_lps` gets there by an
exact permute/flip when the source axes are (within 0.5°) a signed permutation of x, y, z, and by trilinear
resampling otherwise (oblique grids, e.g. gantry-tilt-corrected series). `resample_to_grid` is the general
world-coordinate resampler (order 0 nearest, 1 linear) used to bring results back onto the source grid.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from ..io.volume import CTVolume
from ..core.grid import Grid
from ..core.device import resolve_device

AIR_HU = -1024.0
#: Largest angle (degrees) between an index axis and a world axis still treated as exactly aligned.
ALIGNED_TOLERANCE_DEG = 0.5
#: Output voxels resampled per chunk (bounds memory: coordinates + values ≈ 20 bytes per voxel).
CHUNK_VOXELS = 4_000_000


def axis_permutation(grid: Grid, tol_deg: float = ALIGNED_TOLERANCE_DEG) -> tuple[list[int], list[int]] | None:
    """``(world_axis_of_index_axis, sign)`` when the grid's axes are a signed permutation of LPS, else None.

    ``world_axis_of_index_axis[a]`` is the world axis (0 x, 1 y, 2 z) that index axis ``a`` (0 i, 1 j, 2 k)
    runs along, and ``sign[a]`` is +1 / -1 for its direction.
    """
    d = grid.direction_matrix
    world = [int(np.argmax(np.abs(d[:, a]))) for a in range(3)]
    if sorted(world) != [0, 1, 2]:
        return None
    cos_min = math.cos(math.radians(tol_deg))
    if any(abs(d[world[a], a]) / max(np.linalg.norm(d[:, a]), 1e-12) < cos_min for a in range(3)):
        return None
    return world, [1 if d[world[a], a] > 0 else -1 for a in range(3)]


def _permute_to_lps(vol: CTVolume, world: list[int], sign: list[int]) -> CTVolume:
    """Exact permute/flip of ``vol`` onto direction == identity; every voxel keeps its world position."""
    grid = vol.grid
    index_axis_of_world = [world.index(w) for w in range(3)]  # index axis a running along world axis w
    # array dims are [k, j, i] → dim of index axis a is 2 - a; new array is [z, y, x].
    order = [2 - index_axis_of_world[w] for w in (2, 1, 0)]
    array = np.transpose(vol.hu, order)
    flips = [dim for dim, w in enumerate((2, 1, 0)) if sign[index_axis_of_world[w]] < 0]
    if flips:
        array = np.flip(array, axis=flips)
    corner = [0.0, 0.0, 0.0]  # source index (i, j, k) of the new voxel [0, 0, 0]
    for a in range(3):
        if sign[a] < 0:
            corner[a] = grid.shape[2 - a] - 1
    origin = grid.index_to_world(np.asarray(corner))
    new_grid = Grid(array.shape, tuple(grid.spacing[index_axis_of_world[w]] for w in range(3)),
                    tuple(float(v) for v in origin))
    metadata = dict(vol.metadata)
    if grid.obliquity_deg() > 1e-3:
        metadata["corrections"] = list(metadata.get("corrections", [])) + [
            f"a {grid.obliquity_deg():.2f}° obliquity was ignored (treated as an axis-aligned grid)"]
    return CTVolume(np.ascontiguousarray(array, dtype=np.float32), new_grid, metadata)


def axial_grid_covering(grid: Grid) -> Grid:
    """An identity-direction grid covering the bounding box (LPS mm) of an oblique ``grid``'s voxel centres.

    In-plane spacing comes from the source axes closest to x and y, slice spacing from the axis closest to z.
    """
    nk, nj, ni = grid.shape
    corners = np.array([[i, j, k] for i in (0, ni - 1) for j in (0, nj - 1) for k in (0, nk - 1)], float)
    world = grid.index_to_world(corners)
    lo, hi = world.min(axis=0), world.max(axis=0)
    d = np.abs(grid.direction_matrix)
    z_axis = int(np.argmax(d[2]))
    rest = [a for a in range(3) if a != z_axis]
    x_axis = max(rest, key=lambda a: d[0, a])
    y_axis = [a for a in rest if a != x_axis][0]
    spacing = np.array([grid.spacing[x_axis], grid.spacing[y_axis], grid.spacing[z_axis]])
    counts = np.floor((hi - lo) / spacing + 1e-3).astype(int) + 1
    extent = (counts - 1) * spacing
    origin = (lo + hi) / 2 - extent / 2  # centre the new grid on the old bounding box
    return Grid((int(counts[2]), int(counts[1]), int(counts[0])), tuple(spacing), tuple(origin))


def to_axial_lps(vol: CTVolume, device: "str | torch.device | None" = None) -> CTVolume:
    """``vol`` on an axial LPS grid (direction == identity: +i left, +j posterior, +k superior).

    Axis-aligned inputs (any signed permutation, e.g. RAS-ordered NIfTI or sagittal stacks) are permuted and
    flipped exactly — no interpolation, same voxels. Oblique inputs are resampled trilinearly onto a grid
    covering their bounding box (air, -1024 HU, outside the source); ``metadata["corrections"]`` then
    records it. HU stays float32.
    """
    grid = vol.grid
    if grid.is_axial_lps():
        return vol
    perm = axis_permutation(grid)
    if perm is not None:
        return _permute_to_lps(vol, *perm)
    dst = axial_grid_covering(grid)
    hu = resample_to_grid(vol.hu, grid, dst, order=1, fill=AIR_HU, device=device)
    metadata = dict(vol.metadata)
    note = (f"resampled from an oblique grid ({grid.obliquity_deg():.1f}° from axial) onto an axial LPS grid "
            f"of {dst.spacing[0]:.3g}×{dst.spacing[1]:.3g}×{dst.spacing[2]:.3g} mm (trilinear, air outside)")
    metadata["corrections"] = list(metadata.get("corrections", [])) + [note]
    metadata["preprocess"] = {**dict(metadata.get("preprocess", {})), "oblique_resampled": True,
                              "source_grid": grid.to_dict()}
    return replace(vol, hu=hu, grid=dst, metadata=metadata)


def _index_map(src: Grid, dst: Grid) -> tuple[np.ndarray, np.ndarray]:
    """``(A, b)`` with source index (i, j, k) = A @ destination index + b (float64)."""
    m_src = src.direction_matrix * np.asarray(src.spacing)[None, :]
    m_dst = dst.direction_matrix * np.asarray(dst.spacing)[None, :]
    inv = np.linalg.inv(m_src)
    return inv @ m_dst, inv @ (np.asarray(dst.origin) - np.asarray(src.origin))


def _normalise(index: torch.Tensor, size: int) -> torch.Tensor:
    """Continuous voxel index → grid_sample coordinate (align_corners=True); size-1 axes handled."""
    if size == 1:
        return torch.where(index.abs() <= 0.5, torch.zeros_like(index), torch.full_like(index, 2.0))
    return index * (2.0 / (size - 1)) - 1.0


def resample_to_grid(array: np.ndarray, src: Grid, dst: Grid, *, order: int = 1, fill: float = 0.0,
                     device: "str | torch.device | None" = None) -> np.ndarray:
    """Resample ``array`` ``[k, j, i]`` on ``src`` onto ``dst`` by world position (LPS mm).

    ``order`` 0 = nearest neighbour (labels keep their values and dtype), 1 = trilinear (returns float32).
    Destination voxels outside the source get ``fill``. Runs on ``device`` in chunks of destination slices.
    """
    if order not in (0, 1):
        raise ValueError("order must be 0 (nearest) or 1 (linear)")
    if tuple(array.shape) != tuple(src.shape):
        raise ValueError(f"array shape {array.shape} does not match source grid {src.shape}")
    dev = resolve_device(device)
    if src.same_geometry(dst):
        return np.array(array, copy=True) if order == 0 else np.asarray(array, dtype=np.float32).copy()
    out_dtype = array.dtype if order == 0 else np.float32
    a, b = _index_map(src, dst)
    a_t = torch.as_tensor(a, dtype=torch.float32, device=dev)
    b_t = torch.as_tensor(b, dtype=torch.float32, device=dev)
    nk, nj, ni = src.shape
    source = torch.as_tensor(np.ascontiguousarray(array, dtype=np.float32), device=dev) - float(fill)
    source = source[None, None]
    mk, mj, mi = dst.shape
    rows_per_chunk = max(1, CHUNK_VOXELS // max(1, mj * mi))
    jj, ii = torch.meshgrid(torch.arange(mj, device=dev, dtype=torch.float32),
                            torch.arange(mi, device=dev, dtype=torch.float32), indexing="ij")
    out = np.empty(dst.shape, dtype=out_dtype)
    mode = "nearest" if order == 0 else "bilinear"
    for k0 in range(0, mk, rows_per_chunk):
        k1 = min(mk, k0 + rows_per_chunk)
        kk = torch.arange(k0, k1, device=dev, dtype=torch.float32)[:, None, None].expand(-1, mj, mi)
        dst_index = torch.stack([ii.expand_as(kk), jj.expand_as(kk), kk], dim=-1)  # (i, j, k)
        src_index = dst_index @ a_t.T + b_t
        coords = torch.stack([_normalise(src_index[..., 0], ni), _normalise(src_index[..., 1], nj),
                              _normalise(src_index[..., 2], nk)], dim=-1)
        values = F.grid_sample(source, coords[None], mode=mode, padding_mode="zeros", align_corners=True)
        values = (values[0, 0] + float(fill)).cpu().numpy()
        if order == 0 and np.issubdtype(out_dtype, np.integer):
            values = np.rint(values)
        out[k0:k1] = values.astype(out_dtype, copy=False)
    return out
