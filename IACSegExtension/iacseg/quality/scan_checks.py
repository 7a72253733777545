"""Checks of the scan itself: is it a head CT we can process, and what about it needs a reader's eye.

`refuse_unprocessable` raises `InputError` (one clear line) only for what cannot be processed at all: a few slices
rather than a volume (under 30 mm along the head-foot axis), no head in the volume (all air, random noise without
any structure, too little tissue or bone), a body CT (the body is much wider than any head and no skull encloses
a brain) or a head upside down (a wrong orientation header, see `upright`). MR images are refused earlier by the
reader (modality, or no air below −500 HU).

The other checks return QC reasons (`Reason`) for the report:

* ``thick_slices`` — slices thicker than 5 mm blur small calcifications and landmarks;
* ``contrast_enhanced`` — more than 5 mL of 180–600 HU voxels inside the skull (8 mm or more inside its inner
  surface: not dura or the inner table), more than 4 mm from denser bone
  (in the slice or its neighbours: thick slices smear thin bone), from 10 to 60 mm above the clinoids (enhanced arteries, veins and sinuses; calcifications of the pineal, choroid plexus and
  falx add up to far less): calcium cannot be told from contrast by HU. Slices holding metal (> 2500 HU) are
  left out: their streaks are not contrast;
* ``not_head_ct`` — no skull ring enclosing brain-density tissue was found.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..core.errors import InputError
from ..io.volume import CTVolume
from ..preprocess.head import IN_SLICE, CoarseHead, upsample_mask
from .upright import upside_down_problem

MAX_SLICE_MM = 5.0
CONTRAST_HU = (180.0, 600.0)
CONTRAST_LIMIT_ML = 5.0
CONTRAST_SPAN_MM = 50.0
CONTRAST_START_MM = 10.0
BONE_MARGIN_MM = 4.0
SKULL_RIM_MM = 8.0
METAL_HU = 2500.0
BODY_WIDTH_MM = 320.0
MIN_HEAD_TISSUE_ML = 150.0
MIN_BONE_ML = 5.0
MAX_STRUCTURE_RATIO = 1.8  # `structure_ratio`: ≈ 1.0–1.2 for a CT, ≈ 2.8 for noise
MIN_COVERAGE_MM = 30.0


@dataclass(frozen=True)
class Reason:
    code: str
    severity: str  # "review" | "unusable"
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "severity": self.severity, "message": self.message}


def _largest_width_mm(a: CoarseHead) -> float:
    """Median over tissue-holding slices of the in-plane extent (mm) of soft tissue (> −300 HU)."""
    tissue = a.mean_hu > -300.0
    widths = []
    for k in range(tissue.shape[0]):
        if not tissue[k].any():
            continue
        jj, ii = np.nonzero(tissue[k])
        widths.append(max((ii.max() - ii.min() + 1) * a.grid.spacing[0], (jj.max() - jj.min() + 1) * a.grid.spacing[1]))
    return float(np.median(widths)) if widths else 0.0


def structure_ratio(hu: np.ndarray) -> float:
    """Standard deviation of ``hu`` over that of its 2×2×2 block means: random noise loses √8 ≈ 2.8× of its spread
    to the averaging, while an image of anatomy (air, tissue and bone regions many voxels wide) keeps nearly all of
    it (≈ 1.0–1.2, even with heavy noise or thick slices). 1.0 for an image too thin to pool or without contrast.

    (A ratio of neighbour differences to the interquartile range was used before: it called low-resolution heads
    whose field of view is mostly tissue "random noise".)"""
    even = [n - n % 2 for n in hu.shape]
    if min(even) < 2:
        return 1.0
    x = np.asarray(hu[: even[0], : even[1], : even[2]], dtype=np.float64)
    pooled = x.reshape(even[0] // 2, 2, even[1] // 2, 2, even[2] // 2, 2).mean(axis=(1, 3, 5))
    spread = float(pooled.std())
    return float(x.std()) / spread if spread > 1e-6 else 1.0


NOT_HEAD = "This image is not a head CT that IACSeg can read"
NEEDS = "give a non-contrast head CT that shows the skull base"


def refuse_unprocessable(vol: CTVolume, a: CoarseHead) -> None:
    """Raise `InputError` (one line: ``This image is not a head CT that IACSeg can read: <why>; <what to do>``) when
    ``vol`` (axial LPS) covers too little, holds no head at all, is a body CT or shows the head upside down."""
    covered = vol.grid.shape[0] * float(vol.grid.spacing[2])
    if covered < MIN_COVERAGE_MM:
        slices = "slice" if vol.grid.shape[0] == 1 else "slices"
        raise InputError(f"{NOT_HEAD}: it covers only {covered:.3g} mm along the head-foot axis "
                         f"({vol.grid.shape[0]} {slices}), not a head volume; give the whole CT series (IACSeg "
                         f"needs at least {MIN_COVERAGE_MM:g} mm through the skull base; a head CT covers 120 mm "
                         "or more)")
    if structure_ratio(a.mean_hu) > MAX_STRUCTURE_RATIO:  # on the ≈2.5 mm block means
        raise InputError(f"{NOT_HEAD}: no head found — it has no anatomical structure (neighbouring voxels differ "
                         f"like random noise); {NEEDS}")
    voxel_ml = float(np.prod(a.grid.spacing)) / 1000.0
    tissue_ml = float(np.count_nonzero(a.mean_hu > -300.0)) * voxel_ml
    bone_ml = float(np.count_nonzero(a.mean_hu > 300.0)) * voxel_ml
    if tissue_ml < 1.0:
        raise InputError(f"{NOT_HEAD}: no head found — it holds only air (nothing denser than −300 HU); {NEEDS}")
    if tissue_ml < MIN_HEAD_TISSUE_ML:
        raise InputError(f"{NOT_HEAD}: no head found — only {tissue_ml:.0f} mL of tissue (a head has well over "
                         f"{MIN_HEAD_TISSUE_ML:.0f} mL); {NEEDS}")
    if bone_ml < MIN_BONE_ML:
        raise InputError(f"{NOT_HEAD}: no skull found — only {bone_ml:.1f} mL of bone (above 300 HU); {NEEDS}")
    width = _largest_width_mm(a)
    if width > BODY_WIDTH_MM and a.skull_choice != "encloses_brain":
        raise InputError(f"{NOT_HEAD}: it looks like a body CT (the body is about {width:.0f} mm wide and no skull "
                         f"enclosing a brain was found); {NEEDS}")
    problem = upside_down_problem(vol, a)
    if problem is not None:
        raise InputError(f"{NOT_HEAD}: {problem}")


def thick_slices(vol: CTVolume) -> Reason | None:
    thickness = vol.metadata.get("slice_thickness_mm") or vol.grid.spacing[2]
    spacing = float(vol.grid.spacing[2])
    worst = max(float(thickness), spacing)
    if worst > MAX_SLICE_MM + 1e-6:
        return Reason("thick_slices", "review", f"slices are {worst:.1f} mm thick (more than {MAX_SLICE_MM:g} mm): "
                      "small calcifications and landmark heights are uncertain")
    return None


def contrast_volume_ml(vol: CTVolume, a: CoarseHead, z_from_mm: float | None) -> float:
    """mL of 180–600 HU voxels inside the skull, not within ``BONE_MARGIN_MM`` of denser bone in this slice or the
    next ones (partial volume of thin bone cut by thick slices), from 10 to 60 mm above ``z_from_mm`` (the
    clinoids: the circle of Willis, the middle cerebral arteries, veins and sinuses; not the orbital roofs)."""
    g = vol.grid
    z = g.origin[2] + np.arange(g.shape[0]) * g.spacing[2]
    if z_from_mm is None:
        ks = np.arange(len(z))
    else:
        lo = z_from_mm + CONTRAST_START_MM
        ks = np.flatnonzero((z >= lo) & (z <= lo + CONTRAST_SPAN_MM))
    if ks.size == 0 or not a.skull_filled.any():
        return 0.0
    rim = max(1, int(round(SKULL_RIM_MM / a.grid.spacing[0])))
    inside = a.skull_filled & ~ndimage.binary_dilation(a.skull, structure=IN_SLICE, iterations=rim)
    inside = upsample_mask(inside, a.factors, g.shape)
    step = 2 if min(g.spacing[:2]) < 0.6 else 1  # every other row/column on fine matrices: fast, same estimate
    radius = max(1, int(round(BONE_MARGIN_MM / (g.spacing[0] * step))))
    reach = max(1, int(round(BONE_MARGIN_MM / g.spacing[2])))
    total = 0
    for k in ks:
        hu = vol.hu[k, ::step, ::step]
        inn = inside[k, ::step, ::step]
        near = vol.hu[max(0, k - reach):k + reach + 1, ::step, ::step]
        if not inn.any() or (near > METAL_HU).any():  # metal streaks are not contrast
            continue
        bone = ndimage.binary_dilation((near > CONTRAST_HU[1]).any(axis=0), iterations=radius)
        total += int(np.count_nonzero((hu >= CONTRAST_HU[0]) & (hu <= CONTRAST_HU[1]) & inn & ~bone))
    return total * step * step * g.voxel_volume_mm3 / 1000.0


def contrast_enhanced(vol: CTVolume, a: CoarseHead, z_from_mm: float | None) -> Reason | None:
    ml = contrast_volume_ml(vol, a, z_from_mm)
    if ml > CONTRAST_LIMIT_ML:
        return Reason("contrast_enhanced", "review", f"{ml:.1f} mL of 180–600 HU inside the skull above the skull "
                      "base, away from bone: the vessels look contrast-enhanced, and calcium cannot be told from "
                      "contrast")
    return None


def head_found(a: CoarseHead) -> Reason | None:
    if a.skull_choice != "encloses_brain":
        return Reason("not_head_ct", "review", "no skull enclosing the brain was found: is this a head CT "
                      "covering the skull base?")
    return None
