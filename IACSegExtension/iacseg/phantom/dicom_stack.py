"""Acquisition geometry: the axial grid, the gantry-tilted DICOM stack and its tilt-corrected grid.

Tilt convention: slices are tilted by ``tilt_deg`` about the patient's left-right (x) axis with
``row_dir = (1, 0, 0)`` and ``col_dir = (0, cos t, sin t)`` (a positive tilt raises the posterior part of each
slice); the table moves along +z, ``IPP_k = IPP_0 + k·Δz·(0, 0, 1)``, so the stack is sheared. The corrected
grid (what dcm2niix produces) has origin ``IPP_0``, direction columns ``(row, col, n = row × col)``, spacing
``(dx, dy, Δz·cos t)`` and the same number of slices: its slice k is the same plane as DICOM slice k, its pixel
grid shifted by ``k·Δz·sin t`` mm along ``col``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.grid import Grid
from .render import PlaneStack


@dataclass
class DicomStack:
    """Per-slice HU images and geometry to write as a DICOM series (see `iacseg.io.dicom_write`)."""

    slices_hu: np.ndarray          # [n, rows, cols] HU float32
    positions: np.ndarray          # [n, 3] ImagePositionPatient (LPS mm)
    row_dir: tuple[float, float, float]
    col_dir: tuple[float, float, float]
    pixel_spacing: tuple[float, float]   # (between rows, between columns) mm
    slice_thickness_mm: float
    gantry_tilt_deg: float = 0.0
    padding_value: int | None = None
    padding_mask: np.ndarray | None = None
    shuffle_seed: int | None = None
    uid_seed: int = 0
    extra: dict = field(default_factory=dict)
    kernel: str = "STANDARD"

    def write(self, folder: Path) -> list[Path]:
        from ..io.dicom_write import write_ct_series

        return write_ct_series(Path(folder), self.slices_hu, self.positions, self.row_dir, self.col_dir,
                               self.pixel_spacing, slice_thickness_mm=self.slice_thickness_mm,
                               gantry_tilt_deg=self.gantry_tilt_deg, rescale_slope=1.0, rescale_intercept=-1024.0,
                               padding_value=self.padding_value, padding_mask=self.padding_mask,
                               shuffle_seed=self.shuffle_seed, uid_seed=self.uid_seed, kernel=self.kernel)


@dataclass
class Acquisition:
    """The stacks of one phantom: ``grid_stack`` (what `Phantom.ct` lives on) and, when tilted, ``dicom_stack``."""

    grid: Grid
    grid_stack: PlaneStack
    dicom_stack: PlaneStack | None
    spacing_z: float      # table increment Δz (mm)
    tilt_deg: float

    def landmark_slice(self, point: np.ndarray) -> int:
        """Target slice index k* for an axial landmark plane through world ``point`` (INTERFACES convention):
        the first slice whose plane, at the point's (x, y), is at/above the point's height."""
        o = self.grid_stack.origins[0]
        n = self.grid_stack.normal
        z0 = o[2] - (n[0] * (point[0] - o[0]) + n[1] * (point[1] - o[1])) / n[2]
        return int(np.ceil((point[2] - z0) / self.spacing_z - 1e-9))


def acquisition(matrix: int, fov_mm: float, z_bottom: float, n_slices: int, spacing_z: float,
                thickness: float, tilt_deg: float) -> Acquisition:
    """Geometry whose slice 0 middle pixel is at world (0, 0, ``z_bottom``)."""
    dx = fov_mm / matrix
    t = np.radians(tilt_deg)
    row = np.array([1.0, 0.0, 0.0])
    col = np.array([0.0, np.cos(t), np.sin(t)])
    n = np.cross(row, col)
    c = 0.5 * (matrix - 1) * dx
    ipp0 = np.array([0.0, 0.0, z_bottom]) - c * row - c * col
    k = np.arange(n_slices)[:, None]
    table = ipp0 + k * spacing_z * np.array([0.0, 0.0, 1.0])
    if tilt_deg == 0.0:
        st = PlaneStack(table, row, col, dx, dx, matrix, matrix, thickness, fov_mm)
        grid = Grid((n_slices, matrix, matrix), (dx, dx, spacing_z), tuple(ipp0))
        return Acquisition(grid, st, None, spacing_z, 0.0)
    dicom = PlaneStack(table, row, col, dx, dx, matrix, matrix, thickness, fov_mm)
    corrected = PlaneStack(ipp0 + k * spacing_z * np.cos(t) * n, row, col, dx, dx, matrix, matrix, thickness,
                           fov_mm, circle_centres=dicom.fov_centres())
    direction = np.stack([row, col, n], axis=1)
    grid = Grid((n_slices, matrix, matrix), (dx, dx, spacing_z * np.cos(t)), tuple(ipp0), tuple(direction.ravel()))
    return Acquisition(grid, corrected, dicom, spacing_z, float(tilt_deg))
