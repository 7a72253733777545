"""`CTVolume`: a HU array on a `Grid` (see `iacseg.core.grid` for the conventions) plus acquisition metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.grid import Grid


@dataclass
class CTVolume:
    """A CT in Hounsfield units on a `Grid`, with the acquisition metadata kept for the report.

    ``hu`` is a float32 array ``[k, j, i]``. ``metadata`` holds e.g. ``modality``, ``slice_thickness_mm``,
    ``gantry_tilt_deg``, ``kernel``, ``manufacturer``, ``series_uid``, ``source`` and ``corrections``
    (a list of one-line descriptions of what the reader changed: tilt, uneven spacing, padding…).
    """

    hu: np.ndarray
    grid: Grid
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if tuple(self.hu.shape) != tuple(self.grid.shape):
            raise ValueError(f"array shape {self.hu.shape} does not match grid shape {self.grid.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.grid.shape

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.grid.spacing


def grid_from_sitk(image: Any) -> Grid:
    """The `Grid` of a SimpleITK image."""
    size = image.GetSize()
    return Grid((size[2], size[1], size[0]), image.GetSpacing(), image.GetOrigin(), image.GetDirection())


def apply_grid(image: Any, grid: Grid) -> Any:
    """Set a SimpleITK image's spacing/origin/direction from ``grid``; returns the image."""
    image.SetSpacing(grid.spacing)
    image.SetOrigin(grid.origin)
    image.SetDirection(grid.direction)
    return image


def array_to_sitk(array: np.ndarray, grid: Grid) -> Any:
    """A SimpleITK image of ``array`` ``[k, j, i]`` on ``grid``."""
    import SimpleITK as sitk

    return apply_grid(sitk.GetImageFromArray(np.ascontiguousarray(array)), grid)
