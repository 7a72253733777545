"""Checks on a user's CT input, each failing with one `InputError` sentence that names the path.

The checks on sizes and spacing run on header information only, before any pixel is loaded, so a
damaged or absurd header cannot make the reader allocate gigabytes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError

MAX_IN_PLANE = 2048  # voxels per row / column
MAX_SLICES = 4096
MAX_BYTES = 4 * 1024**3  # of the float32 HU array the reader would build
MIN_SPACING_MM = 0.1
MAX_SPACING_MM = 20.0
CT_AIR_LIMIT_HU = -500.0  # a head CT in HU always has voxels (air) below this
AIR_HU = -1024.0
PADDING_LIMIT_HU = -1500.0  # stored values mapping at or below this are padding, not anatomy


def check_readable(path: Path) -> Path:
    """``path`` exists and can be read (folders: listed); returns it resolved to an absolute path."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"The input {path} does not exist; check the path and try again.")
    mode = os.R_OK | os.X_OK if path.is_dir() else os.R_OK
    if not os.access(path, mode):
        raise InputError(f"The input {path} cannot be read with your permissions; "
                         "make it readable (e.g. chmod u+r) or copy it somewhere you can read.")
    return path.resolve()


def check_image_header(path: Path, size: Sequence[int], spacing: Sequence[float],
                       components: int = 1) -> None:
    """Refuse what a header describes but the reader cannot use: not 3D, one slice, colour, huge, odd spacing.

    ``size`` is ITK order (columns, rows, slices, …); ``spacing`` in mm, same order.
    """
    size = [int(s) for s in size]
    if len(size) < 3:
        raise InputError(f"{path} is a {len(size)}D image, not a 3D CT volume; give the whole CT series "
                         "or a 3D image file.")
    if len(size) > 3 and any(s > 1 for s in size[3:]):
        raise InputError(f"{path} is a {len(size)}D image ({' × '.join(map(str, size))} voxels), not a single "
                         "3D CT volume; split it and give one 3D volume.")
    if components != 1:
        raise InputError(f"{path} has {components} values per voxel (colour or vector image), not CT "
                         "intensities; give the original greyscale CT.")
    if size[2] == 1:
        raise InputError(f"{path} holds a single slice, not a 3D CT volume; give the whole CT series.")
    check_grid_size(path, size[:3])
    check_spacing(path, spacing[:3])


def check_grid_size(path: Path, size: Sequence[int]) -> None:
    """Refuse a declared size (columns, rows, slices) too large to be a head CT, before allocating it."""
    cols, rows, slices = (int(s) for s in size)
    n_bytes = 4 * cols * rows * slices
    if min(cols, rows, slices) < 1 or max(cols, rows) > MAX_IN_PLANE or slices > MAX_SLICES \
            or n_bytes > MAX_BYTES:
        raise InputError(f"{path} declares {cols} × {rows} × {slices} voxels, far larger than a head CT "
                         f"(at most {MAX_IN_PLANE} × {MAX_IN_PLANE} × {MAX_SLICES} and 4 GiB); check that "
                         "the file is not damaged, or crop/downsample it first.")


def check_spacing(path: Path, spacing: Sequence[float]) -> None:
    """Refuse voxel spacing (mm) that is not positive or outside 0.1–20 mm."""
    values = [float(s) for s in spacing]
    if not all(np.isfinite(values)) or min(values) < MIN_SPACING_MM or max(values) > MAX_SPACING_MM:
        shown = " × ".join(f"{v:g}" for v in values)
        raise InputError(f"{path} has voxel spacing {shown} mm, outside the {MIN_SPACING_MM:g}–"
                         f"{MAX_SPACING_MM:g} mm of a real CT; fix the spacing in the image header.")


def check_voxels(path: Path, hu: np.ndarray) -> None:
    """Refuse NaN/inf voxels and images without air below −500 HU (not a CT in Hounsfield units)."""
    finite = np.isfinite(hu)
    if not finite.all():
        raise nonfinite_error(path, int(hu.size - np.count_nonzero(finite)))
    low = float(hu.min())
    if low > CT_AIR_LIMIT_HU:
        raise InputError(f"{path} does not look like a CT in Hounsfield units (its lowest value is "
                         f"{low:g}, but air in a CT is about −1000 HU); give a CT whose values are HU.")


def nonfinite_error(path: Path, count: int) -> InputError:
    """The error for an image with ``count`` NaN or infinite voxels."""
    voxels = "voxel that is" if count == 1 else "voxels that are"
    return InputError(f"{path} contains {count} {voxels} NaN or infinite; re-export the CT from the "
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
