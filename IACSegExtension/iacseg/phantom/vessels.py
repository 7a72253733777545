"""Supersampled rendering of the fine structures around one ICA: carotid canal, vessel wall, lumen, plaques.

For one slice (a plane with a slab ``thickness`` along its normal) only the pixels near the artery are
touched; each is split into S×S×S_n sub-samples (in-plane and across the slab, i.e. the slice-thickness
profile), each sub-sample is painted, and the means give per pixel ``transmit`` (how much of the coarse
background survives) and ``paint`` (what the fine layers add), so the pixel becomes
``background * transmit + paint`` — exact for a background constant over the pixel. Plaques also produce
``excess`` = mean of Σ occupancy·(plaque HU − blood HU): the noise-free plaque-only rendering used for truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from .anatomy import BRANCH, CERVICAL, PETROUS, Centreline, Pose
from .plaques import BLOOD_HU, Plaque
from .shapes import occupancy

WALL_HU, CANAL_HU, FAT_HU = 45.0, 40.0, -90.0


@dataclass
class FinePixels:
    """Fine-structure result for one slice: flat pixel indices ``j * ni + i`` and per-pixel values."""

    pixels: np.ndarray
    transmit: np.ndarray
    paint: np.ndarray
    excess: np.ndarray       # HU above blood from plaques (noise-free), ≥ 0
    plaque_id: np.ndarray    # int16, 0 = none


class ArteryRenderer:
    """Fine rendering of one side's ICA (with its plaques) at arbitrary slice planes (world LPS)."""

    def __init__(self, centreline: Centreline, plaques: list[Plaque], pose: Pose, z_canal: float,
                 tissue: dict | None = None):
        """``tissue`` (randomised families) overrides the HU of ``fat``, ``wall``, ``canal`` and ``blood``."""
        c = centreline
        t = tissue or {}
        self.fat_hu, self.canal_hu = float(t.get("fat", FAT_HU)), float(t.get("canal", CANAL_HU))
        self.wall_hu, self.blood_hu = float(t.get("wall", WALL_HU)), float(t.get("blood", BLOOD_HU))
        self.c = c
        self.pose = pose
        self.z_canal = z_canal
        self.world = pose.to_world(c.points)
        self.reach = np.where(c.part == CERVICAL, c.outer_r + 3.2,
                              np.where(c.part == PETROUS, c.canal_r + 0.3, c.outer_r + 0.3))
        self.plaques = plaques
        self.plaque_world = [pose.to_world(p.centre_head) for p in plaques]

    def render_slice(self, origin: np.ndarray, row: np.ndarray, col: np.ndarray, normal: np.ndarray,
                     dx: float, dy: float, ni: int, nj: int, thickness: float) -> FinePixels | None:
        """Fine pixels of the slice whose pixel (i, j) centre is ``origin + i*dx*row + j*dy*col`` (LPS mm)."""
        rel = self.world - origin
        pn = rel @ normal
        sel = np.flatnonzero(np.abs(pn) <= 0.5 * thickness + self.reach)
        if sel.size == 0:
            return None
        pi, pj = rel[sel] @ row / dx, rel[sel] @ col / dy
        reach = float(self.reach[sel].max())
        half = np.hypot(0.5 * dx, 0.5 * dy)
        i0 = max(int(np.floor(pi.min() - (reach + half) / dx)), 0)
        i1 = min(int(np.ceil(pi.max() + (reach + half) / dx)) + 1, ni)
        j0 = max(int(np.floor(pj.min() - (reach + half) / dy)), 0)
        j1 = min(int(np.ceil(pj.max() + (reach + half) / dy)) + 1, nj)
        if i0 >= i1 or j0 >= j1:
            return None
        jj, ii = np.mgrid[j0:j1, i0:i1]
        tree2 = cKDTree(np.stack([pi * dx, pj * dy], axis=1))
        d2, _ = tree2.query(np.stack([ii.ravel() * dx, jj.ravel() * dy], axis=1), distance_upper_bound=reach + half)
        keep = np.isfinite(d2)
        if not keep.any():
            return None
        ii, jj = ii.ravel()[keep], jj.ravel()[keep]
        s = int(np.clip(np.ceil(max(dx, dy) / 0.2), 3, 6))
        sn = int(np.clip(np.ceil(thickness / 0.4), 1, 12))
        oi = ((np.arange(s) + 0.5) / s - 0.5)
        on = ((np.arange(sn) + 0.5) / sn - 0.5) * thickness
        g = np.stack(np.meshgrid(oi * dx, oi * dy, on, indexing="ij"), axis=-1).reshape(-1, 3)
        offsets = g[:, :1] * row + g[:, 1:2] * col + g[:, 2:3] * normal           # (K, 3)
        centres = origin + ii[:, None] * dx * row + jj[:, None] * dy * col          # (M, 3)
        q = (centres[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
        tree3 = cKDTree(self.world[sel])
        d, k = tree3.query(q)
        idx = sel[k]
        w = max(max(dx, dy) / s, thickness / sn)
        c = self.c
        part = c.part[idx]
        z_head = (q - self.pose.translation) @ self.pose.rotation[:, 2]
        transmit = np.ones(len(q))
        paint = np.zeros(len(q))

        def layer(occ, hu):
            nonlocal transmit, paint
            paint = paint + occ * (hu - paint)
            transmit = transmit * (1.0 - occ)

        fat = occupancy(np.abs(d - (c.outer_r[idx] + 2.0)) - 1.0, w) * ((part == CERVICAL) & (z_head < self.z_canal - 1.5))
        layer(fat, self.fat_hu)
        layer(occupancy(d - c.canal_r[idx], w) * (part == PETROUS), self.canal_hu)
        layer(occupancy(d - c.outer_r[idx], w), self.wall_hu)
        layer(occupancy(d - c.lumen_r[idx], w), self.blood_hu)
        m = len(ii)
        excess = np.zeros(m)
        pid = np.zeros(m, np.int16)
        best = np.zeros(m)
        on_ica = part != BRANCH
        for p, pw in zip(self.plaques, self.plaque_world):
            near = np.flatnonzero((np.sum((q - pw) ** 2, axis=1) < p.reach_mm ** 2) & on_ica)
            if near.size == 0:
                continue
            v = q[near] - self.world[idx[near]]
            n1 = self.pose.rotation @ c.n1[idx[near]].T
            n2 = self.pose.rotation @ c.n2[idx[near]].T
            theta = np.arctan2(np.einsum("ij,ji->i", v, n2), np.einsum("ij,ji->i", v, n1))
            occ_near = occupancy(p.signed_distance(d[near], c.arc[idx[near]], theta), w)
            occ = np.zeros(len(q))
            occ[near] = occ_near
            layer(occ, p.hu)
            ex = (occ * (p.hu - self.blood_hu)).reshape(m, -1).mean(axis=1)
            excess += ex
            better = ex > best
            pid[better], best[better] = p.id, ex[better]
        kk = len(offsets)
        return FinePixels(pixels=jj * ni + ii, transmit=transmit.reshape(m, kk).mean(axis=1),
                          paint=paint.reshape(m, kk).mean(axis=1), excess=excess, plaque_id=pid)
