"""Calcified plaques: crescent-shaped deposits in the ICA wall, described in the artery's own coordinates.

A plaque is an ellipsoid in (arc length, circumference, radius) around the centreline, so it bends with the
artery and hugs the wall like a real crescent. Petrous plaques reach the bony canal (the hard case: calcium
touching bone).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import BRANCH, CERVICAL, PART_NAMES, PETROUS, AnatomySpec

#: Probability of each part (cervical, petrous, cavernous, supraclinoid): ~75 % cavernous + supraclinoid.
PART_PROBABILITY = (0.10, 0.15, 0.42, 0.33)
BLOOD_HU = 40.0


@dataclass
class Plaque:
    id: int
    side: str
    part: str
    index: int             # centreline point index of its centre
    arc0: float            # mm
    theta0: float          # rad, around the centreline (n1 → n2)
    rho0: float            # mm, radius of its mid-surface from the centreline
    a_arc: float           # semi-axes (mm): along the artery, around it, across the wall
    a_circ: float
    a_rad: float
    hu: float
    centre_head: np.ndarray
    reach_mm: float        # radius of a ball around centre_head containing it

    @property
    def volume_mm3(self) -> float:
        return float(4.0 / 3.0 * np.pi * self.a_arc * self.a_circ * self.a_rad)

    def signed_distance(self, d: np.ndarray, arc: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Approximate signed distance (mm) of points at radius ``d``, arc length ``arc``, angle ``theta``."""
        dth = np.angle(np.exp(1j * (theta - self.theta0)))
        m = np.sqrt(((arc - self.arc0) / self.a_arc) ** 2 + (dth * self.rho0 / self.a_circ) ** 2
                    + ((d - self.rho0) / self.a_rad) ** 2)
        return (m - 1.0) * min(self.a_arc, self.a_circ, self.a_rad)


def sample_plaques(a: AnatomySpec, rng: np.random.Generator, n: int,
                   volume_range: tuple[float, float] = (1.5, 45.0), hu_power: float = 1.4) -> list[Plaque]:
    """Draw ``n`` plaques on the two ICAs (volumes log-uniform in ``volume_range`` mm³, default 1.5–45;
    density ``150 + 1350·u^hu_power`` HU, so a smaller ``hu_power`` gives denser plaques)."""
    out: list[Plaque] = []
    for pid in range(1, n + 1):
        part = int(rng.choice(4, p=PART_PROBABILITY))
        side = "L" if rng.random() < 0.5 else "R"
        c, sd = a.centrelines[side], a.sides[side]
        z = c.points[:, 2]
        lo, hi = {0: (sd.z_canal - 30.0, sd.z_canal - 1.5), 1: (sd.z_canal + 1.0, sd.z_petrolingual - 1.0),
                  2: (sd.z_petrolingual + 1.0, sd.z_clinoid - 1.0),
                  3: (sd.z_clinoid + 1.0, sd.z_terminal - 1.0)}[part]
        cand = np.flatnonzero((c.part != BRANCH) & (z >= lo) & (z <= hi))
        idx = int(rng.choice(cand))
        volume = float(np.exp(rng.uniform(np.log(volume_range[0]), np.log(volume_range[1]))))
        hu = float(150.0 + 1350.0 * rng.random() ** hu_power)
        a_rad = float(rng.uniform(0.35, 0.75))
        if part == PETROUS:
            rho0 = float(c.canal_r[idx] + 0.1 - a_rad)
        else:
            rho0 = float(c.lumen_r[idx] + 0.5 * (c.outer_r[idx] - c.lumen_r[idx]) + rng.uniform(-0.1, 0.15))
        a_circ = float(rng.uniform(0.8, max(0.9, 0.45 * np.pi * rho0)))
        a_arc = float(np.clip(volume / (4.0 / 3.0 * np.pi * a_circ * a_rad), 0.5, 9.0))
        theta0 = float(rng.uniform(-np.pi, np.pi))
        radial = np.cos(theta0) * c.n1[idx] + np.sin(theta0) * c.n2[idx]
        out.append(Plaque(id=pid, side=side, part=PART_NAMES[part], index=idx, arc0=float(c.arc[idx]),
                          theta0=theta0, rho0=rho0, a_arc=a_arc, a_circ=a_circ, a_rad=a_rad, hu=hu,
                          centre_head=c.points[idx] + rho0 * radial,
                          reach_mm=a_arc + a_circ + a_rad + rho0 + 1.0))
    return out


__all__ = ["Plaque", "sample_plaques", "PART_PROBABILITY", "BLOOD_HU", "CERVICAL"]
