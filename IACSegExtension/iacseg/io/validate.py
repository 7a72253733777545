"""Checks on a user's CT input, each failing with one `InputError` sentence that names the path.

The checks on sizes and spacing run on header information only, before any pixel is loaded, so a
damaged or absurd header cannot make the reader allocate gigabytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from .paths import shown

MAX_IN_PLANE = 2048  # voxels per row / column
MAX_SLICES = 4096
MAX_BYTES = 4 * 1024**3  # of the float32 HU array the reader would build
MIN_SPACING_MM = 0.1
MAX_SPACING_MM = 20.0
CT_AIR_LIMIT_HU = -500.0  # a head CT in HU always has voxels (air) below this
AIR_HU = -1024.0
PADDING_LIMIT_HU = -1500.0  # stored values mapping at or below this are padding, not anatomy
MAX_ABS_HU = 1e5  # no CT value (even extended-scale metal, ~30 000 HU) comes near this: the scaling is wrong
DIRECTION_TOLERANCE = 1e-3  # |cos| between axes / |norm - 1| accepted in an image's direction matrix


def check_readable(path: Path) -> Path:
    """``path`` is a readable regular file or folder (no FIFO, device, socket, symlink loop); returns it
    resolved to an absolute path. See `iacseg.io.paths.check_input_path`."""
    from .paths import check_input_path

    return check_input_path(path)


def check_image_header(path: Path, size: Sequence[int], spacing: Sequence[float],
                       components: int = 1) -> None:
    """Refuse what a header describes but the reader cannot use: not 3D, one slice, colour, huge, odd spacing.

    ``size`` is ITK order (columns, rows, slices, …); ``spacing`` in mm, same order.
    """
    size = [int(s) for s in size]
    if len(size) < 3:
        raise InputError(f"{shown(path)} is a {len(size)}D image, not a 3D CT volume; give the whole CT series "
                         "or a 3D image file.")
    if len(size) > 3 and any(s > 1 for s in size[3:]):
        raise InputError(f"{shown(path)} is a {len(size)}D image ({' × '.join(map(str, size))} voxels), not a single "
                         "3D CT volume; split it and give one 3D volume.")
    if components != 1:
        raise InputError(f"{shown(path)} has {components} values per voxel (colour or vector image), not CT "
                         "intensities; give the original greyscale CT.")
    if size[2] == 1:
        raise InputError(f"{shown(path)} holds a single slice, not a 3D CT volume; give the whole CT series.")
    check_grid_size(path, size[:3])
    check_spacing(path, spacing[:3])


def check_grid_size(path: Path, size: Sequence[int]) -> None:
    """Refuse a declared size (columns, rows, slices) too large to be a head CT, before allocating it."""
    cols, rows, slices = (int(s) for s in size)
    n_bytes = 4 * cols * rows * slices
    if min(cols, rows, slices) < 1 or max(cols, rows) > MAX_IN_PLANE or slices > MAX_SLICES \
            or n_bytes > MAX_BYTES:
        raise InputError(f"{shown(path)} declares {cols} × {rows} × {slices} voxels, far larger than a head CT "
                         f"(at most {MAX_IN_PLANE} × {MAX_IN_PLANE} × {MAX_SLICES} and 4 GiB); check that "
                         "the file is not damaged, or crop/downsample it first.")


def check_spacing(path: Path, spacing: Sequence[float]) -> None:
    """Refuse voxel spacing (mm) that is not positive or outside 0.1–20 mm."""
    values = [float(s) for s in spacing]
    if not all(np.isfinite(values)) or min(values) < MIN_SPACING_MM or max(values) > MAX_SPACING_MM:
        text = " × ".join("NaN" if np.isnan(v) else f"{v:g}" for v in values)
        if not all(np.isfinite(values)):
            raise InputError(f"{shown(path)} has voxel spacing {text} mm in its header (not a finite number); fix the "
                             "spacing in the image header or re-export the CT.")
        raise InputError(f"{shown(path)} has voxel spacing {text} mm, outside the {MIN_SPACING_MM:g}–"
                         f"{MAX_SPACING_MM:g} mm of a real CT; fix the spacing in the image header.")


def check_voxels(path: Path, hu: np.ndarray) -> None:
    """Refuse NaN/inf voxels, absurd values (|HU| > 10⁵) and images without air below −500 HU (not HU)."""
    check_hu_range(path, hu)
    low = float(hu.min())
    if low > CT_AIR_LIMIT_HU:
        raise InputError(f"{shown(path)} does not look like a CT in Hounsfield units (its lowest value is "
                         f"{low:g}, but air in a CT is about −1000 HU); give a CT whose values are HU.")


def check_hu_range(path: Path, hu: np.ndarray) -> None:
    """Refuse NaN/inf values and values beyond ±10⁵ HU (a wrong scaling, not anatomy)."""
    finite = np.isfinite(hu)
    if not finite.all():
        raise nonfinite_error(path, int(hu.size - np.count_nonzero(finite)))
    low, high = float(hu.min()), float(hu.max())
    if max(abs(low), abs(high)) > MAX_ABS_HU:
        raise InputError(f"{shown(path)} has voxel values from {low:.4g} to {high:.4g}, far outside the Hounsfield "
                         f"units of any CT (within ±{MAX_ABS_HU:,.0f}); its rescale slope/intercept or scaling is "
                         "wrong — re-export the CT from the original DICOM.")


def direction_problem(direction: Sequence[float], tolerance: float = DIRECTION_TOLERANCE) -> str | None:
    """Why a 3×3 direction matrix (row-major, columns = axes) is unusable, or None when it is orthonormal."""
    d = np.asarray(direction, float)
    if d.size != 9 or not np.all(np.isfinite(d)):
        return "its direction matrix holds NaN or infinite values"
    d = d.reshape(3, 3)
    norms = np.linalg.norm(d, axis=0)
    if norms.min() < 1e-6 or abs(np.linalg.det(d / np.maximum(norms, 1e-12))) < 1e-3:
        return "its direction matrix is singular (two image axes point the same way, or one has zero length)"
    if np.abs(norms - 1).max() > tolerance:
        return (f"its direction matrix has axes of length {', '.join(f'{n:.4g}' for n in norms)} instead of 1 "
                "(scaling or shear stored as direction)")
    unit = d / norms
    cosines = np.abs(unit.T @ unit - np.eye(3))
    if cosines.max() > tolerance:
        worst = float(np.degrees(np.arccos(np.clip(cosines.max(), 0, 1))))
        return f"its image axes are not perpendicular (at {worst:.1f}° instead of 90°: a sheared or skewed grid)"
    return None


def check_direction(path: Path, direction: Sequence[float], tolerance: float = DIRECTION_TOLERANCE,
                    problem: str | None = None) -> None:
    """Refuse a singular, non-finite or non-orthogonal direction matrix (outputs would not share one grid).

    ``problem`` gives the reason directly (when the image library has found it already).
    """
    problem = problem or direction_problem(direction, tolerance)
    if problem is not None:
        raise InputError(f"{shown(path)} cannot be used: {problem}; IACSeg needs an orthogonal voxel grid — "
                         "resample the image onto an orthogonal grid (e.g. in 3D Slicer or with dcm2niix) or "
                         "re-export it from the original DICOM.")


def nonfinite_error(path: Path, count: int) -> InputError:
    """The error for an image with ``count`` NaN or infinite voxels."""
    voxels = "voxel that is" if count == 1 else "voxels that are"
    return InputError(f"{shown(path)} contains {count} {voxels} NaN or infinite; re-export the CT from the "
                      "original DICOM.")


def map_padding_to_air(hu: np.ndarray, padding: np.ndarray | None = None) -> int:
    """Set padding voxels (``padding`` mask and any voxel ≤ −1500 HU) to air (−1024 HU) in place.

    Returns how many voxels were changed.
    """
    mask = hu <= PADDING_LIMIT_HU
    if padding is not None:
        mask |= padding
    count = int(np.count_nonzero(mask))
    if count:
        hu[mask] = AIR_HU
    return count
