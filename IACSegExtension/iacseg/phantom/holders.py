"""Head holders in the scanner frame (they do not move with the head): cradle, U-frame with foam pads,
flat table with mattress, optional forehead strap. All run along the scanner's z axis."""

from __future__ import annotations

import numpy as np

from . import shapes as S
from .anatomy import AnatomySpec
from .layer import Layer

HOLDER_SHAPES = ("none", "cradle", "u_frame", "table")
_FAR = 1e4


def _head_points(a: AnatomySpec) -> dict[str, np.ndarray]:
    """World points on the scalp: back, left, right and front of the head at the skull centre's height."""
    cx, cy, cz = a.skull_centre
    rx, ry, _ = a.skull_radii
    sc = a.scalp_mm
    to = a.pose.to_world
    return {"back": to(np.array([0.0, cy + ry + sc, cz])), "left": to(np.array([rx + sc, cy, cz])),
            "right": to(np.array([-(rx + sc), cy, cz])), "front": to(np.array([0.0, cy - ry - sc, cz + 25.0]))}


def holder_layers(a: AnatomySpec, acq: dict) -> list[Layer]:
    """World-frame layers of the holder ``acq["holder"]`` with the style's sizes and densities."""
    shape = acq["holder"]
    if shape == "none":
        return []
    pts = _head_points(a)
    back_y = float(pts["back"][1])
    gap, thick, hu = float(acq["holder_gap_mm"]), float(acq["holder_thick_mm"]), float(acq["holder_hu"])
    out: list[Layer] = []
    if shape in ("cradle", "u_frame"):
        r = float(acq["holder_radius_mm"])
        yc = back_y + gap - r
        cos_limit = float(np.cos(np.radians(acq["holder_angle_deg"] if shape == "cradle" else 88.0)))

        def rest(x, y, z, w, yc=yc, r=r):
            rr = np.sqrt(x * x + (y - yc) ** 2)
            d = np.maximum(np.abs(rr - r - 0.5 * thick) - 0.5 * thick, cos_limit * rr - (y - yc))
            return [(S.occupancy(d, w), hu)]

        y_lo = yc + r * min(cos_limit, 0.2) - thick - 2.0
        out.append(Layer("holder_shell", (-r - thick, y_lo, -_FAR), (r + thick, yc + r + thick, _FAR),
                         rest, world=True))
        pad_mm, pad_hu = float(acq["pad_mm"]), float(acq["pad_hu"])

        def pad(x, y, z, w, yc=yc, r=r):
            rr = np.sqrt(x * x + (y - yc) ** 2)
            d = np.maximum(np.abs(rr - (r - 0.5 * pad_mm)) - 0.5 * pad_mm, 0.2 * rr - (y - yc))
            return [(S.occupancy(d, w), pad_hu)]

        out.append(Layer("holder_pad", (-r, yc + 0.15 * r, -_FAR), (r, yc + r, _FAR), pad, world=True))
        if shape == "u_frame":
            for side, p in (("left", pts["left"]), ("right", pts["right"])):
                sg = 1.0 if side == "left" else -1.0
                xc = float(p[0]) + sg * (gap + 0.5 * pad_mm)
                yc2 = float(p[1])
                out.append(Layer(f"holder_side_{side}", (xc - pad_mm, yc2 - 45, -_FAR), (xc + pad_mm, yc2 + 45, _FAR),
                                 lambda x, y, z, w, xc=xc, yc2=yc2: [
                    (S.occupancy(np.maximum(np.abs(x - xc) - 0.5 * pad_mm, np.abs(y - yc2) - 40.0), w), pad_hu)],
                    world=True))
    if shape == "table":
        m_mm, m_hu = float(acq["pad_mm"]), float(acq["mattress_hu"])
        y0 = back_y + 0.5 * gap
        t_hu = float(acq["table_hu"])
        thick = float(acq["table_mm"])
        out.append(Layer("mattress", (-200, y0, -_FAR), (200, y0 + m_mm, _FAR), lambda x, y, z, w: [
            (S.occupancy(np.maximum(np.abs(y - (y0 + 0.5 * m_mm)) - 0.5 * m_mm, np.abs(x) - 160.0), w), m_hu)],
            world=True))
        y1 = y0 + m_mm

        def table(x, y, z, w):
            slab = np.maximum(np.abs(y - (y1 + 0.5 * thick)) - 0.5 * thick, np.abs(x) - 190.0 + 0.02 * (y - y1) ** 2)
            core = slab + 1.5
            return [(S.occupancy(slab, w), t_hu), (S.occupancy(core, w), -300.0)]

        out.append(Layer("table", (-200, y1, -_FAR), (200, y1 + thick, _FAR), table, world=True))
    if acq.get("strap_p"):
        f = pts["front"]
        rx = a.skull_radii[0] + a.scalp_mm

        def strap(x, y, z, w, f=f, rx=rx):
            # a 2 mm band over the forehead, 25 mm wide in z, bending round the front of the head
            rr = np.sqrt((x - f[0]) ** 2 / (rx * rx) * 60.0 ** 2 + (y - (f[1] + 60.0)) ** 2)
            d = np.maximum(np.maximum(np.abs(rr - 61.2) - 1.0, np.abs(z - f[2]) - 12.5), y - (f[1] + 40.0))
            return [(S.occupancy(d, w), 60.0)]

        out.append(Layer("strap", (f[0] - rx - 5, f[1] - 5, f[2] - 14), (f[0] + rx + 5, f[1] + 45, f[2] + 14), strap,
                         world=True))
    return out
