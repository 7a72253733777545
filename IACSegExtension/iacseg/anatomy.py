"""Small anatomical records that cross stage boundaries (preprocess → mapping → outputs)."""

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


# --- Anatomical limits of the six landmark planes (used to decode, cross-check and quality-control them) -------
#: Allowed height gap (mm) between consecutive landmarks on one side, (min, max): carotid canal → petrolingual
#: ligament (vertical + horizontal + lacerum segments of the petrous ICA), petrolingual → anterior clinoid
#: (the cavernous segment). Deliberately wide: adult anatomy spans roughly 10–22 mm and 8–18 mm.
LANDMARK_GAPS_MM: dict[tuple[str, str], tuple[float, float]] = {
    ("carotid_canal", "petrolingual"): (6.0, 30.0),
    ("petrolingual", "anterior_clinoid"): (5.0, 28.0),
}
#: Typical lateral distance (mm) of each landmark from the midsagittal plane; with the head's roll θ the left
#: landmark lies ≈ 2·d·sin θ higher than the right one.
LANDMARK_LATERAL_MM: dict[str, float] = {"carotid_canal": 27.0, "petrolingual": 18.0, "anterior_clinoid": 17.0}
#: After the roll is accounted for, the same landmark on both sides lies within this many mm (natural asymmetry
#: ≈ 1–3 mm; the soft limit is a Gaussian of this width, the hard limit twice it).
LANDMARK_LR_TOLERANCE_MM = 5.0


def expected_left_minus_right_mm(kind: str, roll_deg: float) -> float:
    """Expected ``z_L − z_R`` (mm) of landmark ``kind`` for a head rolled by ``roll_deg`` (plane normal's roll)."""
    return float(2.0 * LANDMARK_LATERAL_MM[kind] * np.sin(np.radians(roll_deg)))
