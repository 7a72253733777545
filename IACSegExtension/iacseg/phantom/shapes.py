"""Signed-distance primitives (mm) evaluated on coordinate arrays of any shape.

Every function takes the coordinates as three separate arrays ``x, y, z`` (mm, in the phantom's head
frame, see `anatomy`) and returns a signed distance of the same shape: negative inside, positive outside.
Some are approximations of the exact distance (ellipsoids, tapered capsules) that are exact on the surface
and close to it nearby, which is all the edge ramp needs.
"""

from __future__ import annotations

import numpy as np

Vec = tuple[float, float, float]


def occupancy(sdf: np.ndarray, width: float) -> np.ndarray:
    """Partial-volume fraction 0..1 from a signed distance: a linear ramp ``width`` mm wide across the surface."""
    return np.clip(0.5 - sdf * (1.0 / width), 0.0, 1.0)


def ellipsoid(x, y, z, centre: Vec, radii: Vec) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipsoid (exact on the surface)."""
    qx = (x - centre[0]) * (1.0 / radii[0])
    qy = (y - centre[1]) * (1.0 / radii[1])
    qz = (z - centre[2]) * (1.0 / radii[2])
    k0 = np.sqrt(qx * qx + qy * qy + qz * qz)
    k1 = np.sqrt((qx / radii[0]) ** 2 + (qy / radii[1]) ** 2 + (qz / radii[2]) ** 2)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)


def sphere(x, y, z, centre: Vec, radius: float) -> np.ndarray:
    return np.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2) - radius


def ellipse_z(x, y, centre_xy: tuple[float, float], radii_xy: tuple[float, float]) -> np.ndarray:
    """Approximate signed distance (in-plane) to an infinite elliptic cylinder along z."""
    qx = (x - centre_xy[0]) / radii_xy[0]
    qy = (y - centre_xy[1]) / radii_xy[1]
    k0 = np.sqrt(qx * qx + qy * qy)
    k1 = np.sqrt((qx / radii_xy[0]) ** 2 + (qy / radii_xy[1]) ** 2)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)


def cylinder_z(x, y, z, centre_xy, radii_xy, z_lo: float, z_hi: float) -> np.ndarray:
    """Elliptic cylinder along z between heights ``z_lo`` and ``z_hi`` (flat ends)."""
    return np.maximum(ellipse_z(x, y, centre_xy, radii_xy), np.maximum(z_lo - z, z - z_hi))


def rotation_from_axis(axis: Vec) -> np.ndarray:
    """3×3 matrix whose columns are a right-handed frame with its second column along ``axis``."""
    u = np.asarray(axis, dtype=float)
    u = u / np.linalg.norm(u)
    ref = np.array([1.0, 0.0, 0.0]) if abs(u[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    e1 = ref - u * (ref @ u)
    e1 /= np.linalg.norm(e1)
    e3 = np.cross(e1, u)
    return np.stack([e1, u, e3], axis=1)


def box(x, y, z, centre: Vec, half: Vec, rounding: float = 0.0, rotation: np.ndarray | None = None) -> np.ndarray:
    """Signed distance to a (rounded, optionally oriented) box; ``rotation`` columns are the box axes."""
    dx, dy, dz = x - centre[0], y - centre[1], z - centre[2]
    if rotation is not None:
        r = rotation
        dx, dy, dz = (dx * r[0, 0] + dy * r[1, 0] + dz * r[2, 0], dx * r[0, 1] + dy * r[1, 1] + dz * r[2, 1],
                      dx * r[0, 2] + dy * r[1, 2] + dz * r[2, 2])
    qx = np.abs(dx) - (half[0] - rounding)
    qy = np.abs(dy) - (half[1] - rounding)
    qz = np.abs(dz) - (half[2] - rounding)
    outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2 + np.maximum(qz, 0) ** 2)
    inside = np.minimum(np.maximum(qx, np.maximum(qy, qz)), 0.0)
    return outside + inside - rounding


def capsule(x, y, z, a: Vec, b: Vec, r_a: float, r_b: float | None = None) -> np.ndarray:
    """Approximate signed distance to a (tapered) capsule from ``a`` (radius ``r_a``) to ``b`` (``r_b``)."""
    r_b = r_a if r_b is None else r_b
    ab = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    inv = 1.0 / float(ab @ ab)
    px, py, pz = x - a[0], y - a[1], z - a[2]
    t = np.clip((px * ab[0] + py * ab[1] + pz * ab[2]) * inv, 0.0, 1.0)
    d = np.sqrt((px - t * ab[0]) ** 2 + (py - t * ab[1]) ** 2 + (pz - t * ab[2]) ** 2)
    return d - (r_a + (r_b - r_a) * t)


def smooth_union(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Union of two signed distances with a blend of ``k`` mm (polynomial smooth minimum)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def texture(x, y, z, freq: float, phase: Vec = (0.3, 1.1, 2.0)) -> np.ndarray:
    """A smooth deterministic pattern in [-1, 1] (trabecular bone, air cells); ``freq`` in rad/mm."""
    return (np.sin(x * freq + phase[0]) * np.sin(y * (freq * 1.13) + phase[1])
            * np.sin(z * (freq * 0.91) + phase[2]))
