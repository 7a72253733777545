"""Anatomical limits of the six landmark planes, shared by the decoding, the bone prior and quality control."""

from __future__ import annotations

import numpy as np

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
