"""From a stack of DICOM slices (each with its own ImagePositionPatient) to a regular orthogonal grid.

Pure numpy/scipy. A stack is *regular* when its slices are equally spaced along the slice normal
``n = row_dir × col_dir`` (within 1 %) and not sheared (every slice origin on the line through the first
one along ``n``). Otherwise — gantry tilt (a sheared stack) or uneven spacing (missing or overlapping
slices) — it is resampled onto the grid with direction columns ``(row_dir, col_dir, n)``, origin the
first slice's position and slice spacing the median gap: each output voxel's world point is located in
the two input slices that bracket it along ``n`` (in-plane position by projection, which undoes the
shear), interpolated linearly in-plane and between the slices; points outside the data become air.
This puts anatomy at the same world positions as dcm2niix's tilt correction does.

Uneven spacing is not the same as missing slices. Scanners use several spacings in one series (e.g. GE: 4 mm
through the skull base, 7 mm above, with an overlap between the two zones); such a series is complete. A gap
counts as *missing slices* (`missing_slice_gaps`) when it is more than 1.5 × the local spacing (the median of
up to three gaps on each side of it) and is not part of a zone of that spacing (three or more consecutive gaps
equal within 5 %). The reader refuses a series with missing slices unless the user allows gaps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.progress import Progress, no_progress
from ..core.grid import Grid

AIR_HU = -1024.0
GAP_TOLERANCE = 0.01  # relative: gaps within 1 % of the median count as equal
DUPLICATE_MM = 0.01  # slices closer than this along the normal are the same slice
MISSING_FACTOR = 1.5  # a gap this many times the local spacing means missing slices …
ZONE_TOLERANCE = 0.05  # … unless it belongs to a run of ≥ ZONE_RUN gaps equal within 5 % (a spacing zone)
ZONE_RUN = 3
LOCAL_WINDOW = 3  # gaps on each side that give the local spacing


@dataclass
class StackLayout:
    """Where the slices of a stack are, relative to its first slice after sorting (mm)."""

    order: np.ndarray  # indices of the input slices, sorted along n, duplicates removed
    origin: np.ndarray  # ImagePositionPatient of the first kept slice (LPS mm)
    along_normal: np.ndarray  # [m] offset of each kept slice along n from the first (mm, ascending)
    in_plane: np.ndarray  # [m, 2] offset of each kept slice's origin along (row_dir, col_dir) (mm)
    directions: np.ndarray  # 3×3, columns row_dir, col_dir, n (orthonormal, LPS)
    duplicates: int
    tilt_deg: float  # angle between n and the line through the slice origins
    shear_tolerance_mm: float = 0.01  # in-plane offsets below this are rounding, not shear
    warnings: list[str] = field(default_factory=list)

    @property
    def gaps(self) -> np.ndarray:
        return np.diff(self.along_normal)

    @property
    def sheared(self) -> bool:
        return bool(np.abs(self.in_plane).max() > self.shear_tolerance_mm)

    @property
    def evenly_spaced(self) -> bool:
        gaps = self.gaps
        return bool(np.all(np.abs(gaps - np.median(gaps)) <= GAP_TOLERANCE * np.median(gaps)))

    @property
    def regular(self) -> bool:
        return self.evenly_spaced and not self.sheared


def orthonormal_directions(row_dir: np.ndarray, col_dir: np.ndarray) -> np.ndarray:
    """3×3 matrix with columns row_dir, col_dir (made orthogonal to row_dir), n = row_dir × col_dir."""
    r = np.asarray(row_dir, float)
    r = r / np.linalg.norm(r)
    c = np.asarray(col_dir, float)
    c = c - (c @ r) * r
    c = c / np.linalg.norm(c)
    return np.column_stack([r, c, np.cross(r, c)])


def analyse_stack(positions: np.ndarray, row_dir: np.ndarray, col_dir: np.ndarray,
                  pixel_spacing: tuple[float, float]) -> StackLayout:
    """Sort slices along the normal (never by InstanceNumber), drop duplicates, measure gaps and shear.

    ``positions`` is ``[n, 3]`` ImagePositionPatient (LPS mm); ``pixel_spacing`` DICOM order (mm).
    """
    positions = np.asarray(positions, float)
    directions = orthonormal_directions(row_dir, col_dir)
    depth = positions @ directions[:, 2]
    order = np.argsort(depth, kind="stable")
    keep = [order[0]]
    for idx in order[1:]:
        if depth[idx] - depth[keep[-1]] > DUPLICATE_MM:
            keep.append(idx)
    kept = np.asarray(keep)
    duplicates = len(order) - len(kept)
    relative = positions[kept] - positions[kept[0]]
    along = relative @ directions[:, 2]
    in_plane = relative @ directions[:, :2]
    tilt = 0.0
    if len(kept) > 1 and along[-1] > 0:
        shear_per_mm = (in_plane * along[:, None]).sum(0) / (along**2).sum()  # least-squares slope
        tilt = float(np.degrees(np.arctan(np.linalg.norm(shear_per_mm))))
    layout = StackLayout(kept, positions[kept[0]], along, in_plane, directions, duplicates, tilt,
                         shear_tolerance_mm=max(0.01, 0.05 * min(pixel_spacing)))
    if duplicates:
        layout.warnings.append(f"{duplicates} slices at the same position as another slice were dropped")
    return layout


def missing_slice_gaps(gaps: np.ndarray) -> list[int]:
    """Indices of the gaps (between sorted slices) that mean missing slices, not the series' own spacing."""
    gaps = np.asarray(gaps, float)
    n = len(gaps)
    if n < 2:
        return []

    def same(a: float, b: float) -> bool:
        return abs(a - b) <= ZONE_TOLERANCE * max(a, b)

    missing = []
    for i, g in enumerate(gaps):
        window = np.concatenate([gaps[max(0, i - LOCAL_WINDOW):i], gaps[i + 1:i + 1 + LOCAL_WINDOW]])
        if g <= MISSING_FACTOR * float(np.median(window)):
            continue
        start, end = i, i
        while start > 0 and same(gaps[start - 1], g):
            start -= 1
        while end < n - 1 and same(gaps[end + 1], g):
            end += 1
        if end - start + 1 < ZONE_RUN:
            missing.append(i)
    return missing


