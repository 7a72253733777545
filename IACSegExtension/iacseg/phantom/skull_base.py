"""Skull-base bones of the randomised families, less geometric than the classic ones: a sphenoid body with a
cortical shell, marrow, an irregular sinus and an oblique septum; a clivus with cortex and marrow; mastoids
with a honeycomb of air cells. The outer surfaces near the ICA are the classic ones (same boxes), so the
carotid canals, the petrolingual ring and the clinoids keep their exact landmark planes."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from . import shapes as S

AIR = -1000.0


def sphenoid_paint(sph_c, sph_h, sella_c, sella_r, septum_x, wall, bone_hu, ph, va):
    mu = float(va.get("sinus_mucosa_mm", 0.0))
    ang = float(va["texture_phase"][6]) * 0.25 - 0.8          # septum obliquity (rad, about z)
    ca, sa = np.cos(ang), np.sin(ang)

    def paint(x, y, z, w):
        body_d = S.box(x, y, z, sph_c, sph_h, 5.0)
        sella = S.sphere(x, y, z, sella_c, sella_r)
        irr = 1.8 * S.texture(x, y, z, 0.33, (ph[2], ph[0], ph[1]))
        sinus = np.maximum(body_d + np.maximum(wall + irr, 0.8), -(sella - 1.2))
        sept = np.abs((x - septum_x) * ca + (y - sph_c[1]) * sa) - 0.6
        septum = np.maximum(sept, body_d + 1.0)
        tex = S.texture(x, y, z, 1.5, ph)
        out = [(S.occupancy(body_d, w), bone_hu + 250.0), (S.occupancy(body_d + 1.2, w), bone_hu - 150.0 + 150 * tex),
               (S.occupancy(sinus, w), 30.0 if mu > 0 else AIR)]
        if mu > 0:
            out.append((S.occupancy(sinus + 0.6 * mu, w), AIR))
        out += [(S.occupancy(septum, w), bone_hu * 0.8), (S.occupancy(sella, w), 45.0)]
        return out
    return paint


def clivus_paint(cl_c, cl_h, cl_rot, bone_hu, ph):
    inner_h = tuple(max(h - 1.5, 0.5) for h in cl_h)

    def paint(x, y, z, w):
        d = S.box(x, y, z, cl_c, cl_h, 3.0, cl_rot)
        di = S.box(x, y, z, cl_c, inner_h, 2.5, cl_rot)
        return [(S.occupancy(d, w), bone_hu + 300.0),
                (S.occupancy(di, w), bone_hu - 250.0 + 120 * S.texture(x, y, z, 1.4, ph))]
    return paint


class AirCells:
    """Voronoi air cells: seeds drawn inside an ellipsoid; a seed's cell is air with probability ``air``; cells
    are separated by bony septa ``septum_mm`` thick. `sdf` is negative inside air cells."""

    def __init__(self, centre, radii, cell_mm: float, air: float, seed: int, septum_mm: float = 0.7):
        rng = np.random.default_rng(seed)
        n = max(8, int(4.0 / 3.0 * np.pi * np.prod(radii) / cell_mm ** 3))
        u = rng.standard_normal((n, 3))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        r = rng.uniform(0, 1, n) ** (1.0 / 3.0)
        self.seeds = np.asarray(centre) + u * r[:, None] * (np.asarray(radii) + cell_mm)
        self.air = rng.uniform(0, 1, n) < air
        self.tree = cKDTree(self.seeds)
        self.septum = septum_mm

    def sdf(self, x, y, z) -> np.ndarray:
        q = np.stack([np.ravel(x), np.ravel(y), np.ravel(z)], axis=1)
        d, i = self.tree.query(q, k=2)
        gap = 0.5 * (d[:, 1] - d[:, 0])
        out = np.where(self.air[i[:, 0]], 0.5 * self.septum - gap, 5.0)
        return out.reshape(np.shape(x)).astype(np.float32)


def mastoid_paint(mc, air: float, ph, seed: int):
    """Mastoid: cortical shell and a honeycomb of air cells (``air`` 0..1: the share of cells with air)."""
    cells = AirCells(mc, (8.5, 11.5, 8.5), 3.2, 0.25 + 0.75 * air, seed)
    marrow = 150.0 + 200.0 * (1.0 - air)

    def paint(x, y, z, w):
        inner = S.ellipsoid(x, y, z, mc, (8.5, 11.5, 8.5))
        out = [(S.occupancy(S.ellipsoid(x, y, z, mc, (10, 13, 10)), w), 900.0), (S.occupancy(inner, w), marrow)]
        if np.any(inner < 1.0):
            out.append((S.occupancy(np.maximum(cells.sdf(x, y, z), inner), w), AIR))
        return out
    return paint
