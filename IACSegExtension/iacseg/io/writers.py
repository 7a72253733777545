"""Writing label maps and CT images (NIfTI / NRRD / MHA by extension), atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.files import atomic_file
from ..core.grid import Grid
from .volume import array_to_sitk


def write_image(path: str | Path, array: np.ndarray, grid: Grid, compress: bool = True) -> Path:
    """Write ``array`` ``[k, j, i]`` on ``grid`` to ``path`` (format from the extension), atomically."""
    import SimpleITK as sitk

    path = Path(path)
    image = array_to_sitk(array, grid)
    with atomic_file(path) as tmp:
        sitk.WriteImage(image, str(tmp), compress)
    return path
