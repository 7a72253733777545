"""An anatomical prior for the six landmark heights, from the bone alone (no network).

Why: the landmark network can be confidently wrong on scans unlike its training data. The skull base itself says
roughly where the landmarks must be; this prior is used three ways — as a Gaussian prior when the landmarks are
decoded (`iacseg.models.landmark_decode`), as a cross-check that flags a disagreement in the quality control, and
as the fallback when the network is unsure.

How (on the ≈2.5 mm coarse head analysis, `head.analyse_head`, so head rests and tables do not count), in the
frame of the midsagittal plane — ``u`` lateral distance (left +), ``v`` antero-posterior (posterior +) from the
plane point (the centroid of the skull):

1. **Central profile**: bone (> 300 HU) with |u| < 12 mm and −35 ≤ v ≤ 5 mm (sphenoid body, sella, dorsum
   sellae, clinoid processes). From its smoothed maximum in the lower half of the skull, going up, the last
   slice still holding bone (gaps up to 5 mm bridged) is the **top of the clinoid processes / dorsum sellae**.
2. **Petrous profile** per side: voxels denser than 700 HU with 12 ≤ |u| ≤ 42 mm and −15 ≤ v ≤ 35 mm, per slice
   (the petrous pyramids are the densest bone of the head). Its smoothed peak, 5–45 mm below the clinoid top
   (in the lower half of the skull when there is no clinoid top), is the petrous level; going down from the
   peak, where the profile falls below 35 % of the peak — or the trough above the denser structures below it
   (mastoid tip, condyles, atlas), whichever comes first — is the **inferior surface of the petrous bone**,
   where the carotid canal opens.
3. The anchors are fused with anatomical relations by least squares (each observation a Gaussian):

   * anterior clinoid ≈ top of the central bone − 4 mm (σ 4 mm; the dorsum sellae usually rises above it);
   * carotid canal ≈ inferior petrous surface (σ 5 mm), and ≈ petrous peak − 12 mm (σ 6 mm);
   * petrolingual ≈ anterior clinoid − 12 mm (σ 4 mm) and ≈ carotid canal + 14 mm (σ 5 mm).

   An anchor cut by the edge of the scan (the scan starts inside the petrous bone, or ends inside the sella
   region) is left out, and the fused heights then rest on the others. The result is one height and one
   standard deviation per landmark (the marginal of the fused Gaussian), shifted left/right by the head's roll.

No anchor found (no skull, no skull base in the scan) → no prior (None).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from ..anatomy import LANDMARK_LATERAL_MM, MidsagittalPlane
from ..contracts import LANDMARK_KINDS, SIDES
from ..io.volume import CTVolume
from .head import CoarseHead, analyse_head

PETROUS_HU = 700.0
CENTRAL_HU = 300.0
PETROUS_U_MM = (12.0, 42.0)
PETROUS_V_MM = (-15.0, 35.0)
CENTRAL_U_MM = 12.0
CENTRAL_V_MM = (-35.0, 5.0)
CENTRAL_MIN_VOXELS = 2
CENTRAL_GAP_MM = 5.0
CENTRAL_SEARCH_MM = 45.0
PETROUS_EDGE_FRACTION = 0.35
SMOOTH_MM = 7.5
#: The petrous peak is searched this far (min, max mm) below the top of the clinoid processes.
PETROUS_BELOW_TOP_MM = (5.0, 45.0)

#: (anchor or relation, offset mm, sigma mm) — see the module docstring.
CLINOID_BELOW_TOP = (-4.0, 4.0)
CANAL_AT_PETROUS_SURFACE = (0.0, 5.0)
CANAL_BELOW_PETROUS_PEAK = (-12.0, 6.0)
PETROLINGUAL_BELOW_CLINOID = (-12.0, 4.0)
PETROLINGUAL_ABOVE_CANAL = (14.0, 5.0)


@dataclass
class LandmarkPrior:
    """Expected height (LPS z mm) and standard deviation (mm) of each landmark, with the anchors behind them."""

    z_mm: dict[str, float]
    sigma_mm: dict[str, float]
    anchors: dict[str, float | None]
    notes: list[str] = field(default_factory=list)

    def as_gaussians(self) -> dict[str, tuple[float, float]]:
        return {n: (self.z_mm[n], self.sigma_mm[n]) for n in self.z_mm}

    def to_dict(self) -> dict[str, Any]:
        return {"z_mm": dict(self.z_mm), "sigma_mm": dict(self.sigma_mm), "anchors": dict(self.anchors),
                "notes": list(self.notes), "method": "bone anchors (petrous surface, clinoid top) + anatomical gaps"}


def plane_frame(grid_xy: np.ndarray, plane: MidsagittalPlane) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) in mm of in-plane points ``(..., 2)`` (x, y): lateral (left +) and antero-posterior (posterior +)."""
    n = np.asarray(plane.normal[:2], dtype=np.float64)
    n = n / (np.linalg.norm(n) + 1e-12)
    t = np.array([-n[1], n[0]])
    if t[1] < 0:
        t = -t
    d = grid_xy - np.asarray(plane.point[:2])
    return d @ n, d @ t


