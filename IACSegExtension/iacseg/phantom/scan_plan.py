"""Where the slices of a randomised-family phantom go: z range (full, short or truncated coverage) and the
output grid (axial, gantry-tilted, or an oblique reformat rotated about an in-plane axis).

Heights: slice k's plane passes through world ``(0, 0, z_b) + k·step·n`` (``n`` the slice normal, ``step`` the
spacing along it); at a point (x, y) its height is ``z_b + k·vz + h(x, y)`` with ``vz = step / n_z`` and
``h(x, y) = −(n_x x + n_y y) / n_z``. Truncation conditions are evaluated at each landmark's own (x, y), so
they hold for tilted and oblique grids too; ``coverage_z_mm`` is reported at the midline point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.grid import Grid
from .dicom_stack import Acquisition, acquisition
from .render import PlaneStack

TRUNCATE_MARGIN_MM = 2.0


@dataclass
class ZPlan:
    z_bottom: float
    n_slices: int
    vz: float                 # vertical distance between consecutive slices (mm)
    truncate: str | None
    conflict: bool = False    # the truncation window was empty (then its middle is used)


def slice_normal(tilt_deg: float, oblique_deg: float, oblique_axis_deg: float) -> np.ndarray:
    """Unit slice normal of the output grid (LPS)."""
    if tilt_deg:
        t = np.radians(tilt_deg)
        return np.array([0.0, -np.sin(t), np.cos(t)])
    return oblique_frame(oblique_deg, oblique_axis_deg)[:, 2]


def oblique_frame(angle_deg: float, axis_deg: float) -> np.ndarray:
    """3×3 rotation (columns row, col, normal) by ``angle_deg`` about the in-plane axis at ``axis_deg`` from +x."""
    a = np.radians(axis_deg)
    u = np.array([np.cos(a), np.sin(a), 0.0])
    t = np.radians(angle_deg)
    k = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * (k @ k)


def plan_z(points: dict[str, np.ndarray], normal: np.ndarray, vz: float, coverage_mm: float, margin_mm: float,
           truncate: str | None, u: float, short: tuple[float, float] | None = None) -> ZPlan:
    """z_bottom and slice count. ``u`` ∈ [0, 1) places a truncated end inside its window; ``short`` =
    (margin below the lower canal, extent above the higher clinoid) for a short full-coverage scan."""
    n = normal

    def adj(name: str) -> float:         # z_b at which slice 0 passes through landmark `name`
        p = points[name]
        return float(p[2] + (n[0] * p[0] + n[1] * p[1]) / n[2])

    canal = [adj(f"{s}_carotid_canal") for s in "LR"]
    pl = [adj(f"{s}_petrolingual") for s in "LR"]
    ac = [adj(f"{s}_anterior_clinoid") for s in "LR"]
    n_cov = max(2, int(round(coverage_mm / vz)) + 1)
    m = TRUNCATE_MARGIN_MM
    if truncate == "bottom":
        lo, hi = max(canal) + m, min(pl) - m
        zb = lo + u * (hi - lo) if hi >= lo else 0.5 * (lo + hi)
        return ZPlan(zb, n_cov, vz, truncate, hi < lo)
    if truncate == "top":
        lo, hi = max(pl) + m, min(ac) - m
        z_last = lo + u * (hi - lo) if hi >= lo else 0.5 * (lo + hi)
        return ZPlan(z_last - (n_cov - 1) * vz, n_cov, vz, truncate, hi < lo)
    if short is not None:
        zb = min(canal) - short[0]
        n_sl = int(np.ceil((max(ac) + short[1] - zb) / vz)) + 1
        return ZPlan(zb, max(n_sl, 2), vz, None)
    zb = min(canal) - margin_mm
    need = int(np.ceil((max(ac) + 10.0 - zb) / vz)) + 1
    return ZPlan(zb, max(n_cov, need), vz, None)


def height_at(plan: ZPlan, normal: np.ndarray, k: float, xy) -> float:
    """World z of slice ``k``'s plane at (x, y)."""
    return float(plan.z_bottom + k * plan.vz - (normal[0] * xy[0] + normal[1] * xy[1]) / normal[2])


def build_acquisition(matrix: int, fov_mm: float, plan: ZPlan, spacing_mm: float, thickness_mm: float,
                      tilt_deg: float, oblique_deg: float, oblique_axis_deg: float) -> Acquisition:
    """Axial / tilted grids through `dicom_stack.acquisition`; oblique reformats built here (no DICOM shear)."""
    if tilt_deg or not oblique_deg:
        return acquisition(matrix, fov_mm, plan.z_bottom, plan.n_slices, spacing_mm, thickness_mm, tilt_deg)
    r = oblique_frame(oblique_deg, oblique_axis_deg)
    row, col, n = r[:, 0], r[:, 1], r[:, 2]
    dx = fov_mm / matrix
    c = 0.5 * (matrix - 1) * dx
    k = np.arange(plan.n_slices)[:, None]
    ipp0 = np.array([0.0, 0.0, plan.z_bottom]) - c * row - c * col
    origins = ipp0 + k * spacing_mm * n
    st = PlaneStack(origins, row, col, dx, dx, matrix, matrix, thickness_mm, fov_mm)
    grid = Grid((plan.n_slices, matrix, matrix), (dx, dx, spacing_mm), tuple(ipp0), tuple(r.ravel()))
    return Acquisition(grid, st, None, spacing_mm / float(n[2]), 0.0)
