"""Cranium and brain of the randomised families: vault, gyri and sulci, fissures, deep grey nuclei, atrophy.

The classic phantom paints a smooth brain (a grey ribbon over white matter). Here the cortex is folded by a
smooth pseudo-random gyral field whose zero set forms the sulci; ``atrophy`` (0..1) widens the sulci,
the subarachnoid space, the fissures and the ventricles. Everything is analytic in the head frame.
"""

from __future__ import annotations

import numpy as np

from . import shapes as S
from .anatomy import AnatomySpec
from .layer import Layer

GYRAL_PERIOD_MM = 26.0
K_THETA = 18          # gyri around the head (integer: the pattern closes at ±180°)


def gyral_distance(dx, dy, dz, phase) -> np.ndarray:
    """Approximate distance (mm) to the nearest sulcus, from the skull centre offsets ``dx, dy, dz``.

    The gyral field depends only on the direction from the centre (azimuth θ, elevation φ), so its zero set —
    the sulci — is made of surfaces running radially inward from the cortex, as real sulci do."""
    rho = np.sqrt(dx * dx + dy * dy)
    r = np.sqrt(rho * rho + dz * dz) + np.float32(1e-3)
    th = np.arctan2(dy, dx)
    ph = np.arctan2(dz, rho)
    k = np.float32(K_THETA)
    g = (np.sin(k * th + 1.1 * np.sin(3.0 * th + phase[0]) + 1.3 * np.sin(7.0 * ph + 2.0 * th + phase[1])
                + 0.8 * np.sin(11.0 * ph + phase[4]))
         + 0.9 * np.sin(0.8 * k * ph + 1.3 * np.sin(4.0 * th + phase[2]) + 0.9 * np.sin(9.0 * th - 5.0 * ph)
                        + phase[3])
         + 0.45 * np.sin(13.0 * th + 9.0 * ph + phase[5]))
    return np.abs(g) * r * np.float32(1.0 / (1.6 * K_THETA))


def smooth_field(x, y, z, phase, wavelength_mm: float = 18.0) -> np.ndarray:
    """A blob-like random field in about [-1, 1]: four plane waves in fixed oblique directions."""
    dirs = ((0.8, 0.5, 0.33), (-0.3, 0.9, 0.3), (0.2, -0.4, 0.9), (0.7, -0.6, -0.4))
    f = 2.0 * np.pi / wavelength_mm
    out = None
    for n, d in enumerate(dirs):
        w = np.sin(np.float32(f * d[0] * (1 + 0.15 * n)) * x + np.float32(f * d[1]) * y + np.float32(f * d[2]) * z
                   + np.float32(phase[n % len(phase)] + n))
        out = w if out is None else out + w
    return out * np.float32(0.5)


