"""`MidsagittalPlane`: the plane between the hemispheres, found in preprocessing and used by the mapping, the
ICA corridor, the landmark decoding and the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MidsagittalPlane:
    """The plane between the hemispheres, in world coordinates (LPS mm).

    ``normal`` is a unit vector pointing to the patient's **left** (+x in LPS for a straight head), so
    ``side(p) = 'L'`` where ``(p - point) · normal > 0``.
    """

    point: tuple[float, float, float]
    normal: tuple[float, float, float]
    method: str = "unknown"
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    def signed_distance(self, xyz: np.ndarray) -> np.ndarray:
        """``(..., 3)`` LPS mm → signed distance (mm) to the plane, positive on the patient's left."""
        n = np.asarray(self.normal, dtype=np.float64)
        n = n / np.linalg.norm(n)
        return (np.asarray(xyz, dtype=np.float64) - np.asarray(self.point)) @ n

    def in_plane_axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit in-plane (x, y) vectors: the normal's projection (towards the patient's left) and the direction
        perpendicular to it pointing posterior (+y in LPS)."""
        n = np.asarray(self.normal[:2], dtype=np.float64)
        n = n / (np.linalg.norm(n) + 1e-12)
        t = np.array([-n[1], n[0]])
        return n, (-t if t[1] < 0 else t)

    def point_at(self, lateral_mm: float, posterior_mm: float, z_mm: float) -> tuple[float, float, float]:
        """The LPS point ``lateral_mm`` to the patient's left (negative: right) and ``posterior_mm`` behind the plane
        point, in the axial plane at height ``z_mm``."""
        n, t = self.in_plane_axes()
        xy = np.asarray(self.point[:2], dtype=np.float64) + lateral_mm * n + posterior_mm * t
        return float(xy[0]), float(xy[1]), float(z_mm)

    def yaw_roll_deg(self) -> tuple[float, float]:
        """Rotation of the normal away from +x: (about z — yaw, about y — roll), degrees."""
        n = np.asarray(self.normal, dtype=np.float64)
        n = n / np.linalg.norm(n)
        return float(np.degrees(np.arctan2(n[1], n[0]))), float(np.degrees(np.arctan2(n[2], n[0])))

    def to_dict(self) -> dict[str, Any]:
        yaw, roll = self.yaw_roll_deg()
        return {"point_lps_mm": [float(v) for v in self.point], "normal_lps": [float(v) for v in self.normal],
                "yaw_deg": yaw, "roll_deg": roll, "method": self.method, **self.details}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MidsagittalPlane":
        return cls(tuple(d["point_lps_mm"]), tuple(d["normal_lps"]), d.get("method", "unknown"))
