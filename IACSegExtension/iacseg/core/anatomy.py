"""Anatomical limits and typical positions of the six landmark planes, shared by the localiser, the decoding, the
bone prior and quality control."""

from __future__ import annotations

import numpy as np

from .plane import MidsagittalPlane

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
#: Typical antero-posterior position (mm, posterior +) of each landmark from the midsagittal plane's point (the
#: centroid of the scanned skull, about the level of the external acoustic meatus): the carotid canal opens under
#: the petrous apex at about that level, the anterior clinoid process lies beside the sella 2–3 cm in front of it,
#: the petrolingual ligament between them. Where a landmark is shown, and the column at which the quality control
#: reads how far the scan reaches at that landmark (with gantry tilt the scan's top and bottom change with y).
LANDMARK_AP_MM: dict[str, float] = {"carotid_canal": 0.0, "petrolingual": -12.0, "anterior_clinoid": -25.0}
#: After the roll is accounted for, the same landmark on both sides lies within this many mm (natural asymmetry
#: ≈ 1–3 mm; the soft limit is a Gaussian of this width, the hard limit twice it).
LANDMARK_LR_TOLERANCE_MM = 5.0


def expected_left_minus_right_mm(kind: str, roll_deg: float) -> float:
    """Expected ``z_L − z_R`` (mm) of landmark ``kind`` for a head rolled by ``roll_deg`` (plane normal's roll)."""
    return float(2.0 * LANDMARK_LATERAL_MM[kind] * np.sin(np.radians(roll_deg)))


def landmark_point(plane: MidsagittalPlane, name: str, z_mm: float) -> tuple[float, float, float]:
    """Where landmark ``name`` (e.g. ``L_petrolingual``) is expected in the axial plane at ``z_mm``: its side's
    typical lateral (`LANDMARK_LATERAL_MM`) and antero-posterior (`LANDMARK_AP_MM`) offset from the plane point."""
    side, kind = name.split("_", 1)
    lateral = LANDMARK_LATERAL_MM[kind] * (1.0 if side == "L" else -1.0)
    return plane.point_at(lateral, LANDMARK_AP_MM[kind], z_mm)
