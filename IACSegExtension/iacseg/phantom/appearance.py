"""What a reconstruction does to the analytic image: kernel, correlated noise, beam hardening, metal streaks.

All operate in-plane on ``[k, j, i]`` stacks with square pixels of ``pixel_mm``:

* `kernel_filter` — soft (Gaussian smoothing), standard (mild smoothing + mild sharpening) or sharp
  (unsharp masking: edge overshoot and undershoot ringing). Linear, so the truth can get the same kernel.
* `correlated_noise` — Gaussian noise whose in-plane power spectrum is ``f·exp(-(f/fc)²)`` (filtered
  back-projection shape; the peak frequency sets blotchy vs fine) plus a low-frequency blotch term, scaled by
  a per-pixel amplitude that grows with the attenuation along the rays through the pixel (more noise at the
  skull base and in the centre of the head).
* `streak_artefacts` — beam hardening: filtered back-projection of squared dense-bone projections (dark
  bands between the petrous bones, streaks along lines joining dense bones) and of squared water projections
  (cupping); metal: squared metal projections plus per-view random errors through the metal (bright/dark
  streaks radiating from dental fillings). Computed on a coarse grid with a few dozen views, upsampled.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

HU_MIN, HU_MAX = -1024.0, 3071.0
LOW_RES = 96          # coarse grid of the streak computation (pixels)
METAL_RES = 192
N_VIEWS = 60


# --- reconstruction kernels -----------------------------------------------------------------------------
def kernel_filter_sparse(vol: np.ndarray, kernel: dict, pixel_mm: float) -> np.ndarray:
    """`kernel_filter` of a mostly-zero stack (the plaque excess), computed on the bounding box of its nonzero
    voxels grown by the kernel's reach — identical to filtering the whole stack."""
    nz = np.argwhere(vol != 0)
    if len(nz) == 0:
        return np.zeros_like(vol, dtype=np.float32)
    reach = int(np.ceil(3.0 * 2.2 * float(kernel["sigma_mm"]) / pixel_mm)) + 2
    lo = np.maximum(nz.min(axis=0) - [0, reach, reach], 0)
    hi = np.minimum(nz.max(axis=0) + [1, reach + 1, reach + 1], vol.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    out = np.zeros(vol.shape, np.float32)
    pad = [(0, 0), (reach, reach), (reach, reach)]
    sub = kernel_filter(np.pad(vol[box], pad), kernel, pixel_mm)
    out[box] = sub[:, reach:-reach, reach:-reach]
    return out


def kernel_filter(vol: np.ndarray, kernel: dict, pixel_mm: float) -> np.ndarray:
    """``vol`` filtered in-plane by ``kernel`` (``type`` soft/standard/sharp, ``sigma_mm``, ``sharp_amount``)."""
    s = float(kernel["sigma_mm"]) / float(pixel_mm)
    amount = float(kernel.get("sharp_amount", 0.0))
    vol = np.asarray(vol, np.float32)
    if s < 0.05 and amount == 0.0:
        return vol.copy()
    blur = ndimage.gaussian_filter(vol, (0.0, s, s), truncate=3.0) if s >= 0.05 else vol
    if kernel["type"] == "soft" or amount == 0.0:
        return blur
    if kernel["type"] == "sharp":
        # sharp kernels: unsharp mask on the unblurred image with a wider base → overshoot and a ring
        wide = ndimage.gaussian_filter(vol, (0.0, 2.2 * s, 2.2 * s), truncate=3.0)
        return vol + np.float32(amount) * (vol - wide) + np.float32(0.25 * amount) * (vol - blur)
    wide = ndimage.gaussian_filter(blur, (0.0, 2.0 * s, 2.0 * s), truncate=3.0)
    return blur + np.float32(amount) * (blur - wide)


# --- low-resolution projector --------------------------------------------------------------------------
class CoarseRadon:
    """Parallel-beam projector/back-projector on an ``n``×``n`` grid with ``n_views`` views over 180° (linear
    interpolation between detector bins, so no moiré)."""

    def __init__(self, n: int, n_views: int = N_VIEWS, offset: float = 0.0):
        self.n, self.n_views = n, n_views
        c = (np.arange(n) - 0.5 * (n - 1)).astype(np.float32)
        yy, xx = np.meshgrid(c, c, indexing="ij")
        th = (np.arange(n_views) + offset) * np.pi / n_views
        self.nb = int(np.ceil(n * np.sqrt(2.0))) + 4
        s = xx.ravel()[None, :] * np.cos(th)[:, None] + yy.ravel()[None, :] * np.sin(th)[:, None] + 0.5 * self.nb
        b0 = np.clip(np.floor(s).astype(np.int64), 0, self.nb - 2)
        self.w = (s - b0).astype(np.float32).ravel()
        self.index = (b0 + (np.arange(n_views) * self.nb)[:, None]).ravel()
        f = sfft.rfftfreq(self.nb * 2)
        self.ramp = (2.0 * np.abs(f) * 0.5 * (1 + np.cos(np.pi * f / f.max()))).astype(np.float32)

    def project(self, img: np.ndarray) -> np.ndarray:
        v = np.tile(np.asarray(img, np.float32).ravel(), self.n_views)
        m = self.n_views * self.nb
        out = np.bincount(self.index, weights=v * (1.0 - self.w), minlength=m)
        out += np.bincount(self.index + 1, weights=v * self.w, minlength=m)
        return out.reshape(self.n_views, self.nb)

    def backproject(self, sino: np.ndarray) -> np.ndarray:
        flat = np.asarray(sino, np.float32).ravel()
        v = flat[self.index] * (1.0 - self.w) + flat[self.index + 1] * self.w
        return (v.reshape(self.n_views, -1).sum(axis=0) * (np.pi / self.n_views)).reshape(self.n, self.n)

    def fbp(self, sino: np.ndarray) -> np.ndarray:
        padded = np.zeros((sino.shape[0], 2 * self.nb), np.float32)
        padded[:, :self.nb] = sino
        filt = sfft.irfft(sfft.rfft(padded, axis=1) * self.ramp[None, :], axis=1)[:, :self.nb]
        return self.backproject(filt)


def _downsample(img: np.ndarray, n: int) -> np.ndarray:
    return ndimage.zoom(img, (n / img.shape[0], n / img.shape[1]), order=1, prefilter=False)


def _upsample(img: np.ndarray, shape) -> np.ndarray:
    return ndimage.zoom(img, (shape[0] / img.shape[0], shape[1] / img.shape[1]), order=1, prefilter=False,
                        grid_mode=True, mode="nearest")


# --- beam hardening, cupping, metal, noise amplitude -----------------------------------------------------
def _slice_subset(nk: int, spacing_mm: float, step_mm: float = 2.5) -> np.ndarray:
    every = max(1, int(round(step_mm / max(spacing_mm, 1e-3))))
    ks = list(range(0, nk, every))
    if ks[-1] != nk - 1:
        ks.append(nk - 1)
    return np.asarray(ks)


def _interp_slices(fields: dict[int, np.ndarray], nk: int) -> np.ndarray:
    ks = np.array(sorted(fields))
    stack = np.stack([fields[k] for k in ks])
    out = np.empty((nk,) + stack.shape[1:], np.float32)
    for k in range(nk):
        b = int(np.clip(np.searchsorted(ks, k), 1, len(ks) - 1)) if len(ks) > 1 else 0
        if len(ks) == 1:
            out[k] = stack[0]
            continue
        a = b - 1
        t = np.clip((k - ks[a]) / max(ks[b] - ks[a], 1), 0.0, 1.0)
        out[k] = (1 - t) * stack[a] + t * stack[b]
    return out


def streak_artefacts(hu: np.ndarray, pixel_mm: float, spacing_mm: float, art: dict,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(additive artefact HU ``[k, j, i]``, relative noise amplitude ``[k, j, i]`` with median 1 in the head).

    ``art``: ``beam_hardening_hu`` (depth of the darkest bone streak in soft tissue), ``cupping_hu`` (centre
    minus edge of the brain), ``metal_streak_hu`` (typical streak amplitude near metal), ``attenuation`` (0..1.2:
    how much the noise grows with the attenuation along the rays).
    """
    nk, nj, ni = hu.shape
    n = LOW_RES
    px = pixel_mm * ni / n
    radon = CoarseRadon(n)
    ks = _slice_subset(nk, spacing_mm)
    bone_f, water_f, noise_f, soft_frac, dense = {}, {}, {}, {}, {}
    alpha = 0.006 * float(art.get("attenuation", 0.7))
    grow = max(1, int(round(4.0 / px)))
    for k in ks:
        low = _downsample(hu[k], n)
        bone = np.clip((low - 250.0) / 1000.0, 0.0, 2.5)
        water = np.clip((low + 1000.0) / 1000.0, 0.0, 1.2)
        pb, pw = radon.project(bone) * px, radon.project(water) * px
        bone_f[k] = -radon.fbp(pb ** 2)
        water_f[k] = -radon.fbp(pw ** 2)
        noise_f[k] = radon.backproject(np.exp(alpha * (pw + pb))) / np.pi
        # soft tissue ≥ ~4 mm from bone and air: where streaks are seen and calibrated
        near = ndimage.binary_dilation((low > 250.0) | (low < -300.0), iterations=grow)
        soft_frac[k] = ~near
        dense[k] = np.clip((low - 150.0) / 600.0, 0.0, 1.0).astype(np.float32)
    bone_v, water_v, noise_v, dense_v = (_interp_slices(f, nk) for f in (bone_f, water_f, noise_f, dense))
    out = np.zeros((nk, n, n), np.float32)
    # beam hardening: the darkest streak (1st percentile in soft tissue away from bone, worst slice) = requested HU
    lows = [float(np.percentile(bone_f[k][soft_frac[k]], 1.0)) for k in ks if soft_frac[k].sum() > 50]
    b_lo = min(lows) if lows else 0.0
    if b_lo < 0:
        out += bone_v * np.float32(float(art["beam_hardening_hu"]) / -b_lo)
    w_rng = [float(np.percentile(water_f[k][soft_frac[k]], 99) - np.percentile(water_f[k][soft_frac[k]], 1))
             for k in ks if soft_frac[k].sum() > 50]
    if w_rng and max(w_rng) > 0:
        wv = water_v - np.median(water_v)
        out += wv * np.float32(float(art["cupping_hu"]) / max(w_rng))
    out *= 1.0 - 0.85 * dense_v           # bone itself: its own hardening is not what is seen
    head = _upsample_stack(noise_v, (nj, ni))
    ref = float(np.median([np.median(noise_f[k][soft_frac[k]]) for k in ks if soft_frac[k].sum() > 50] or [1.0]))
    amp = np.sqrt(np.maximum(head / max(ref, 1e-6), 0.05)).astype(np.float32)
    add = _upsample_stack(out, (nj, ni))
    if art.get("metal_streak_hu", 0) and float(hu.max()) > 3500.0:
        add += _metal(hu, pixel_mm, float(art["metal_streak_hu"]), rng)
    return add, amp


def _upsample_stack(vol: np.ndarray, shape) -> np.ndarray:
    out = np.empty((len(vol),) + tuple(shape), np.float32)
    for k, v in enumerate(vol):
        out[k] = _upsample(v, shape)
    return out


def _metal(hu: np.ndarray, pixel_mm: float, amp_hu: float, rng: np.random.Generator) -> np.ndarray:
    """Metal streaks on the slices that contain metal (> 3500 HU before clipping)."""
    nk, nj, ni = hu.shape
    n = METAL_RES
    px = pixel_mm * ni / n
    radon = CoarseRadon(n, 2 * N_VIEWS, offset=float(rng.uniform(0, 1)))
    out = np.zeros(hu.shape, np.float32)
    for k in np.flatnonzero(hu.reshape(nk, -1).max(axis=1) > 3500.0):
        low = _downsample(np.clip(hu[k] - 3000.0, 0.0, None) / 3000.0, n)
        pm = radon.project(low) * px
        if pm.max() <= 0:
            continue
        starve = pm * rng.standard_normal(pm.shape).astype(np.float32) * 1.5
        art = radon.fbp(-(pm ** 2) + starve)
        scale = amp_hu / max(float(np.percentile(np.abs(art), 99.0)), 1e-6)
        out[k] = _upsample(art * np.float32(scale), (nj, ni))
    return out


# --- noise ---------------------------------------------------------------------------------------------
def correlated_noise(shape, sigma_hu: float, pixel_mm: float, peak_cyc_mm: float, lowfreq: float,
                     rng: np.random.Generator, chunk: int = 16) -> np.ndarray:
    """Noise ``[k, j, i]`` (std ``sigma_hu``) with an in-plane FBP-shaped power spectrum peaking at
    ``peak_cyc_mm`` plus a ``lowfreq`` share of blotchy low-frequency power; slices independent."""
    nk, nj, ni = shape
    fy = sfft.fftfreq(nj, d=pixel_mm)[:, None]
    fx = sfft.rfftfreq(ni, d=pixel_mm)[None, :]
    f = np.sqrt(fx ** 2 + fy ** 2)
    fc = max(float(peak_cyc_mm) * np.sqrt(2.0), 1e-3)
    nps = f * np.exp(-(f / fc) ** 2)
    nps = nps / nps.max() + float(lowfreq) * np.exp(-(f / 0.04) ** 2)
    amp = np.sqrt(nps).astype(np.float32)
    # variance of filtered unit white noise: mean of |H|² over the full spectrum
    full = np.concatenate([amp, amp[:, 1:(ni + 1) // 2][:, ::-1]], axis=1) if ni > 1 else amp
    norm = float(sigma_hu) / max(float(np.sqrt(np.mean(full.astype(np.float64) ** 2))), 1e-9)
    out = np.empty(shape, np.float32)
    for k0 in range(0, nk, chunk):
        white = rng.standard_normal((min(chunk, nk - k0), nj, ni), dtype=np.float32)
        spec = sfft.rfft2(white, axes=(1, 2), workers=1)
        spec *= amp[None]
        out[k0:k0 + chunk] = sfft.irfft2(spec, s=(nj, ni), axes=(1, 2), workers=1) * np.float32(norm)
    return out


def finish(hu: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """Air outside the reconstruction circle and the scanner's HU range (−1024…3071)."""
    hu[outside] = -1000.0
    np.clip(hu, HU_MIN, HU_MAX, out=hu)
    return hu
