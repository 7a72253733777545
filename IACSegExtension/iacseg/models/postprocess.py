"""From a calcification probability map to the binary calcium mask (ground-truth convention of Jin et al.)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..core.contracts import CALCIUM_HU


def calcium_mask(prob: np.ndarray, hu: np.ndarray, threshold: float, min_hu: float = CALCIUM_HU) -> np.ndarray:
    """Boolean ``[k, j, i]``: ``prob ≥ threshold`` and ``hu ≥ min_hu`` (HU), without isolated single voxels.

    A voxel is isolated when none of its 26 neighbours is in the mask (3D connected component of size 1).
    """
    if prob.shape != hu.shape:
        raise ValueError(f"probability map {prob.shape} and CT {hu.shape} differ in shape")
    mask = (prob >= threshold) & (hu >= min_hu)
    if not mask.any():
        return mask
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    single = sizes == 1
    single[0] = False
    return mask & ~single[labels]
