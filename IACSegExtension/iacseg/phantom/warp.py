"""A smooth random deformation of the head (randomised families): a few long waves (90–200 mm) of a few mm,
faded to zero in a rigid *corridor* around both ICAs and their bony landmarks, so that the vault, face,
sinuses, posterior fossa and brain change shape while the canal, petrolingual and clinoid planes, the arteries
and the plaques (and hence the truth) stay exactly where the anatomy puts them.

A coarse layer is painted at render point p from its template at ``p + displacement(p)``; `inverse` maps a
template point back to where it is rendered (for the records of warped distractors).
"""

from __future__ import annotations

import numpy as np

from . import shapes as S
from .anatomy import AnatomySpec

FADE_MM = 35.0
MAX_STRAIN = 0.4     # bound on |∇d|, so the warp never folds a surface


class SmoothWarp:
    """Displacement field (head frame, mm) ``d(p) = fade(p) · Σ a_i sin(k_i·p + φ_i)``."""

    def __init__(self, a: AnatomySpec, waves: list[dict]):
        self.k = np.array([w["k"] for w in waves], float)           # (n, 3) rad/mm
        self.amp = np.array([w["amp"] for w in waves], float)       # (n, 3) mm
        self.phase = np.array([w["phase"] for w in waves], float)
        self.max_mm = float(np.abs(self.amp).sum(axis=0).max()) if len(waves) else 0.0
        sl, sr = a.sides["L"], a.sides["R"]
        ex = max(abs(sl.entry_xy[0]), abs(sr.entry_xy[0])) + 16.0
        ey_lo, ey_hi = min(sl.entry_xy[1], sr.entry_xy[1]), max(sl.entry_xy[1], sr.entry_xy[1])
        zlo = min(sl.z_canal, sr.z_canal)
        ztop = max(sl.z_terminal, sr.z_terminal) + 14.0
        ylo = min(sl.y_genu, sr.y_genu) - 16.0
        self.boxes = [((0.0, 0.5 * (ylo + ey_hi + 16.0), 0.5 * (zlo - 8.0 + ztop)),
                       (ex, 0.5 * (ey_hi + 16.0 - ylo), 0.5 * (ztop - zlo + 8.0))),
                      ((0.0, 0.5 * (ey_lo - 22.0 + ey_hi + 14.0), zlo - 500.0),
                       (ex, 0.5 * (ey_hi + 14.0 - ey_lo + 22.0), 500.0))]

    def is_rigid(self, lo, hi) -> bool:
        """True when the box ``lo``–``hi`` lies inside the rigid corridor (no displacement anywhere in it)."""
        return any(all(c[a] - h[a] <= lo[a] and hi[a] <= c[a] + h[a] for a in range(3)) for c, h in self.boxes)

    def _fade(self, x, y, z):
        d = None
        for c, h in self.boxes:
            b = S.box(x, y, z, c, h)
            d = b if d is None else np.minimum(d, b)
        return S.smoothstep(d * (1.0 / FADE_MM))

    def displacement(self, x, y, z) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, y, z = (np.asarray(v, np.float32) for v in (x, y, z))
        f = self._fade(x, y, z).astype(np.float32)
        out = [np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)]
        for k, amp, ph in zip(self.k, self.amp, self.phase):
            s = np.sin(np.float32(k[0]) * x + np.float32(k[1]) * y + np.float32(k[2]) * z + np.float32(ph)) * f
            for c in range(3):
                out[c] += np.float32(amp[c]) * s
        return out[0], out[1], out[2]

    def inverse(self, q: np.ndarray) -> np.ndarray:
        """Render point p with p + d(p) = q (fixed-point iterations; the field is smooth and small)."""
        q = np.asarray(q, float)
        p = q.copy()
        for _ in range(4):
            d = np.stack(self.displacement(p[..., 0], p[..., 1], p[..., 2]), axis=-1)
            p = q - d
        return p


def draw_waves(rng: np.random.Generator, amplitude_mm: float, n: int = 3) -> list[dict]:
    """``n`` random waves: direction uniform on the sphere, wavelength 90–200 mm, amplitude ~``amplitude_mm``;
    scaled down when the strain bound Σ|a|·(|k| + 1/`FADE_MM`) would exceed `MAX_STRAIN`."""
    waves = []
    for _ in range(n):
        d = rng.standard_normal(3)
        d /= np.linalg.norm(d)
        lam = float(rng.uniform(90.0, 200.0))
        a = rng.standard_normal(3)
        a *= amplitude_mm / (np.linalg.norm(a) * np.sqrt(n))
        waves.append({"k": d * 2 * np.pi / lam, "amp": a, "phase": float(rng.uniform(0, 2 * np.pi)),
                      "wavelength_mm": lam})
    strain = sum(np.linalg.norm(w["amp"]) * (np.linalg.norm(w["k"]) + 1.0 / FADE_MM) for w in waves)
    scale = min(1.0, MAX_STRAIN / max(strain, 1e-9))
    return [{"k": w["k"].tolist(), "amp": (w["amp"] * scale).tolist(), "phase": w["phase"],
             "wavelength_mm": w["wavelength_mm"]} for w in waves]
