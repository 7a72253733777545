"""Where an internal carotid artery can be: calcium found elsewhere in the ICA box is not ICA calcium.

The ICA box (`roi`) is a generous rectangle, so it also holds midline calcifications (falx, pineal gland,
basilar tip) and, above the supraclinoid ICA, the choroid plexus. Two rules from anatomy drop them after
thresholding, before segments are assigned:

* **midline**: voxels within ``MIDLINE_MM`` (4 mm) of the midsagittal plane. The ICA walls stay further
  from it on both sides even where the cavernous ICAs come closest (their medial walls are usually 6–12 mm
  from the midline; the phantoms' calcifications are ≥ 10 mm).
* **above the ICA**: voxels more than ``ABOVE_CLINOID_MM`` (20 mm) above the higher anterior clinoid landmark.
  The supraclinoid ICA ends at its bifurcation about 10–15 mm above the clinoid (the phantoms' calcifications
  reach 13 mm).

These rules apply to the network's output only: a reader's corrected label map keeps every voxel
(`mapping.relabel`). Heights and distances are world (LPS) mm of voxel centres, so tilted and oblique grids
are handled.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..core.plane import MidsagittalPlane
from ..core.grid import Grid

MIDLINE_MM = 4.0
ABOVE_CLINOID_MM = 20.0


def outside_ica_corridor(mask: np.ndarray, grid: Grid, plane: MidsagittalPlane,
                         landmark_z: Mapping[str, float]) -> dict[str, np.ndarray]:
    """bool ``[k, j, i]`` masks of the voxels of ``mask`` that cannot be ICA: ``{"midline", "above_ica"}``.

    ``landmark_z``: the six landmark heights (mm, LPS z); only the anterior clinoids are used.
    """
    flat = np.flatnonzero(mask)
    out = {"midline": np.zeros(mask.shape, bool), "above_ica": np.zeros(mask.shape, bool)}
    if flat.size == 0:
        return out
    k, j, i = np.unravel_index(flat, mask.shape)
    xyz = grid.index_to_world(np.stack([i, j, k], axis=1).astype(float))
    top = max(float(z) for name, z in landmark_z.items() if name.endswith("anterior_clinoid")) + ABOVE_CLINOID_MM
    out["midline"].reshape(-1)[flat] = np.abs(plane.signed_distance(xyz)) < MIDLINE_MM
    out["above_ica"].reshape(-1)[flat] = xyz[:, 2] > top
    return out
