"""Is the head upright in world (LPS) space? An image whose orientation header is wrong can show the head upside
down: the engine would then look for the skull base above the brain and report nonsense, so such an image is refused
with that reason (`upside_down_problem`).

The cue is where the brain lies relative to the rest of the head. On the coarse head analysis (`CoarseHead`),
*brain* is brain-density tissue (0–90 HU) enclosed by the skull in axial slices, and the *rest* is every other
voxel of the head (scalp, skull, face, neck). The face and the neck always lie below the brain, so in an upright
head the brain's centroid is well above the rest's (≈ +35 to +60 mm on phantoms and a real head CT); upside down
it is as far below. Scans whose rest is mostly beside the brain (little face or neck) give a small shift and are
never refused: the decision needs enough brain (`MIN_BRAIN_ML`) and a clear shift (`MIN_SHIFT_MM`).

Only axis-aligned images are judged (a wrong header flips axes; it does not tilt them). An oblique image resampled
onto the axial grid is cut by oblique planes, which open the skull ring in the axial slices near the cut so the
enclosed brain is found only in part and its centroid cannot be trusted.
"""

from __future__ import annotations

import numpy as np

from ..io.volume import CTVolume
from ..preprocess.head import BRAIN_HU, CoarseHead

MIN_BRAIN_ML = 100.0
MIN_SHIFT_MM = 20.0


def brain_shift_mm(a: CoarseHead) -> tuple[float, float] | None:
    """``(brain mL, height of the brain's centroid above the rest of the head's, mm)`` for an analysis on an axial
    LPS grid; None when there is no brain or nothing else."""
    brain = a.skull_filled & ~a.skull & (a.mean_hu >= BRAIN_HU[0]) & (a.mean_hu <= BRAIN_HU[1])
    rest = a.head & ~brain
    per_slice_brain = brain.sum(axis=(1, 2)).astype(np.float64)
    per_slice_rest = rest.sum(axis=(1, 2)).astype(np.float64)
    if per_slice_brain.sum() == 0 or per_slice_rest.sum() == 0:
        return None
    z = np.arange(len(per_slice_brain)) * a.grid.spacing[2]  # axial LPS: k grows superior
    shift = per_slice_brain @ z / per_slice_brain.sum() - per_slice_rest @ z / per_slice_rest.sum()
    brain_ml = float(per_slice_brain.sum()) * float(np.prod(a.grid.spacing)) / 1000.0
    return brain_ml, float(shift)


def upside_down_problem(vol: CTVolume, a: CoarseHead) -> str | None:
    """Why the head of ``vol`` (on the axial LPS grid, ``a`` its analysis) is upside down, or None when it is upright
    or undecided (too little brain found, a small shift, or an oblique image resampled to axial)."""
    if vol.metadata.get("preprocess", {}).get("oblique_resampled"):
        return None
    found = brain_shift_mm(a)
    if found is None:
        return None
    brain_ml, shift = found
    if brain_ml < MIN_BRAIN_ML or shift > -MIN_SHIFT_MM:
        return None
    return ("the head is upside down in it (the brain lies below the face and neck: the head-foot direction is "
            "reversed), so its orientation header (NIfTI qform/sform, NRRD space directions, DICOM "
            "ImageOrientationPatient/ImagePositionPatient) is wrong; fix the orientation (e.g. in 3D Slicer) or "
            "re-export the CT from the original DICOM")
