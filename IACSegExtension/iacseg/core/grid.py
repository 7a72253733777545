"""`Grid`: the voxel geometry of a volume.

Conventions used everywhere in the engine:

* arrays are indexed ``[k, j, i]`` (slice, row, column), as ``SimpleITK.GetArrayFromImage`` returns;
* ``spacing`` is ``(si, sj, sk)`` in mm, ITK order (column, row, slice);
* ``origin`` is the world position (mm, LPS) of the centre of voxel ``[0, 0, 0]``;
* ``direction`` is a 3×3 matrix whose *columns* are the world (LPS) unit vectors of the i, j, k axes.

World from index: ``p = origin + direction @ (spacing * (i, j, k))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Grid:
    """Geometry of a 3D voxel grid (see module docstring for conventions)."""

    shape: tuple[int, int, int]  # (nk, nj, ni) — array shape
    spacing: tuple[float, float, float]  # (si, sj, sk) mm
    origin: tuple[float, float, float]  # LPS mm, centre of voxel [0,0,0]
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)  # row-major 3×3

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(s) for s in self.origin))
        object.__setattr__(self, "direction", tuple(float(s) for s in np.asarray(self.direction).ravel()))

    @property
    def direction_matrix(self) -> np.ndarray:
        """3×3 array; column ``a`` is the LPS unit vector of index axis ``a`` (i, j, k)."""
        return np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    @property
    def affine(self) -> np.ndarray:
        """4×4 matrix mapping homogeneous index ``(i, j, k, 1)`` to LPS mm."""
        a = np.eye(4)
        a[:3, :3] = self.direction_matrix * np.asarray(self.spacing)[None, :]
        a[:3, 3] = self.origin
        return a

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing))

    @property
    def slice_normal(self) -> np.ndarray:
        """LPS unit vector of the k (slice) axis."""
        return self.direction_matrix[:, 2].copy()

    def index_to_world(self, ijk: np.ndarray) -> np.ndarray:
        """``(..., 3)`` continuous indices (i, j, k) → ``(..., 3)`` LPS mm."""
        ijk = np.asarray(ijk, dtype=np.float64)
        m = self.direction_matrix * np.asarray(self.spacing)[None, :]
        return ijk @ m.T + np.asarray(self.origin)

    def world_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """``(..., 3)`` LPS mm → ``(..., 3)`` continuous indices (i, j, k)."""
        xyz = np.asarray(xyz, dtype=np.float64)
        m = self.direction_matrix * np.asarray(self.spacing)[None, :]
        return (xyz - np.asarray(self.origin)) @ np.linalg.inv(m).T

    def kji_to_world(self, kji: np.ndarray) -> np.ndarray:
        """``(N, 3)`` integer array indices as returned by ``np.argwhere`` (k, j, i) → LPS mm."""
        return self.index_to_world(np.asarray(kji)[:, ::-1])

    def is_axial_lps(self, tol: float = 1e-4) -> bool:
        """True when the i, j, k axes are exactly +L, +P, +S (no flips, no obliquity)."""
        return bool(np.allclose(self.direction_matrix, np.eye(3), atol=tol))

    def obliquity_deg(self) -> float:
        """Largest angle (degrees) between an index axis and its nearest world axis."""
        d = np.abs(self.direction_matrix)
        return float(np.degrees(np.arccos(np.clip(d.max(axis=0), -1, 1))).max())

    def same_geometry(self, other: "Grid", tol: float = 1e-3) -> bool:
        return (
            self.shape == other.shape
            and np.allclose(self.spacing, other.spacing, atol=tol)
            and np.allclose(self.origin, other.origin, atol=tol * 10)
            and np.allclose(self.direction, other.direction, atol=tol)
        )

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "spacing": list(self.spacing), "origin": list(self.origin),
                "direction": list(self.direction)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Grid":
        return cls(tuple(d["shape"]), tuple(d["spacing"]), tuple(d["origin"]), tuple(d["direction"]))
