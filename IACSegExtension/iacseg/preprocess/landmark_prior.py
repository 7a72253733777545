"""An anatomical prior for the six landmark heights, from the bone alone (no network).

Why: the landmark network can be confidently wrong on scans unlike its training data. The skull base itself says
roughly where the landmarks must be; this prior is used three ways — as a Gaussian prior when the landmarks are
decoded (`iacseg.models.landmark_decode`), as a cross-check that flags a disagreement in the quality control, and
as the fallback when the network is unsure.

How (on the ≈2.5 mm coarse head analysis, `head.analyse_head`, so head rests and tables do not count), in the
frame of the midsagittal plane — ``u`` lateral distance (left +), ``v`` antero-posterior (posterior +) from the
plane point (the centroid of the skull):

1. **Central region**: |u| < 12 mm and −35 ≤ v ≤ 5 mm (sphenoid body, sella, dorsum sellae, clinoid processes,
   and above them the brain). The brain is the longest run of slices (≥ 20 mm) whose central region lies inside
   the head and holds no bone (> 300 HU; stretches of ≤ 5 mm with a little bone, e.g. a falx calcification, bridged) and that has the
   petrous bones (below) 5–45 mm under its bottom — the neck is free of central bone too, but has no petrous bone
   under it. Its bottom is the **top of the clinoid processes / dorsum sellae**. A bone-free run from the first
   slice, inside a bone ring and with no petrous bone under it, means the skull base lies below the scan; no
   brain and bone in the last slices — or no cranial cavity at all — means the scan ends inside the sella region
   or below it. These become one-sided limits (``bounds``) on the landmarks instead of heights (the clinoids
   above the scan's top; every landmark below its first slice), and the bone cut by the scan's edge gives no
   other anchor. Where the scan cannot hold a landmark at all, ``outside_scan`` says so (the quality control
   then reports its segments not assessable); "no brain" only bounds the clinoids from below, by the scan's top
   over the sella region less one brain run and the clinoid's depth under the central bone's top (4 ± 2 × 4 mm).
2. **Petrous profile** per side: voxels denser than 700 HU with 12 ≤ |u| ≤ 42 mm and −15 ≤ v ≤ 35 mm, at least
   15 mm inside the head (so not the vault near the vertex), per slice (the petrous pyramids are the densest bone
   of the head). Its smoothed peak, 5–45 mm below the clinoid top
   (or the scan's top; in the lower half of the skull when neither is known), is the petrous level; going down from the
   peak, where the profile falls below 35 % of the peak — or the trough above the denser structures below it
   (mastoid tip, condyles, atlas), whichever comes first — is the **inferior surface of the petrous bone**,
   where the carotid canal opens.
3. The anchors are fused with anatomical relations by least squares (each observation a Gaussian):

   * anterior clinoid ≈ top of the central bone − 4 mm (σ 4 mm; the dorsum sellae usually rises above it);
   * carotid canal ≈ inferior petrous surface (σ 5 mm), and ≈ petrous peak − 12 mm (σ 6 mm);
   * petrolingual ≈ anterior clinoid − 12 mm (σ 4 mm) and ≈ carotid canal + 14 mm (σ 5 mm).

   An anchor cut by the edge of the scan (the scan starts inside the petrous bone, or ends inside the sella
   region) is left out — the fused heights then rest on the others — and becomes a one-sided limit: the
   carotid canal below the scan's first slice, the anterior clinoid above its last. The result is one height and one
   standard deviation per landmark (the marginal of the fused Gaussian), shifted left/right by the head's roll.

No anchor and no limit found (no skull, no skull base) → no prior (None).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from ..core.anatomy import LANDMARK_LATERAL_MM
from ..core.plane import MidsagittalPlane
from ..core.contracts import LANDMARK_KINDS, SIDES
from ..io.volume import CTVolume
from .head import CoarseHead, analyse_head, fill_holes_per_slice

PETROUS_HU = 700.0
PETROUS_DEPTH_MM = 15.0
CENTRAL_HU = 300.0
PETROUS_U_MM = (12.0, 42.0)
PETROUS_V_MM = (-15.0, 35.0)
CENTRAL_U_MM = 12.0
CENTRAL_V_MM = (-35.0, 5.0)
CENTRAL_MIN_VOXELS = 2
CENTRAL_HEAD_FRACTION = 0.8  # … and lies inside the head
FREE_VOXELS = 3             # a slice's central region is bone-free (brain) below this many bone voxels
CRANIAL_CAVITY_CM2 = 80.0   # a bone ring enclosing this much is a cranial cavity (the mandible's encloses less)
PETROUS_PRESENT = 0.3       # share of the densest petrous slice that counts as petrous bone below the brain
BRAIN_RUN_MM = 20.0         # the brain above the skull base: a bone-free run at least this tall
BRIDGE_MM = 5.0             # bone-holding stretches this short inside a run do not end it
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
    #: one-sided limits (lowest, highest height in mm; None = open) of landmarks the scan does not reach
    bounds: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    #: landmarks the bone puts outside the scan: "above" its top (it ends in the sella region) or "below" its
    #: bottom (it starts inside the petrous bone, or above the skull base); a bound alone may lie inside the scan
    outside_scan: dict[str, str] = field(default_factory=dict)

    def as_gaussians(self) -> dict[str, tuple[float, float]]:
        return {n: (self.z_mm[n], self.sigma_mm[n]) for n in self.z_mm}

    def to_dict(self) -> dict[str, Any]:
        return {"z_mm": dict(self.z_mm), "sigma_mm": dict(self.sigma_mm), "anchors": dict(self.anchors),
                "bounds": {n: list(b) for n, b in self.bounds.items()}, "outside_scan": dict(self.outside_scan),
                "notes": list(self.notes),
                "method": "bone anchors (clinoid top under the brain, petrous surface) + anatomical gaps"}


def plane_frame(grid_xy: np.ndarray, plane: MidsagittalPlane) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) in mm of in-plane points ``(..., 2)`` (x, y): lateral (left +) and antero-posterior (posterior +)."""
    n, t = plane.in_plane_axes()
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
    bone = (a.max_hu > CENTRAL_HU) & a.head
    enclosed = fill_holes_per_slice(bone) & ~bone
    depth = np.stack([ndimage.distance_transform_edt(h, sampling=(g.spacing[1], g.spacing[0])) for h in a.head])
    dense = (a.max_hu > PETROUS_HU) & (depth >= PETROUS_DEPTH_MM)  # not the vault, which lies under the skin
    return {"enclosed_cm2": enclosed.sum(axis=(1, 2)) * (g.spacing[0] * g.spacing[1] / 100.0),
            "L": (dense & (pet & (u > 0))[None]).sum(axis=(1, 2)).astype(float),
            "R": (dense & (pet & (u < 0))[None]).sum(axis=(1, 2)).astype(float),
            "central": (bone & cen[None]).sum(axis=(1, 2)).astype(float),
            "central_head": (a.head & cen[None]).sum(axis=(1, 2)) / max(1, int(cen.sum())),
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


def _free_runs(free: np.ndarray, sk: float) -> list[tuple[int, int]]:
    """(first, last) slice of each run of ``free`` slices at least ``BRAIN_RUN_MM`` tall; stretches of up to
    ``BRIDGE_MM`` that are not free (a falx or pineal calcification) do not end a run."""
    n = len(free)
    bridge = max(1, int(round(BRIDGE_MM / sk)))
    runs, k = [], 0
    while k < n:
        if not free[k]:
            k += 1
            continue
        start = last = k
        while k + 1 < n:
            nxt = np.flatnonzero(free[k + 1:min(n, k + 2 + bridge)])
            if nxt.size == 0:
                break
            k = k + 1 + int(nxt[0])
            last = k
        runs.append((start, last))
        k = last + 1
    return [(a, b) for a, b in runs if (b - a + 1) * sk >= BRAIN_RUN_MM]


def _clinoid_top(central: np.ndarray, central_head: np.ndarray, petrous: np.ndarray, enclosed_cm2: np.ndarray,
                 z: np.ndarray, sk: float) -> tuple[float | None, str]:
    """Top of the central skull-base bone: the bottom of the brain above the skull base.

    ``central``: per slice, central bone voxels; ``central_head``: per slice, the share of the central region
    inside the head (air above the vertex is not brain); ``petrous``: per slice, dense petrous voxels (both sides);
    ``enclosed_cm2``: per slice, the area inside closed rings of bone. The brain is a run of slices (≥ 20 mm) whose
    central region holds no bone, with the petrous bones (≥ 30 % of their densest slice) 5–45 mm below its bottom
    — which tells it from the neck, also free of central bone. Returns ``(z mm, state)``: "found" (the longest such
    run), "below_scan" (a run from the first slice, enclosed by a bone ring, no petrous bone below it: the skull
    base lies below the scan), "above_scan" (no brain, bone in the last slices: the scan ends inside the sella
    region; z = the scan's top) or "none"."""
    runs = _free_runs((central < FREE_VOXELS) & (central_head >= CENTRAL_HEAD_FRACTION), sk)
    peak = float(petrous.max()) if petrous.size else 0.0
    valid = []
    for a, b in runs:
        below = petrous[(z >= z[a] - PETROUS_BELOW_TOP_MM[1]) & (z <= z[a] - PETROUS_BELOW_TOP_MM[0])]
        if a > 0 and peak > 0 and below.size and below.max() >= PETROUS_PRESENT * peak:
            valid.append((a, b))
    if valid:
        a, b = max(valid, key=lambda r: r[1] - r[0])
        return float(z[a] - 0.5 * sk), "found"
    for a, b in runs:
        if a == 0 and np.mean(enclosed_cm2[a:b + 1] >= CRANIAL_CAVITY_CM2) >= 0.5 and \
                petrous[b + 1:].max(initial=0.0) < PETROUS_PRESENT * max(peak, 1.0):
            return float(z[0] - 0.5 * sk), "below_scan"
    inside = np.flatnonzero(central_head >= 0.5)  # the scan's top where it crosses the central region
    if inside.size:
        last = int(inside[-1])
        bridge = max(1, int(round(BRIDGE_MM / sk)))
        if (central[max(0, last - bridge):last + 1] >= FREE_VOXELS).any():
            return float(z[last] + 0.5 * sk), "above_scan"
    return None, "none"


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


def _partial_scan_prior(state: str, top: float | None, z_bottom: float, z_top: float) -> LandmarkPrior | None:
    """Limits only, for a scan that stops short of the brain (clinoids above its top) or starts above the skull
    base (every landmark below its first slice, the clinoids 4 mm under the clinoid top); None otherwise.
    ``z_top``: the scan's top over the sella region."""
    if state in ("above_scan", "below_brain"):
        # above_scan: bone up to where the scan's top crosses the central region; below_brain: no brain at all, so
        # the central bone's top is at most a brain run below the scan's top, the clinoid some 4 (± 2 × 4) mm lower
        low = top if state == "above_scan" and top is not None else \
            z_top - BRAIN_RUN_MM + CLINOID_BELOW_TOP[0] - 2.0 * CLINOID_BELOW_TOP[1]
        note = ("the scan ends inside the sella/clinoid region: the clinoid processes are above it"
                if state == "above_scan" else "the scan does not reach the brain above the skull base")
        outside = {f"{side}_anterior_clinoid": "above" for side in SIDES} if state == "above_scan" else {}
        return LandmarkPrior({}, {}, {"clinoid_top_z_mm": None}, [note],
                             {f"{side}_anterior_clinoid": (low, None) for side in SIDES}, outside)
    if state == "below_scan":
        high = z_bottom + CLINOID_BELOW_TOP[0]
        names = [f"{side}_{kind}" for side in SIDES for kind in LANDMARK_KINDS]
        return LandmarkPrior({}, {}, {"clinoid_top_z_mm": None}, ["the scan starts above the skull base"],
                             {n: (None, high) for n in names}, {n: "below" for n in names})
    return None


def _petrous_anchors(prof: dict[str, np.ndarray], z: np.ndarray, sk: float, top: float | None, lower_top: int,
                     z_bottom: float, notes: list[str],
                     bounds: dict[str, tuple[float | None, float | None]]) -> dict[str, float | None]:
    """The petrous peak (densest band 5–45 mm below the clinoid top, else in the lower half of the skull) and each
    side's inferior petrous surface; a surface below the scan becomes a limit on that side's carotid canal."""
    both = _smooth(prof["L"] + prof["R"], sk)
    window = np.arange(lower_top + 1)
    if top is not None:
        window = np.flatnonzero((z >= top - PETROUS_BELOW_TOP_MM[1]) & (z <= top - PETROUS_BELOW_TOP_MM[0]))
    k_peak = int(window[np.argmax(both[window])]) if window.size and both[window].max() > 0 else None
    anchors: dict[str, float | None] = {"petrous_peak_z_mm": None if k_peak is None else float(z[k_peak])}
    for side in SIDES:
        surface = None if k_peak is None else _petrous_surface(_smooth(prof[side], sk), k_peak, z, sk)
        anchors[f"{side}_petrous_surface_z_mm"] = surface
        if surface is None and k_peak is not None:
            notes.append(f"the scan starts inside the {'left' if side == 'L' else 'right'} petrous bone")
            bounds[f"{side}_carotid_canal"] = (None, z_bottom)
    return anchors


def _fused_heights(anchors: dict[str, float | None]) -> tuple[np.ndarray, np.ndarray] | None:
    """Midline (canal, petrolingual, clinoid) heights and SDs from the anchors and the anatomical relations."""
    e = np.eye(3)
    obs: list[tuple[np.ndarray, float, float]] = []
    if anchors.get("clinoid_top_z_mm") is not None:
        obs.append((e[2], anchors["clinoid_top_z_mm"] + CLINOID_BELOW_TOP[0], CLINOID_BELOW_TOP[1]))
    surfaces = [anchors[f"{s}_petrous_surface_z_mm"] for s in SIDES if anchors[f"{s}_petrous_surface_z_mm"] is not None]
    if surfaces:
        obs.append((e[0], float(np.mean(surfaces)) + CANAL_AT_PETROUS_SURFACE[0],
                    CANAL_AT_PETROUS_SURFACE[1] / np.sqrt(len(surfaces))))
    if anchors.get("petrous_peak_z_mm") is not None:
        obs.append((e[0], anchors["petrous_peak_z_mm"] + CANAL_BELOW_PETROUS_PEAK[0], CANAL_BELOW_PETROUS_PEAK[1]))
    obs.append((e[1] - e[2], PETROLINGUAL_BELOW_CLINOID[0], PETROLINGUAL_BELOW_CLINOID[1]))
    obs.append((e[1] - e[0], PETROLINGUAL_ABOVE_CANAL[0], PETROLINGUAL_ABOVE_CANAL[1]))
    return _fuse(obs)


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
    # the scanned part: slices holding head tissue (a reformatted or tilt-corrected grid has empty slices beyond)
    held = np.flatnonzero(a.head.any(axis=(1, 2)))
    k0, k1 = int(held.min()), int(held.max()) + 1
    part = {k: v[k0:k1] for k, v in prof.items()}
    top, state = _clinoid_top(part["central"], part["central_head"], _smooth(part["L"] + part["R"], sk),
                              part["enclosed_cm2"], z[k0:k1], sk)
    z_bottom, z_top = float(z[k0] - 0.5 * sk), float(z[k1 - 1] + 0.5 * sk)
    if state == "none" and not _free_runs(part["enclosed_cm2"] >= CRANIAL_CAVITY_CM2, sk):
        state = "below_brain"  # no cranial cavity at all: the scan ends at or below the skull base
    inside = np.flatnonzero(part["central_head"] >= 0.5)  # the scan's top at the sella (lower in front when tilted)
    central_top = float(z[k0 + int(inside[-1])] + 0.5 * sk) if inside.size else z_top
    partial = _partial_scan_prior(state, top, z_bottom, central_top)
    if partial is not None:
        return partial
    notes: list[str] = [] if state == "found" else ["no sella/clinoid bone under the brain was found"]
    bounds: dict[str, tuple[float | None, float | None]] = {}
    anchors = _petrous_anchors(prof, z, sk, top, lower_top, z_bottom, notes, bounds)
    outside = {n: "below" for n in bounds}  # only canals below the scan's first slice are bounded here
    anchors["clinoid_top_z_mm"] = top if state == "found" else None
    fused = None
    if anchors["clinoid_top_z_mm"] is not None or anchors["petrous_peak_z_mm"] is not None:
        fused = _fused_heights(anchors)
    if fused is None:
        return LandmarkPrior({}, {}, anchors, notes, bounds, outside) if bounds else None
    mean, sd = fused
    _, roll = plane.yaw_roll_deg()
    z_out: dict[str, float] = {}
    sd_out: dict[str, float] = {}
    for i, kind in enumerate(LANDMARK_KINDS):
        half = LANDMARK_LATERAL_MM[kind] * np.sin(np.radians(roll))
        for side, sign in (("L", 1.0), ("R", -1.0)):
            z_out[f"{side}_{kind}"] = float(mean[i] + sign * half)
            sd_out[f"{side}_{kind}"] = float(sd[i])
    return LandmarkPrior(z_out, sd_out, anchors, notes, bounds, outside)
