"""Shared pytest fixtures. Keep each fixture small, documented and independent of the others."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from iacseg.io import CTVolume
from iacseg.core.grid import Grid


@dataclass(frozen=True)
class SpherePhantom:
    """A bright sphere (1000 HU) in a block of soft tissue (40 HU) in air (−1000 HU), defined in LPS mm.

    ``render`` samples it at any world points, so the same object can be drawn on a regular grid or on
    the sheared pixel positions of a tilted DICOM stack. Edges are ramps ``edge_mm`` wide (anti-aliased),
    values are whole HU so int16 DICOM storage is exact.
    """

    centre: tuple[float, float, float] = (0.4, -4.6, 48.0)
    radius_mm: float = 7.0
    edge_mm: float = 2.0
    tissue_half_size_mm: float = 20.0

    def render(self, points: np.ndarray) -> np.ndarray:
        """HU at ``(..., 3)`` LPS mm points."""
        offset = np.asarray(points, float) - np.asarray(self.centre)
        inside_block = np.all(np.abs(offset) < self.tissue_half_size_mm, axis=-1)
        hu = np.where(inside_block, 40.0, -1000.0)
        ramp = np.clip((self.radius_mm - np.linalg.norm(offset, axis=-1)) / self.edge_mm + 0.5, 0.0, 1.0)
        return np.rint(hu + (1000.0 - hu) * ramp).astype(np.float32)

    def volume(self, grid: Grid) -> CTVolume:
        """The phantom sampled at the voxel centres of ``grid``."""
        kji = np.indices(grid.shape).reshape(3, -1).T
        hu = self.render(grid.kji_to_world(kji)).reshape(grid.shape)
        return CTVolume(hu, grid, {"modality": "CT"})

    def centroid(self, volume: CTVolume) -> np.ndarray:
        """World (LPS mm) centroid of the sphere, weighted by HU above the tissue level."""
        weight = np.clip(volume.hu.astype(np.float64) - 40.0, 0.0, None)
        kji = np.argwhere(weight > 0)
        w = weight[tuple(kji.T)]
        return (volume.grid.kji_to_world(kji) * w[:, None]).sum(0) / w.sum()


SMALL_GRID = Grid((40, 64, 64), (0.8, 0.8, 2.0), (-25.2, -30.0, 10.0))  # 51 × 51 × 80 mm, axial LPS


@pytest.fixture
def sphere_phantom() -> SpherePhantom:
    """The analytic sphere phantom (world geometry known exactly)."""
    return SpherePhantom()


@pytest.fixture
def small_ct(sphere_phantom: SpherePhantom) -> CTVolume:
    """A tiny axial CT (40 × 64 × 64, 0.8 × 0.8 × 2 mm) of the sphere phantom, in HU."""
    return sphere_phantom.volume(SMALL_GRID)
