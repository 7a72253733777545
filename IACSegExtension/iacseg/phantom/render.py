"""Render a stack of (possibly tilted, possibly sheared) slice planes of the analytic phantom.

Slice ``k`` pixel ``(i, j)`` has its centre at ``origins[k] + i*dx*row + j*dy*col`` (LPS mm); the slice is a
slab ``thickness`` mm thick along ``normal`` (box profile). Coarse layers are sampled on ``ceil(T / 1.25)``
sub-planes across the slab with an edge ramp; fine structures are supersampled (see `vessels`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..core.progress import Progress, no_progress
from .anatomy import Pose
from .layers import AIR, Layer
from .vessels import ArteryRenderer


@dataclass
class PlaneStack:
    """Geometry of a stack of parallel slices (LPS mm)."""

    origins: np.ndarray      # (nk, 3) centre of pixel (0, 0) of each slice
    row: np.ndarray          # direction of increasing i (column index)
    col: np.ndarray          # direction of increasing j (row index)
    dx: float                # spacing along row (between columns)
    dy: float                # spacing along col (between rows)
    ni: int
    nj: int
    thickness: float
    fov_mm: float
    circle_centres: np.ndarray | None = None   # (nk, 3) reconstruction-circle centres; default: slice middles

    @property
    def normal(self) -> np.ndarray:
        n = np.cross(self.row, self.col)
        return n / np.linalg.norm(n)

    @property
    def nk(self) -> int:
        return len(self.origins)

    def fov_centres(self) -> np.ndarray:
        """(nk, 3) world point each slice's reconstruction circle is centred on (its slice's middle pixel)."""
        if self.circle_centres is not None:
            return self.circle_centres
        return self.origins + 0.5 * (self.ni - 1) * self.dx * self.row + 0.5 * (self.nj - 1) * self.dy * self.col


def _corners(lo, hi) -> np.ndarray:
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])], float)


class Renderer:
    """Paints `Layer`s and `ArteryRenderer`s onto slice planes."""

    def __init__(self, layers: Sequence[Layer], arteries: Sequence[ArteryRenderer], pose: Pose, warp=None):
        """``warp`` (randomised families): a `warp.SmoothWarp`; head-frame layers are painted at the warped
        coordinates (their boxes grown by its largest displacement). ``None`` renders as the classic phantom."""
        self.layers = list(layers)
        self.arteries = list(arteries)
        self.pose = pose
        self.warp = warp
        pad = warp.max_mm + 1.0 if warp is not None else 0.0
        self.corners = np.stack([_corners(np.subtract(l.lo, 0.0 if l.world else pad),
                                          np.add(l.hi, 0.0 if l.world else pad)) for l in self.layers]) \
            if warp is not None else np.stack([_corners(l.lo, l.hi) for l in self.layers])    # (nL, 8, 3)
        self.is_world = np.array([l.world for l in self.layers])
        self.rigid = [l.world or (warp is not None and warp.is_rigid(l.lo, l.hi)) for l in self.layers]
        self._interp: dict = {}

    def _coarse(self, origin: np.ndarray, st: PlaneStack, width: float) -> np.ndarray:
        if self.warp is not None:
            return self._coarse_warped(origin, st, width)
        r, t = self.pose.rotation, self.pose.translation
        out = np.full((st.nj, st.ni), AIR, np.float32)
        frames = {False: (r.T @ (origin - t), r.T @ st.row * st.dx, r.T @ st.col * st.dy, r.T @ st.normal),
                  True: (origin, st.row * st.dx, st.col * st.dy, st.normal)}
        ii_all = np.arange(st.ni, dtype=np.float32)
        jj_all = np.arange(st.nj, dtype=np.float32)
        for n, layer in enumerate(self.layers):
            a, bi, bj, nn = frames[bool(self.is_world[n])]
            rel = self.corners[n] - a
            h = rel @ nn
            if h.min() > 0 or h.max() < 0:
                continue
            ci, cj = rel @ bi / (bi @ bi), rel @ bj / (bj @ bj)
            i0, i1 = max(int(np.floor(ci.min())), 0), min(int(np.ceil(ci.max())) + 1, st.ni)
            j0, j1 = max(int(np.floor(cj.min())), 0), min(int(np.ceil(cj.max())) + 1, st.nj)
            if i0 >= i1 or j0 >= j1:
                continue
            ii, jj = ii_all[None, i0:i1], jj_all[j0:j1, None]
            x = np.float32(a[0]) + ii * np.float32(bi[0]) + jj * np.float32(bj[0])
            y = np.float32(a[1]) + ii * np.float32(bi[1]) + jj * np.float32(bj[1])
            z = np.float32(a[2]) + ii * np.float32(bi[2]) + jj * np.float32(bj[2])
            sub = out[j0:j1, i0:i1]
            for occ, hu in layer.paint(x, y, z, width):
                sub += occ * (hu - sub)
        return out

    def _displacement(self, a, bi, bj, st: PlaneStack, step: int = 8):
        """Warp displacement over the whole slice: evaluated every ``step`` pixels, bilinearly interpolated."""
        key = (st.ni, st.nj, step)
        if key not in self._interp:
            mats = []
            for n in (st.nj, st.ni):
                nc = (n - 1) // step + 2
                pos = np.arange(n) / step
                i0 = np.minimum(pos.astype(int), nc - 2)
                t = pos - i0
                m = np.zeros((n, nc), np.float32)
                m[np.arange(n), i0] = 1 - t
                m[np.arange(n), i0 + 1] = t
                mats.append(m)
            self._interp[key] = mats
        mj, mi = self._interp[key]
        jc = np.arange(mj.shape[1], dtype=np.float32)[:, None] * step
        ic = np.arange(mi.shape[1], dtype=np.float32)[None, :] * step
        pts = [np.float32(a[c]) + ic * np.float32(bi[c]) + jc * np.float32(bj[c]) for c in range(3)]
        return [mj @ d @ mi.T for d in self.warp.displacement(*pts)]

    def _coarse_warped(self, origin: np.ndarray, st: PlaneStack, width: float) -> np.ndarray:
        r, t = self.pose.rotation, self.pose.translation
        out = np.full((st.nj, st.ni), AIR, np.float32)
        frames = {False: (r.T @ (origin - t), r.T @ st.row * st.dx, r.T @ st.col * st.dy, r.T @ st.normal),
                  True: (origin, st.row * st.dx, st.col * st.dy, st.normal)}
        disp = self._displacement(*frames[False][:3], st)
        ii_all = np.arange(st.ni, dtype=np.float32)
        jj_all = np.arange(st.nj, dtype=np.float32)
        for n, layer in enumerate(self.layers):
            world = bool(self.is_world[n])
            a, bi, bj, nn = frames[world]
            rel = self.corners[n] - a
            h = rel @ nn
            if h.min() > 0 or h.max() < 0:
                continue
            ci, cj = rel @ bi / (bi @ bi), rel @ bj / (bj @ bj)
            i0, i1 = max(int(np.floor(ci.min())), 0), min(int(np.ceil(ci.max())) + 1, st.ni)
            j0, j1 = max(int(np.floor(cj.min())), 0), min(int(np.ceil(cj.max())) + 1, st.nj)
            if i0 >= i1 or j0 >= j1:
                continue
            ii, jj = ii_all[None, i0:i1], jj_all[j0:j1, None]
            x = np.float32(a[0]) + ii * np.float32(bi[0]) + jj * np.float32(bj[0])
            y = np.float32(a[1]) + ii * np.float32(bi[1]) + jj * np.float32(bj[1])
            z = np.float32(a[2]) + ii * np.float32(bi[2]) + jj * np.float32(bj[2])
            if not self.rigid[n]:
                x = x + disp[0][j0:j1, i0:i1]
                y = y + disp[1][j0:j1, i0:i1]
                z = z + disp[2][j0:j1, i0:i1]
            sub = out[j0:j1, i0:i1]
            for occ, hu in layer.paint(x, y, z, width):
                sub += occ * (hu - sub)
        return out

    def render(self, st: PlaneStack, progress: Progress = no_progress, stage: str = "render",
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Noise-free HU ``[k, j, i]`` float32, plaque excess HU (float32) and plaque id (int16) on ``st``."""
        nk, nj, ni = st.nk, st.nj, st.ni
        hu = np.empty((nk, nj, ni), np.float32)
        excess = np.zeros((nk, nj, ni), np.float32)
        pid = np.zeros((nk, nj, ni), np.int16)
        n = st.normal
        m = max(1, int(np.ceil(st.thickness / 1.25 - 1e-6)))
        offsets = ((np.arange(m) + 0.5) / m - 0.5) * st.thickness
        width = max(st.dx, st.dy, 0.5 * st.thickness / m, 0.5)
        fov_r2 = (0.5 * st.fov_mm) ** 2
        ii = np.arange(ni) * st.dx
        jj = np.arange(nj) * st.dy
        cen = st.fov_centres()
        for k in range(nk):
            o = st.origins[k]
            img = self._coarse(o + offsets[0] * n, st, width)
            for u in offsets[1:]:
                img += self._coarse(o + u * n, st, width)
            if m > 1:
                img *= 1.0 / m
            flat, ex_flat, id_flat = img.reshape(-1), excess[k].reshape(-1), pid[k].reshape(-1)
            for art in self.arteries:
                fp = art.render_slice(o, st.row, st.col, n, st.dx, st.dy, ni, nj, st.thickness)
                if fp is None:
                    continue
                flat[fp.pixels] = flat[fp.pixels] * fp.transmit + fp.paint
                ex_flat[fp.pixels] += fp.excess
                has = fp.plaque_id > 0
                id_flat[fp.pixels[has]] = fp.plaque_id[has]
            # reconstruction circle: air outside it
            c = cen[k] - o
            ci, cj = c @ st.row, c @ st.col
            outside = (ii[None, :] - ci) ** 2 + (jj[:, None] - cj) ** 2 > fov_r2
            img[outside] = AIR
            hu[k] = img
            progress(stage, (k + 1) / nk, f"slice {k + 1}/{nk}")
        return hu, excess, pid


def fov_outside_mask(st: PlaneStack) -> np.ndarray:
    """bool ``[k, j, i]``: pixels outside each slice's reconstruction circle."""
    ii = np.arange(st.ni) * st.dx
    jj = np.arange(st.nj) * st.dy
    out = np.empty((st.nk, st.nj, st.ni), bool)
    cen = st.fov_centres()
    for k in range(st.nk):
        c = cen[k] - st.origins[k]
        out[k] = (ii[None, :] - c @ st.row) ** 2 + (jj[:, None] - c @ st.col) ** 2 > (0.5 * st.fov_mm) ** 2
    return out
