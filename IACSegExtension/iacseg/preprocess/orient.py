"""Orientation to the axial LPS grid and resampling between grids (world coordinates, LPS mm).

The engine's later stages assume an *axial LPS* grid: direction == identity, so index ``i`` grows to the
patient's left (+x), ``j`` to posterior (+y) and ``k`` to superior (+z). `to_axial_lps` gets there by an
exact permute/flip when the source axes are (within 0.5°) a signed permutation of x, y, z, and by trilinear
resampling otherwise (oblique grids, e.g. gantry-tilt-corrected series). `resample_to_grid` is the general
world-coordinate resampler (order 0 nearest, 1 linear) used to bring results back onto the source grid.
It computes only the destination voxels that the source (or, with `resample_box`, a box of it where the
values differ from the fill, e.g. a probability map's region) can reach; the rest is exactly the fill, so the
result is voxel for voxel that of resampling everything.
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
#: Source voxels of slack around the region that can reach a destination voxel (float32 rounding ≪ this).
SUPPORT_MARGIN = 0.01


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


def _support_window(a: np.ndarray, b: np.ndarray, src_shape: tuple[int, int, int],
                    support: tuple[slice, slice, slice] | None,
                    dst_shape: tuple[int, int, int]) -> np.ndarray:
    """Per destination slice k, the rectangle ``[j0, j1, i0, i1]`` (stop exclusive; j0 = j1 when empty) of the
    destination voxels whose value can differ from the fill.

    A destination voxel gets a contribution only when its source index lies strictly within
    ``(start - 1, stop)`` on every axis of the ``support`` box (the voxels of the source that differ from the
    fill), for linear and nearest interpolation alike. That box, widened by ``SUPPORT_MARGIN`` voxels for
    rounding, is a parallelepiped in destination index space; each slice's rectangle bounds its cross-section
    (edge/plane intersections, float64). Voxels outside are exactly the fill, so skipping them changes nothing.
    A source with a single-voxel axis gets no window (grid_sample reads that voxel at any coordinate).
    """
    nk_s, nj_s, ni_s = src_shape
    mk, mj, mi = dst_shape
    if min(src_shape) == 1:  # grid_sample reads a single-voxel axis at any coordinate: no window on it
        return np.tile(np.array([0, mj, 0, mi]), (mk, 1))
    if support is None:
        support = (slice(0, nk_s), slice(0, nj_s), slice(0, ni_s))
    lo = np.array([support[2].start, support[1].start, support[0].start], float) - 1.0 - SUPPORT_MARGIN
    hi = np.array([support[2].stop, support[1].stop, support[0].stop], float) + SUPPORT_MARGIN
    corners = np.array([[(lo, hi)[x][0], (lo, hi)[y][1], (lo, hi)[z][2]]
                        for x in (0, 1) for y in (0, 1) for z in (0, 1)])
    dst_pts = np.linalg.solve(a, (corners - b).T).T  # [8, (i, j, k)] destination continuous index
    edges = [(p, q) for p in range(8) for q in range(p + 1, 8) if bin(p ^ q).count("1") == 1]
    p0 = dst_pts[[e[0] for e in edges]]
    p1 = dst_pts[[e[1] for e in edges]]
    window = np.zeros((mk, 4), int)
    ks = np.arange(mk, dtype=float)[:, None]
    dk = p1[:, 2] - p0[:, 2]
    flat = np.abs(dk) < 1e-12
    t = (ks - p0[:, 2]) / np.where(flat, 1.0, dk)
    hit = ~flat & (t >= -1e-9) & (t <= 1 + 1e-9)
    # an edge in a k plane adds both ends when it lies in that plane (they are also ends of crossing edges)
    in_plane = flat & (np.abs(ks - p0[:, 2]) < 1e-9)
    for axis, col in ((1, 0), (0, 2)):  # j → window[:, 0:2], i → window[:, 2:4]
        x = p0[:, axis] + t * (p1[:, axis] - p0[:, axis])
        both = np.concatenate([np.where(hit, x, np.nan), np.where(in_plane, p0[:, axis], np.nan),
                               np.where(in_plane, p1[:, axis], np.nan)], axis=1)
        empty = np.isnan(both).all(axis=1)
        both[empty] = 0.0
        size = (mj, mi)[col // 2]
        window[:, col] = np.clip(np.ceil(np.nanmin(both, axis=1)), 0, size)
        window[:, col + 1] = np.clip(np.floor(np.nanmax(both, axis=1)) + 1, 0, size)
        window[empty, col + 1] = window[empty, col]
    bad = (window[:, 1] <= window[:, 0]) | (window[:, 3] <= window[:, 2])
    window[bad] = 0
    return window


def resample_box(array: np.ndarray, src: Grid, dst: Grid, *, order: int = 1, fill: float = 0.0,
                 support: tuple[slice, slice, slice] | None = None,
                 device: "str | torch.device | None" = None) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """`resample_to_grid` restricted to where the result can differ from ``fill``: ``(box, values)``.

    ``box`` is a ``[k, j, i]`` tuple of slices of ``dst`` and ``values`` the resampled array there; every
    destination voxel outside ``box`` is exactly ``fill``. ``support`` (slices ``[k, j, i]`` of ``src``) promises
    that ``array`` equals ``fill`` outside it, e.g. a probability map that is 0 outside its region box; the
    work is then limited to the destination voxels that box can reach (one voxel of interpolation support
    around it). Each computed voxel goes through the same arithmetic as when resampling everything, so
    ``values`` equals that result voxel for voxel.
    """
    return _resample(array, src, dst, order, fill, support, device, whole=False)


def resample_to_grid(array: np.ndarray, src: Grid, dst: Grid, *, order: int = 1, fill: float = 0.0,
                     device: "str | torch.device | None" = None) -> np.ndarray:
    """Resample ``array`` ``[k, j, i]`` on ``src`` onto ``dst`` by world position (LPS mm).

    ``order`` 0 = nearest neighbour (labels keep their values and dtype), 1 = trilinear (returns float32).
    Destination voxels outside the source get ``fill``. Runs on ``device`` in chunks of destination slices,
    each computed only in the rectangle that the source can reach (the rest is ``fill``; `resample_box`).
    """
    return _resample(array, src, dst, order, fill, None, device, whole=True)[1]


def _resample(array: np.ndarray, src: Grid, dst: Grid, order: int, fill: float,
              support: tuple[slice, slice, slice] | None, device: "str | torch.device | None",
              whole: bool) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """``(box, out)``: ``out`` covers ``box`` of ``dst`` (all of ``dst`` when ``whole``); see `resample_box`."""
    if order not in (0, 1):
        raise ValueError("order must be 0 (nearest) or 1 (linear)")
    if tuple(array.shape) != tuple(src.shape):
        raise ValueError(f"array shape {array.shape} does not match source grid {src.shape}")
    out_dtype = array.dtype if order == 0 else np.float32
    fill_value = np.rint(fill) if np.issubdtype(out_dtype, np.integer) else fill
    everything = (slice(0, dst.shape[0]), slice(0, dst.shape[1]), slice(0, dst.shape[2]))
    if src.same_geometry(dst):
        box = everything if (whole or support is None) else support
        return box, np.array(array[box], dtype=out_dtype, copy=True)
    dev = resolve_device(device)
    a, b = _index_map(src, dst)
    window = _support_window(a, b, tuple(src.shape), support, tuple(dst.shape))
    rows = np.flatnonzero(window[:, 1] > window[:, 0])
    if whole:
        box = everything
    elif rows.size == 0:
        box = (slice(0, 0), slice(0, 0), slice(0, 0))
    else:
        used = window[rows]
        box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(used[:, 0].min()), int(used[:, 1].max())),
               slice(int(used[:, 2].min()), int(used[:, 3].max())))
    out = np.empty(tuple(sl.stop - sl.start for sl in box), dtype=out_dtype)
    bk, bj, bi = (sl.start for sl in box)
    a_t = torch.as_tensor(a, dtype=torch.float32, device=dev)
    b_t = torch.as_tensor(b, dtype=torch.float32, device=dev)
    sizes = (src.shape[2], src.shape[1], src.shape[0])  # (i, j, k)
    scale = torch.as_tensor([2.0 / max(1, n - 1) for n in sizes], dtype=torch.float32, device=dev)
    source = torch.as_tensor(np.ascontiguousarray(array, dtype=np.float32), device=dev)
    if float(fill) != 0.0:
        source = source - float(fill)
    source = source[None, None]
    rows_per_chunk = max(1, CHUNK_VOXELS // max(1, out.shape[1] * out.shape[2]))
    mode = "nearest" if order == 0 else "bilinear"
    for k0 in range(box[0].start, box[0].stop, rows_per_chunk):
        k1 = min(box[0].stop, k0 + rows_per_chunk)
        w = window[k0:k1]
        w = w[w[:, 1] > w[:, 0]]
        part = out[k0 - bk:k1 - bk]
        if len(w) == 0:
            part[...] = fill_value
            continue
        j0, j1, i0, i1 = int(w[:, 0].min()), int(w[:, 1].max()), int(w[:, 2].min()), int(w[:, 3].max())
        part[:, :j0 - bj] = fill_value  # the rest of the chunk, outside the rectangle, is exactly the fill
        part[:, j1 - bj:] = fill_value
        part[:, j0 - bj:j1 - bj, :i0 - bi] = fill_value
        part[:, j0 - bj:j1 - bj, i1 - bi:] = fill_value
        kk = torch.arange(k0, k1, device=dev, dtype=torch.float32)[:, None, None].expand(-1, j1 - j0, i1 - i0)
        jj, ii = torch.meshgrid(torch.arange(j0, j1, device=dev, dtype=torch.float32),
                                torch.arange(i0, i1, device=dev, dtype=torch.float32), indexing="ij")
        dst_index = torch.stack([ii.expand_as(kk), jj.expand_as(kk), kk], dim=-1)  # (i, j, k)
        coords = dst_index @ a_t.T
        coords += b_t  # the source index (i, j, k), normalised in place for grid_sample (as `_normalise`)
        if min(sizes) > 1:
            coords.mul_(scale).sub_(1.0)
        else:
            for axis in range(3):
                coords[..., axis] = _normalise(coords[..., axis], sizes[axis])
        values = F.grid_sample(source, coords[None], mode=mode, padding_mode="zeros", align_corners=True)[0, 0]
        values = values.add_(float(fill)).cpu().numpy()
        if order == 0 and np.issubdtype(out_dtype, np.integer):
            values = np.rint(values)
        part[:, j0 - bj:j1 - bj, i0 - bi:i1 - bi] = values.astype(out_dtype, copy=False)
    return box, out
