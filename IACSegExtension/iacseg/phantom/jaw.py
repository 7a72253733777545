"""Hard palate, maxillary and mandibular arches with teeth, rami, oral air and dental metal (families only).

They sit well below the skull base (occlusal plane ~40 mm below the carotid canals), so only the lowest slices
of a scan show them; dental fillings there make the metal streaks of `appearance`.
"""

from __future__ import annotations

import numpy as np

from . import shapes as S
from .anatomy import AnatomySpec
from .layer import Layer

ENAMEL_HU, DENTIN_HU = 2600.0, 1700.0


def _arch(scale: float, y_front: float, half_width: float, n: int) -> np.ndarray:
    """(n, 2) points (x, y) along a parabolic dental arch from the left molars to the right molars."""
    x = np.linspace(-half_width, half_width, n)
    k = 33.0 * scale / half_width ** 2
    return np.stack([x, y_front + k * x ** 2], axis=1)


def jaw_layers(a: AnatomySpec, tis: dict, metal: dict | None,
               rng: np.random.Generator) -> tuple[list[Layer], list[dict]]:
    """Layers (painting order) and the records of the dental fillings (head frame) for phantom ``a``.

    ``metal``: ``{"n_fillings": int, "metal_hu": float}`` or None for no metal.
    """
    s = a.head_scale
    sl, sr = a.sides["L"], a.sides["R"]
    zc = 0.5 * (sl.z_canal + sr.z_canal)
    zpl = 0.5 * (sl.z_petrolingual + sr.z_petrolingual)
    z_pal = zpl - 47.0                   # hard palate, just above the maxillary sinus floors
    z_occ = z_pal - 17.0                 # occlusal plane (~45 mm below the carotid canals)
    hw = 23.0 * s
    upper = _arch(s, -66.0 * s, hw, 14)
    lower = _arch(s, -64.0 * s, hw, 14)
    layers: list[Layer] = []
    muscle, fat = tis["muscle"], tis["fat"]

    chin_c, chin_r = (0.0, -46.0 * s, z_occ - 12.0), (44.0 * s, 34.0 * s, 28.0)
    layers.append(Layer("chin", (-chin_r[0], chin_c[1] - chin_r[1], chin_c[2] - chin_r[2]),
                        (chin_r[0], chin_c[1] + chin_r[1], chin_c[2] + chin_r[2]), lambda x, y, z, w: [
        (S.occupancy(S.ellipsoid(x, y, z, chin_c, chin_r), w), muscle),
        (S.occupancy(np.abs(S.ellipsoid(x, y, z, chin_c, chin_r) + 4.0) - 2.5, w), fat)]))

    pal_c = (0.0, -47.0 * s, z_pal - 2.0)
    layers.append(Layer("palate", (-20 * s, -72 * s, z_pal - 5), (20 * s, -22 * s, z_pal + 1), lambda x, y, z, w: [
        (S.occupancy(S.box(x, y, z, pal_c, (17.0 * s, 22.0 * s, 2.2), 1.5), w), 750.0)]))
    oral_c, oral_r = (0.0, -44.0 * s, z_occ + 1.5), (15.0 * s, 19.0 * s, 2.0)
    layers.append(Layer("oral_air", (-oral_r[0], oral_c[1] - oral_r[1], oral_c[2] - 3),
                        (oral_r[0], oral_c[1] + oral_r[1], oral_c[2] + 3), lambda x, y, z, w: [
        (S.occupancy(S.ellipsoid(x, y, z, oral_c, oral_r), w), -1000.0)]))

    def arch_layer(name, pts, z_lo, z_hi, r_bone, hu_bone, hu_marrow):
        lo = (pts[:, 0].min() - r_bone - 1, pts[:, 1].min() - r_bone - 1, z_lo - r_bone)
        hi = (pts[:, 0].max() + r_bone + 1, pts[:, 1].max() + r_bone + 1, z_hi + r_bone)
        segs = [((p[0], p[1]), (q[0], q[1])) for p, q in zip(pts[:-1], pts[1:])]
        zm, hz = 0.5 * (z_lo + z_hi), 0.5 * (z_hi - z_lo)

        def paint(x, y, z, w):
            d2 = None
            for (ax, ay), (bx, by) in segs:
                dd = S.capsule(x, y, np.zeros_like(x), (ax, ay, 0.0), (bx, by, 0.0), r_bone)
                d2 = dd if d2 is None else np.minimum(d2, dd)
            d = np.maximum(d2, np.abs(z - zm) - hz)
            return [(S.occupancy(d, w), hu_bone), (S.occupancy(d + 1.8, w), hu_marrow)]
        return Layer(name, lo, hi, paint)

    layers.append(arch_layer("maxilla_alveolar", upper, z_occ + 7.0, z_pal - 1.0, 5.5, 1100.0, 500.0))
    layers.append(arch_layer("mandible_body", lower, z_occ - 34.0, z_occ - 7.0, 6.0, 1400.0, 350.0))
    for sg in (1.0, -1.0):
        angle = (sg * 45.0 * s, -8.0 * s, z_occ - 30.0)
        sd = sl if sg > 0 else sr
        condyle = (sd.entry_xy[0] + sg * 17.0, sd.entry_xy[1] - 11.0, zc + 5.0)
        lo = tuple(min(angle[i], condyle[i]) - 7 for i in range(3))
        hi = tuple(max(angle[i], condyle[i]) + 7 for i in range(3))
        layers.append(Layer(f"ramus{sg:+.0f}", lo, hi, lambda x, y, z, w, p=angle, q=condyle: [
            (S.occupancy(S.capsule(x, y, z, p, q, 5.0, 4.0), w), 1300.0),
            (S.occupancy(S.capsule(x, y, z, p, q, 3.2, 2.2), w), 350.0)]))

    teeth = []
    for arch, z_root, z_crown, up in ((upper, z_pal - 2.0, z_occ + 0.5, True),
                                      (lower, z_occ - 20.0, z_occ - 0.5, False)):
        for n, (tx, ty) in enumerate(arch):
            molar = min(n, len(arch) - 1 - n) < 3
            teeth.append({"x": float(tx), "y": float(ty), "z_root": z_root, "z_crown": z_crown, "upper": up,
                          "r": 4.2 if molar else 2.8, "molar": molar})
    for up in (True, False):
        row = [t for t in teeth if t["upper"] == up]
        caps = []
        for t in row:
            sgn = 1.0 if t["z_crown"] > t["z_root"] else -1.0
            b_ = (t["x"], t["y"], t["z_crown"] - sgn * t["r"])
            caps.append(((t["x"], t["y"], t["z_root"]), b_, t["r"], sgn))
        lo = (min(t["x"] for t in row) - 6, min(t["y"] for t in row) - 6,
              min(min(t["z_root"], t["z_crown"]) for t in row) - 5)
        hi = (max(t["x"] for t in row) + 6, max(t["y"] for t in row) + 6,
              max(max(t["z_root"], t["z_crown"]) for t in row) + 5)

        def paint(x, y, z, w, caps=caps):
            dent = enam = None
            for a_, b_, r, sgn in caps:
                d1 = S.capsule(x, y, z, a_, b_, 0.55 * r, r)
                d2 = np.maximum(S.sphere(x, y, z, b_, r), sgn * (b_[2] - z))
                dent = d1 if dent is None else np.minimum(dent, d1)
                enam = d2 if enam is None else np.minimum(enam, d2)
            return [(S.occupancy(dent, w), DENTIN_HU), (S.occupancy(enam, w), ENAMEL_HU)]
        layers.append(Layer("teeth_upper" if up else "teeth_lower", lo, hi, paint))

    fillings = []
    if metal:
        molars = [t for t in teeth if t["molar"] or rng.random() < 0.3]
        pick = rng.choice(len(molars), size=min(int(metal["n_fillings"]), len(molars)), replace=False)
        for k in pick:
            t = molars[int(k)]
            sgn = 1.0 if t["upper"] else -1.0
            c = (t["x"], t["y"], t["z_crown"] - sgn * 1.0)
            rad = (float(rng.uniform(1.8, 3.2)), float(rng.uniform(1.8, 3.2)), float(rng.uniform(1.0, 2.0)))
            fillings.append({"centre_head": [float(v) for v in c], "radii_mm": list(rad),
                             "hu": float(metal["metal_hu"])})
            layers.append(Layer("filling", tuple(c[i] - rad[i] - 1 for i in range(3)),
                                tuple(c[i] + rad[i] + 1 for i in range(3)), lambda x, y, z, w, c=c, rad=rad: [
                (S.occupancy(S.ellipsoid(x, y, z, c, rad), w), float(metal["metal_hu"]))]))
    return layers, fillings