def _slice_heights(a: CoarseHead) -> np.ndarray:
    g = a.grid
    return np.array([g.index_to_world(np.array([0.0, 0.0, float(k)]))[2] for k in range(g.shape[0])])


def _profiles(a: CoarseHead, plane: MidsagittalPlane) -> dict[str, np.ndarray]:
    g = a.grid
    nk, nj, ni = g.shape
    jj, ii = np.meshgrid(np.arange(nj), np.arange(ni), indexing="ij")
    xyz = g.index_to_world(np.stack([ii.ravel(), jj.ravel(), np.zeros(ii.size)], axis=1))
    u, v = plane_frame(xyz[:, :2], plane)
    u, v = u.reshape(nj, ni), v.reshape(nj, ni)
    au = np.abs(u)
    pet = (au >= PETROUS_U_MM[0]) & (au <= PETROUS_U_MM[1]) & (v >= PETROUS_V_MM[0]) & (v <= PETROUS_V_MM[1])
    cen = (au < CENTRAL_U_MM) & (v >= CENTRAL_V_MM[0]) & (v <= CENTRAL_V_MM[1])
    dense = (a.max_hu > PETROUS_HU) & a.head
    bone = (a.max_hu > CENTRAL_HU) & a.head
    return {"L": (dense & (pet & (u > 0))[None]).sum(axis=(1, 2)).astype(float),
            "R": (dense & (pet & (u < 0))[None]).sum(axis=(1, 2)).astype(float),
            "central": (bone & cen[None]).sum(axis=(1, 2)).astype(float),
            "bone_any": (bone.any(axis=(1, 2))).astype(float)}


def _smooth(x: np.ndarray, sk: float) -> np.ndarray:
    size = max(1, int(round(SMOOTH_MM / sk)))
    return ndimage.uniform_filter1d(x, size, mode="nearest") if size > 1 else x


def _petrous_surface(profile: np.ndarray, k_peak: int, z: np.ndarray, sk: float) -> float | None:
    """World z of the inferior petrous surface below ``k_peak`` (None when the scan starts inside the bone).

    Going down from the peak: the first slice where the profile falls below 35 % of the peak (interpolated), or
    the trough that separates the petrous bone from the denser structures below it (mastoid tip, occipital
    condyles, atlas), whichever comes first."""
    peak = profile[k_peak]
    if peak <= 0:
        return None
    k = k_peak
    while k > 0:
        if profile[k - 1] < PETROUS_EDGE_FRACTION * peak:
            lo, hi = profile[k - 1], profile[k]
            f = (PETROUS_EDGE_FRACTION * peak - lo) / max(hi - lo, 1e-9)
            return float(z[k - 1] + np.clip(f, 0.0, 1.0) * sk)
        if profile[k - 1] > profile[k] and profile[k] < 0.9 * peak:
            return float(z[k])  # a trough: something else starts below
        k -= 1
    return None  # still inside the bone at the first slice: the surface is below the scan


def _central_top(central: np.ndarray, k_start: int, z: np.ndarray, sk: float) -> tuple[float | None, bool]:
    """(world z of the top of the central bone above ``k_start``, whether the scan ends before it does)."""
    n = len(central)
    k_end = min(n - 1, k_start + int(round(CENTRAL_SEARCH_MM / sk)))
    max_gap = max(1, int(round(CENTRAL_GAP_MM / sk)))
    top, gap = None, 0
    for k in range(k_start, k_end + 1):
        if central[k] >= CENTRAL_MIN_VOXELS:
            top, gap = k, 0
        elif top is not None:
            gap += 1
            if gap > max_gap:
                break
    if top is None:
        return None, False
    cut = top >= n - 1  # bone in the last slice: the scan may end inside the clinoid region
    return float(z[top] + 0.5 * sk), cut