def _half_res(fn, x, y, z):
    """``fn`` evaluated on every other pixel of a 2D slice patch and bilinearly interpolated (smooth fields)."""
    x, y, z = np.broadcast_arrays(x, y, z)
    if x.ndim != 2 or min(x.shape) < 8:
        return fn(x, y, z)
    sub = fn(x[::2, ::2], y[::2, ::2], z[::2, ::2])
    out = np.empty(x.shape, np.float32)
    out[::2, ::2] = sub
    # odd columns / rows: means of neighbours (last ones copy their neighbour)
    nj, ni = x.shape
    out[::2, 1:ni - 1:2] = 0.5 * (sub[:, :(ni - 1) // 2] + sub[:, 1:(ni + 1) // 2][:, :(ni - 1) // 2])
    if ni % 2 == 0:
        out[::2, -1] = sub[:, -1]
    out[1:nj - 1:2] = 0.5 * (out[0:nj - 2:2] + out[2:nj:2])
    if nj % 2 == 0:
        out[-1] = out[-2]
    return out


def variant_cranium(a: AnatomySpec, floor, foramen, tis: dict, zac: float, clivus: tuple) -> tuple:
    """(paint function of the cranium layer, extra brain layers) for a randomised family: skull vault + base
    plate + folded brain; extra layers: deep grey nuclei, brainstem with its prepontine cistern."""
    va, tt = a.variant["anatomy"], a.variant["tissue"]
    rx, ry, rz = a.skull_radii
    cx, cy, cz = a.skull_centre
    t = a.vault_mm
    ph = a.texture_phase
    gph = va["texture_phase"][3:9]
    bone = a.bone_hu
    (fmx, fmy), fm_r, zfm = foramen
    at = float(va["atrophy"])
    sas = 1.2 + 3.5 * at            # subarachnoid CSF over the convexity (mm)
    sul_w = 0.5 + 2.5 * at          # sulcal width
    depth = 9.0 + 6.0 * at          # sulcal depth below the brain surface
    gt = 2.6                        # cortical ribbon thickness
    ih_w = 0.8 + 3.5 * at           # interhemispheric fissure width
    sy_w = 1.0 + 5.0 * at           # Sylvian fissure width
    grey, white, csf = tis["grey"], tis["white"], tis["csf"]
    btex = float(tt["brain_texture_hu"])
    bfreq = float(tt["bone_texture_freq"])
    gc = (cx, cy, zac + 20.0)        # centre of the gyral pattern

    def cranium(x, y, z, w):
        f = floor(x, y)
        outer = S.ellipsoid(x, y, z, (cx, cy, cz), (rx, ry, rz))
        inner = S.ellipsoid(x, y, z, (cx, cy, cz), (rx - 0.9 * t, ry - 1.1 * t, rz - t))
        cavity = np.maximum(inner, f - z)
        fm = np.maximum(S.ellipse_z(x, y, (fmx, fmy), (fm_r, fm_r)), z - (zfm - 5.0))
        skull = np.maximum(np.maximum(np.maximum(outer, f - 3.5 - z), -cavity), -fm)
        diploe = np.maximum(np.maximum(outer + 0.25 * t + 0.6, 0.2 * t + 0.5 - inner), f + 3.0 - z)
        tex = S.texture(x, y, z, bfreq, ph)
        brain = cavity + sas
        d_in = -cavity
        gy = _half_res(lambda xx, yy, zz: gyral_distance(xx - gc[0], yy - gc[1], zz - gc[2], gph), x, y, z)
        fz = S.smoothstep((z - (zac - 5.0)) * (1.0 / 25.0))      # shallow, narrow sulci at the skull base
        deep = depth * (0.25 + 0.75 * fz) * (0.75 + 0.25 * np.sin(3.0 * x * 0.05 + 2.0 * y * 0.04 + gph[2]))
        sulcus = np.maximum(gy - (0.5 * sul_w) * (0.3 + 0.7 * fz), d_in - deep)
        ih = np.maximum(np.abs(x) - 0.5 * ih_w, (zac + 6.0) - z)
        ys = -10.0 + 0.35 * (z - zac)
        sylv = np.maximum(np.maximum(np.abs(y - ys) - 0.5 * sy_w, 28.0 - np.abs(x)), np.abs(z - (zac + 12.0)) - 12.0)
        csf_in = np.maximum(np.minimum(np.minimum(sulcus, ih), sylv), cavity)
        white_d = np.maximum(brain + gt, gt - sulcus)
        btx = btex * _half_res(lambda xx, yy, zz: smooth_field(xx, yy, zz, gph), x, y, z)
        return [(S.occupancy(skull, w), bone["cortical"]), (S.occupancy(diploe, w), bone["diploe"] + 150.0 * tex),
                (S.occupancy(cavity, w), csf), (S.occupancy(brain, w), grey + btx),
                (S.occupancy(white_d, 2.5), white + 0.7 * btx), (S.occupancy(csf_in, w), csf)]

    extra = []
    nuclei = [((sg * 16.0, -2.0, zac + 17.0), (5.5, 10.0, 7.0), grey - 1.5) for sg in (1.0, -1.0)] + \
             [((sg * 9.0, 14.0, zac + 20.0), (7.0, 9.0, 6.5), grey - 2.5) for sg in (1.0, -1.0)] + \
             [((sg * 12.0, -14.0, zac + 26.0), (4.0, 7.0, 6.0), grey - 1.0) for sg in (1.0, -1.0)]
    for n, (c, r, hu) in enumerate(nuclei):
        extra.append(Layer(f"nucleus{n}", tuple(c[i] - r[i] - 2 for i in range(3)),
                           tuple(c[i] + r[i] + 2 for i in range(3)), lambda x, y, z, w, c=c, r=r, hu=hu: [
            (S.occupancy(S.ellipsoid(x, y, z, c, r), 2.0), hu)]))
    top, basion = (np.asarray(v, float) for v in clivus)
    u = (basion - top) / np.linalg.norm(basion - top)
    n_post = np.array([0.0, -u[2], u[1]])
    n_post = n_post if n_post[1] > 0 else -n_post
    cis_a, cis_b = top + 0.1 * (basion - top) + 6.0 * n_post, basion + 5.0 * n_post
    cis_r = 3.0 + 2.5 * at
    bs_a, bs_b = cis_a + (cis_r + 10.0) * n_post + np.array([0, 0, 6.0]), cis_b + (cis_r + 8.0) * n_post
    bs_r = (10.5 - 1.5 * at, 8.0 - 1.0 * at)
    lo = tuple(np.minimum.reduce([cis_a, cis_b, bs_a, bs_b]) - 14.0)
    hi = tuple(np.maximum.reduce([cis_a, cis_b, bs_a, bs_b]) + 14.0)
    extra.append(Layer("brainstem", lo, hi, lambda x, y, z, w: [
        (S.occupancy(S.capsule(x, y, z, tuple(bs_a), tuple(bs_b), *bs_r), w), white + 2.0),
        (S.occupancy(S.capsule(x, y, z, tuple(cis_a), tuple(cis_b), cis_r, cis_r + 1.0), w), csf)]))
    return cranium, extra


def atrophic_ventricles(vent: list, atrophy: float) -> list:
    """Ventricle ellipsoids (centre, radii) enlarged with ``atrophy`` (0..1): bodies and horns grow, the third
    ventricle widens; centres stay."""
    out = []
    for n, (c, r) in enumerate(vent):
        if n < 2:      # lateral ventricles: taller and wider
            g = (1.0 + 0.9 * atrophy, 1.0 + 0.25 * atrophy, 1.0 + 0.6 * atrophy)
            c = (c[0] * (1.0 + 0.3 * atrophy), c[1], c[2])
        elif n == 2:   # third ventricle
            g = (1.0 + 2.0 * atrophy, 1.0 + 0.2 * atrophy, 1.0 + 0.2 * atrophy)
        else:
            g = (1.0 + 0.4 * atrophy,) * 3
        out.append((c, tuple(float(ri * gi) for ri, gi in zip(r, g))))
    return out
