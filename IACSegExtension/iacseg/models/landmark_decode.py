"""Joint decoding of the six landmark planes under the anatomy (never an impossible order).

The localiser gives each landmark a distribution over slices; taking each argmax on its own can put a carotid
canal above its petrolingual ligament, or the left clinoid 30 mm above the right one. This module decodes all
six at once, exactly, as the most probable configuration of a small graphical model:

* **states**: the slice index of each landmark, over the scanned slices *and* a margin of virtual slices
  above and below (``extend_mm``), so that a landmark just outside a partial scan can still be placed;
* **unary terms** (log): the network's likelihood ratio against a flat distribution — mixed with a floor
  ``epsilon`` so that an over-confident wrong peak can be overruled; slices the network did not see (virtual
  slices, slices outside its window) count as slightly less than "unsure" — plus the anatomical prior
  (`iacseg.preprocess.landmark_prior`: a Gaussian in mm per landmark, mixed with a uniform share
  ``PRIOR_OUTLIER`` so that a wrong anchor cannot overrule a confident network) when there is one;
* **order and gaps** (hard): on each side carotid canal < petrolingual < anterior clinoid with gaps inside
  `iacseg.core.anatomy.LANDMARK_GAPS_MM` (at least one slice);
* **left–right consistency**: at each level the left and right heights differ by the head's roll
  (`expected_left_minus_right_mm`) within a Gaussian of ``LANDMARK_LR_TOLERANCE_MM`` and at most twice that.

The state of a level is the pair (left slice, right slice); the chain canal → petrolingual → clinoid is solved by
max-product dynamic programming (the most probable joint configuration) and by sum-product (marginals): each
landmark's **confidence** is its posterior mass within ±1 slice of the decoded slice.

Slice convention (as the localiser): slice index k on the axial grid; plane height z = z0 + (k − 0.5)·sk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..core.anatomy import LANDMARK_GAPS_MM, LANDMARK_LR_TOLERANCE_MM, expected_left_minus_right_mm
from ..core.contracts import LANDMARK_KINDS, SIDES

EPSILON = 0.05
OUTSIDE_VIEW = 0.5    # likelihood ratio of a slice the network did not see
PRIOR_OUTLIER = 0.1   # share of the bone prior's mass spread uniformly (its anchors may be wrong)
PRIOR_SPAN_MM = 200.0
BOUND_SIGMA_MM = 1.0
BOUND_OUTLIER = 1e-4
EXTEND_MM = 40.0
NEG = -1e30  # "impossible" (finite, so sums and maxima stay well defined)


@dataclass
class DecodedLandmark:
    name: str
    slice: int                 # decoded slice index on the axial grid (may lie outside 0..D-1: not scanned)
    z_mm: float                # plane height z0 + (slice − 0.5)·sk
    confidence: float          # joint posterior mass within ±1 slice of `slice`
    expected_slice: float      # posterior mean slice
    in_scan: bool              # 0 ≤ slice ≤ D − 1


@dataclass
class DecodeResult:
    landmarks: dict[str, DecodedLandmark]
    relaxed: list[str] = field(default_factory=list)   # constraints dropped to find a solution (normally none)


def gap_slices(kind_lo: str, kind_hi: str, sk: float) -> tuple[int, int]:
    """(min, max) whole-slice gap between two consecutive landmarks on one side, at slice spacing ``sk`` mm."""
    lo_mm, hi_mm = LANDMARK_GAPS_MM[(kind_lo, kind_hi)]
    g_min = max(1, int(math.ceil(lo_mm / sk - 1e-6)))
    g_max = max(g_min, int(math.floor(hi_mm / sk + 1e-6)))
    return g_min, g_max


def _shift(a: np.ndarray, g: int, axis: int, fill: float) -> np.ndarray:
    """``out[x] = a[x − g]`` along ``axis`` (g may be negative), ``fill`` where it falls outside."""
    out = np.full_like(a, fill)
    n = a.shape[axis]
    if abs(g) >= n:
        return out
    src = [slice(None)] * a.ndim
    dst = [slice(None)] * a.ndim
    if g >= 0:
        src[axis], dst[axis] = slice(0, n - g), slice(g, n)
    else:
        src[axis], dst[axis] = slice(-g, n), slice(0, n + g)
    out[tuple(dst)] = a[tuple(src)]
    return out


def _window_max(a: np.ndarray, g_min: int, g_max: int, direction: int) -> np.ndarray:
    """``out[x, y] = max over gx, gy in [g_min, g_max] of a[x − d·gx, y − d·gy]`` (d = ``direction``)."""
    for axis in (0, 1):
        acc = np.full_like(a, NEG)
        for g in range(g_min, g_max + 1):
            np.maximum(acc, _shift(a, direction * g, axis, NEG), out=acc)
        a = acc
    return a


def _window_logsumexp(a: np.ndarray, g_min: int, g_max: int, direction: int) -> np.ndarray:
    """Log-sum-exp counterpart of `_window_max`."""
    for axis in (0, 1):
        m = float(a.max())
        e = np.exp(np.maximum(a - m, -700.0)) * (a > NEG / 2)
        acc = np.zeros_like(a)
        for g in range(g_min, g_max + 1):
            acc += _shift(e, direction * g, axis, 0.0)
        with np.errstate(divide="ignore"):
            a = np.where(acc > 0, np.log(np.maximum(acc, 1e-300)) + m, NEG)
    return a


def robust_gaussian_log_prior(z: np.ndarray, mean: float, sigma: float, outlier: float = PRIOR_OUTLIER,
                              span_mm: float = PRIOR_SPAN_MM) -> np.ndarray:
    """log((1 − η)·N(z; mean, σ) + η/span): a Gaussian prior that a far-off height can only cost so much (the
    prior's anchors can be wrong too), normalised so that only differences between heights matter."""
    sigma = max(float(sigma), 1e-3)
    g = np.exp(-0.5 * ((z - mean) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    return np.log((1.0 - outlier) * g + outlier / span_mm)


def bound_log_prior(z: np.ndarray, low: float | None, high: float | None, sigma: float = BOUND_SIGMA_MM,
                    outlier: float = BOUND_OUTLIER) -> np.ndarray:
    """A one-sided limit (the bone says the landmark is above ``low`` / below ``high``: the scan does not reach
    it): 0 inside, a half-Gaussian fall-off of ``sigma`` mm outside, floored at log ``outlier`` — nearly hard, as
    a network never trained on partial scans tends to put such a landmark at the scan's edge."""
    d = np.zeros_like(z)
    if low is not None:
        d = np.maximum(d, low - z)
    if high is not None:
        d = np.maximum(d, z - high)
    return np.log((1.0 - outlier) * np.exp(-0.5 * (d / sigma) ** 2) + outlier)


def decode_landmarks(log_lik: Mapping[str, np.ndarray], k_first: int, n_slices: int, z0: float, sk: float,
                     roll_deg: float = 0.0, prior: Mapping[str, tuple[float, float]] | None = None,
                     lr_tolerance_mm: float = LANDMARK_LR_TOLERANCE_MM,
                     bounds: Mapping[str, tuple[float | None, float | None]] | None = None) -> DecodeResult:
    """Decode the six landmarks.

    ``log_lik[name]``: log-likelihood ``[K]`` over candidate slices ``k_first … k_first + K − 1`` (axial grid
    indices; virtual slices beyond the scan included). ``n_slices``: slices actually scanned (0 … D − 1).
    ``z0``/``sk``: world z of slice 0 and slice spacing (mm). ``roll_deg``: the midsagittal plane's roll.
    ``prior[name] = (z_mm, sigma_mm)``: optional Gaussian prior on each height; ``bounds[name] = (low, high)``:
    optional one-sided limits (mm, None = open) for landmarks the bone places outside the scan.
    """
    names = {(s, kind): f"{s}_{kind}" for s in SIDES for kind in LANDMARK_KINDS}
    K = len(next(iter(log_lik.values())))
    ks = k_first + np.arange(K)
    z = z0 + (ks - 0.5) * sk
    unary_1d: dict[tuple[str, str], np.ndarray] = {}
    for key, name in names.items():
        u = np.asarray(log_lik[name], dtype=np.float64).copy()
        if u.shape != (K,):
            raise ValueError(f"log-likelihood of {name} has shape {u.shape}, expected ({K},)")
        if prior and name in prior and prior[name] is not None:
            u += robust_gaussian_log_prior(z, *prior[name])
        if bounds and name in bounds:
            u += bound_log_prior(z, *bounds[name])
        unary_1d[key] = u
    dz = z[:, None] - z[None, :]  # zL − zR

    def unary(kind: str, lr: bool) -> np.ndarray:
        u = unary_1d[("L", kind)][:, None] + unary_1d[("R", kind)][None, :]
        if lr:
            d = dz - expected_left_minus_right_mm(kind, roll_deg)
            u = u - 0.5 * (d / lr_tolerance_mm) ** 2
            u = np.where(np.abs(d) <= 2.0 * lr_tolerance_mm, u, NEG)
        return u

    gaps = [gap_slices(a, b, sk) for a, b in zip(LANDMARK_KINDS, LANDMARK_KINDS[1:])]
    relaxed: list[str] = []
    for attempt in ("full", "no_lr"):
        use_lr = attempt == "full"
        U = [unary(kind, use_lr) for kind in LANDMARK_KINDS]
        V = [U[0]]
        for level in (1, 2):
            V.append(U[level] + _window_max(V[-1], *gaps[level - 1], direction=1))
        if V[-1].max() > NEG / 2:
            break
        relaxed.append("left-right consistency")
    best = np.unravel_index(int(np.argmax(V[-1])), V[-1].shape)
    path = [best]
    for level in (2, 1):
        a, b = path[-1]
        g_min, g_max = gaps[level - 1]
        a0, a1 = max(0, a - g_max), max(0, a - g_min + 1)
        b0, b1 = max(0, b - g_max), max(0, b - g_min + 1)
        window = V[level - 1][a0:a1, b0:b1]
        ia, ib = np.unravel_index(int(np.argmax(window)), window.shape)
        path.append((a0 + ia, b0 + ib))
    path = path[::-1]  # canal, petrolingual, clinoid

    # marginals (sum-product) for confidences
    alpha = [U[0]]
    for level in (1, 2):
        alpha.append(U[level] + _window_logsumexp(alpha[-1], *gaps[level - 1], direction=1))
    beta = [np.zeros_like(U[0]) for _ in range(3)]
    for level in (1, 0):
        beta[level] = _window_logsumexp(U[level + 1] + beta[level + 1], *gaps[level], direction=-1)
    out: dict[str, DecodedLandmark] = {}
    for level, kind in enumerate(LANDMARK_KINDS):
        joint = alpha[level] + beta[level]
        joint = np.exp(joint - joint.max()) * (joint > NEG / 2)
        total = joint.sum()
        for side, axis in (("L", 1), ("R", 0)):
            marginal = joint.sum(axis=axis) / total if total > 0 else np.full(K, 1.0 / K)
            idx = int(path[level][0 if side == "L" else 1])
            k = int(ks[idx])
            conf = float(marginal[max(0, idx - 1):idx + 2].sum())
            name = names[(side, kind)]
            out[name] = DecodedLandmark(name, k, float(z0 + (k - 0.5) * sk), conf,
                                        float((marginal * ks).sum()), 0 <= k <= n_slices - 1)
    return DecodeResult(out, relaxed)


def network_log_likelihood(prob_view: np.ndarray, view_offset: int, k_first: int, K: int,
                           epsilon: float = EPSILON, outside: float = OUTSIDE_VIEW) -> np.ndarray:
    """Robust log-likelihood ratio ``[K]`` over candidate slices from a network distribution over its view.

    ``prob_view`` ``[D']`` sums to 1 over view slices ``view_offset … view_offset + D' − 1`` (axial grid indices).
    Inside the view: log((1 − ε)·p·D' + ε) — 0 where the network is as unsure as a flat distribution, about
    log ε where it rules the slice out. Outside the view (slices it did not see, virtual slices beyond the scan):
    log ``outside`` — the network says nothing there, a little less than "unsure".
    """
    p = np.asarray(prob_view, np.float64)
    out = np.full(K, math.log(outside), np.float64)
    start = view_offset - k_first
    a, b = max(0, start), min(K, start + len(p))
    if b > a:
        out[a:b] = np.log((1.0 - epsilon) * p[a - start:b - start] * len(p) + epsilon)
    return out


def candidate_range(n_slices: int, sk: float, extend_mm: float = EXTEND_MM) -> tuple[int, int]:
    """(first candidate slice, number of candidates): the scanned slices plus ``extend_mm`` above and below."""
    extra = int(math.ceil(extend_mm / sk))
    return -extra, n_slices + 2 * extra