def output_slices(layout: StackLayout) -> tuple[float, int]:
    """(slice spacing in mm, number of slices) of the regular grid `stack_to_grid` will build.

    A regular stack keeps its own spacing (first-to-last distance / (n − 1)); otherwise the spacing is the
    median gap along the normal, so one missing slice does not coarsen the grid.
    """
    d = layout.along_normal
    if layout.regular:
        return float(d[-1] / (len(d) - 1)), len(d)
    spacing = float(np.median(layout.gaps))
    return spacing, int(np.floor(d[-1] / spacing + 1e-3)) + 1


def _mm(value: float) -> str:
    text = f"{value:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def stack_to_grid(slices: np.ndarray, layout: StackLayout, pixel_spacing: tuple[float, float],
                  progress: Progress = no_progress) -> tuple[np.ndarray, Grid, list[str]]:
    """The kept slices of ``slices`` (``[n, rows, cols]`` HU, input order) on a regular orthogonal grid.

    Returns ``(hu [k, j, i] float32, grid, corrections)``; ``corrections`` holds one line per change.
    """
    from scipy import ndimage

    sj, si = float(pixel_spacing[0]), float(pixel_spacing[1])
    d = layout.along_normal
    _, rows, cols = slices.shape

    sk, nk = output_slices(layout)
    corrections: list[str] = []
    if layout.regular:
        hu = np.ascontiguousarray(slices[layout.order], dtype=np.float32)
    else:
        hu = np.empty((nk, rows, cols), np.float32)
        shifted_cache: dict[int, np.ndarray] = {}

        def shifted(m: int) -> np.ndarray:
            """Kept slice m moved in-plane so that its pixels sit where the first slice's pixels are."""
            if m not in shifted_cache:
                image = np.asarray(slices[layout.order[m]], np.float32)
                u, v = layout.in_plane[m]
                shift = (v / sj, u / si)  # out[j, i] = in[j - v/sj, i - u/si]
                if abs(shift[0]) > 1e-4 or abs(shift[1]) > 1e-4:
                    image = ndimage.shift(image, shift, order=1, mode="constant", cval=AIR_HU, prefilter=False)
                if len(shifted_cache) > 4:  # output slices walk forward: old inputs are not needed again
                    shifted_cache.clear()
                shifted_cache[m] = image
            return shifted_cache[m]

        for k in range(nk):
            t = k * sk
            b = int(np.clip(np.searchsorted(d, t, side="left"), 1, len(d) - 1))
            a = b - 1
            w = float(np.clip((t - d[a]) / (d[b] - d[a]), 0.0, 1.0))
            if w < 1e-6:
                hu[k] = shifted(a)
            elif w > 1 - 1e-6:
                hu[k] = shifted(b)
            else:
                hu[k] = (1 - w) * shifted(a) + w * shifted(b)
            if k % 16 == 0:
                progress("read", 0.7 + 0.3 * k / nk, "resampling onto a regular grid")
        if layout.sheared:
            corrections.append(f"gantry tilt {layout.tilt_deg:.1f}° corrected by resampling onto an "
                               "orthogonal grid")
        if not layout.evenly_spaced:
            gaps = layout.gaps
            corrections.append(f"uneven slice spacing ({_mm(gaps.min())}–{_mm(gaps.max())} mm) resampled to "
                               f"{_mm(sk)} mm")
            missing = missing_slice_gaps(gaps)
            if missing:
                largest = float(gaps[missing].max())
                layout.warnings.append(f"{len(missing)} gap(s) of up to {_mm(largest)} mm between slices (missing "
                                       "slices) filled by interpolation because gaps were allowed")
    grid = Grid(hu.shape, (si, sj, sk), tuple(layout.origin), tuple(layout.directions.ravel()))
    return hu, grid, corrections