def _fuse(observations: list[tuple[np.ndarray, float, float]]) -> tuple[np.ndarray, np.ndarray] | None:
    """Least-squares heights (canal, petrolingual, clinoid) from rows ``(a, b, sigma)``: a·x ≈ b ± sigma."""
    if not observations:
        return None
    A = np.stack([o[0] / o[2] for o in observations])
    b = np.array([o[1] / o[2] for o in observations])
    H = A.T @ A
    if np.linalg.matrix_rank(H) < 3:
        return None
    cov = np.linalg.inv(H)
    return cov @ A.T @ b, np.sqrt(np.diag(cov))


def landmark_prior(vol: CTVolume, plane: MidsagittalPlane, device: Any = None,
                   analysis: CoarseHead | None = None) -> LandmarkPrior | None:
    """The bone-based prior of the six landmark heights of an axial LPS CT (see the module docstring)."""
    a = analysis if analysis is not None else analyse_head(vol, device)
    z = _slice_heights(a)
    sk = float(a.grid.spacing[2])
    prof = _profiles(a, plane)
    with_bone = np.flatnonzero(prof["bone_any"] > 0)
    if with_bone.size == 0:
        return None
    lower_top = int(with_bone.min() + (with_bone.max() - with_bone.min()) // 2)
    central = _smooth(prof["central"], sk)
    both = _smooth(prof["L"] + prof["R"], sk)
    notes: list[str] = []
    top, cut = None, False
    if central[: lower_top + 1].max() > 0:
        top, cut = _central_top(prof["central"], int(np.argmax(central[: lower_top + 1])), z, sk)
    # the petrous peak: the densest petrous band below the clinoid top (5–45 mm), else in the lower half
    window = np.arange(lower_top + 1)
    if top is not None:
        window = np.flatnonzero((z >= top - PETROUS_BELOW_TOP_MM[1]) & (z <= top - PETROUS_BELOW_TOP_MM[0]))
    if window.size == 0 or both[window].max() <= 0:
        if top is None:
            return None
        k_peak = None
    else:
        k_peak = int(window[np.argmax(both[window])])
    anchors: dict[str, float | None] = {"petrous_peak_z_mm": None if k_peak is None else float(z[k_peak])}
    for side in SIDES:
        surface = None if k_peak is None else _petrous_surface(_smooth(prof[side], sk), k_peak, z, sk)
        anchors[f"{side}_petrous_surface_z_mm"] = surface
        if surface is None:
            notes.append(f"the {'left' if side == 'L' else 'right'} petrous surface is not in the scan")
    anchors["clinoid_top_z_mm"] = None if cut else top
    if top is None:
        notes.append("no clinoid/sella bone found above the skull base")
    elif cut:
        notes.append("the scan ends inside the sella/clinoid region")

    e = np.eye(3)  # unknowns: canal, petrolingual, clinoid (midline heights)
    obs: list[tuple[np.ndarray, float, float]] = []
    if anchors["clinoid_top_z_mm"] is not None:
        obs.append((e[2], anchors["clinoid_top_z_mm"] + CLINOID_BELOW_TOP[0], CLINOID_BELOW_TOP[1]))
    surfaces = [anchors[f"{s}_petrous_surface_z_mm"] for s in SIDES if anchors[f"{s}_petrous_surface_z_mm"] is not None]
    if surfaces:
        obs.append((e[0], float(np.mean(surfaces)) + CANAL_AT_PETROUS_SURFACE[0],
                    CANAL_AT_PETROUS_SURFACE[1] / np.sqrt(len(surfaces))))
    if anchors["petrous_peak_z_mm"] is not None:
        obs.append((e[0], anchors["petrous_peak_z_mm"] + CANAL_BELOW_PETROUS_PEAK[0], CANAL_BELOW_PETROUS_PEAK[1]))
    obs.append((e[1] - e[2], PETROLINGUAL_BELOW_CLINOID[0], PETROLINGUAL_BELOW_CLINOID[1]))
    obs.append((e[1] - e[0], PETROLINGUAL_ABOVE_CANAL[0], PETROLINGUAL_ABOVE_CANAL[1]))
    fused = _fuse(obs)
    if fused is None:
        return None
    mean, sd = fused
    _, roll = plane.yaw_roll_deg()
    z_out: dict[str, float] = {}
    sd_out: dict[str, float] = {}
    for i, kind in enumerate(LANDMARK_KINDS):
        half = LANDMARK_LATERAL_MM[kind] * np.sin(np.radians(roll))
        for side, sign in (("L", 1.0), ("R", -1.0)):
            z_out[f"{side}_{kind}"] = float(mean[i] + sign * half)
            sd_out[f"{side}_{kind}"] = float(sd[i])
    return LandmarkPrior(z_out, sd_out, anchors, notes)
