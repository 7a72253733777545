"""Segment mapping: calcified voxels × hemisphere × landmark planes → the 8 ICA segment labels.

Rule (docs/DESIGN.md, "Contracts"): a calcified voxel lies on the patient's left when its signed distance to the
midsagittal plane is > 0 (else right). Each landmark is an axial plane at world height z (mm, LPS, superior
positive). For a voxel on side s at world height z (its centre, computed from the grid, so oblique /
tilt-corrected grids are handled exactly):

    z < s_carotid_canal → cervical; z < s_petrolingual → petrous; z < s_anterior_clinoid → cavernous;
    otherwise supraclinoid.

Only the mask's voxels are touched, so the mapping is cheap enough to re-run on every landmark correction.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..core.plane import MidsagittalPlane
from ..core.contracts import ICA_PARTS, LANDMARK_KINDS, LANDMARKS, SIDES, segment_id
from ..core.errors import InputError
from ..core.grid import Grid
from .sparse import flat_nonzero

_SIDE_WORDS = {"L": "left", "R": "right"}


def _height(value: Any) -> float:
    """A landmark height in mm from a number or anything with ``z_mm`` (e.g. `Landmark`)."""
    return float(getattr(value, "z_mm", value))


def landmark_heights_by_side(landmark_z: Mapping[str, Any]) -> dict[str, tuple[float, float, float]]:
    """``{'L': (canal, petrolingual, clinoid), 'R': (...)}`` in mm (LPS z), after `check_landmark_order`."""
    check_landmark_order(landmark_z)
    return {s: tuple(_height(landmark_z[f"{s}_{kind}"]) for kind in LANDMARK_KINDS) for s in SIDES}  # type: ignore[misc]


def check_landmark_order(landmark_z: Mapping[str, Any]) -> None:
    """Raise `InputError` unless all six landmarks are given, finite, and caudal→cranial on each side.

    ``landmark_z`` maps the contract names (``L_carotid_canal`` …) to heights in mm (LPS z) or to `Landmark`s.
    Each side needs carotid canal < petrolingual < anterior clinoid (strictly).
    """
    missing = [name for name in LANDMARKS if name not in landmark_z or landmark_z[name] is None]
    if missing:
        raise InputError(f"the landmark(s) {', '.join(missing)} are missing; place all six "
                         f"({', '.join(LANDMARKS)}) before mapping calcifications to segments")
    bad = [name for name in LANDMARKS if not np.isfinite(_height(landmark_z[name]))]
    if bad:
        raise InputError(f"the landmark(s) {', '.join(bad)} have no finite height; place them again")
    for side in SIDES:
        heights = [_height(landmark_z[f"{side}_{kind}"]) for kind in LANDMARK_KINDS]
        for lower, upper, z_lo, z_hi in zip(LANDMARK_KINDS, LANDMARK_KINDS[1:], heights, heights[1:]):
            if not z_lo < z_hi:
                raise InputError(
                    f"landmarks out of order on the {_SIDE_WORDS[side]}: {side}_{lower} (z={z_lo:.1f} mm) is not "
                    f"below {side}_{upper} (z={z_hi:.1f} mm); move them so that carotid canal < petrolingual "
                    f"< anterior clinoid from caudal to cranial")


def voxel_segment_labels(xyz: np.ndarray, plane: MidsagittalPlane, landmark_z: Mapping[str, Any]) -> np.ndarray:
    """Segment label (uint8, 1..8) of each world point ``xyz`` ``(N, 3)`` LPS mm, by the DESIGN rule."""
    heights = landmark_heights_by_side(landmark_z)
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    left = plane.signed_distance(xyz) > 0
    z = xyz[:, 2]
    out = np.empty(len(xyz), dtype=np.uint8)
    for side, on_side in (("L", left), ("R", ~left)):
        if not on_side.any():
            continue
        canal, petro, clinoid = heights[side]
        zs = z[on_side]
        part = (zs >= canal).astype(np.uint8) + (zs >= petro) + (zs >= clinoid)
        base = segment_id(side, ICA_PARTS[0])
        out[on_side] = base + part  # contract: the four parts of a side have consecutive label values
    return out


def segment_labels(mask: np.ndarray, grid: Grid, plane: MidsagittalPlane,
                   landmark_z: Mapping[str, float]) -> np.ndarray:
    """Label map (uint8 ``[k, j, i]``, 0 = background, 1..8 = DESIGN segments) of the calcified voxels.

    ``mask``: calcification ``[k, j, i]`` on ``grid`` (any non-zero voxel is calcified). ``grid`` may be oblique:
    each voxel's world z is computed from ``grid`` (LPS mm). ``plane``: midsagittal plane (normal → patient
    left). ``landmark_z``: the six landmark heights, mm (LPS z). Raises `InputError` for missing or
    out-of-order landmarks.
    """
    mask = np.asarray(mask)
    if tuple(mask.shape) != tuple(grid.shape):
        raise ValueError(f"mask shape {mask.shape} does not match grid shape {grid.shape}")
    check_landmark_order(landmark_z)
    flat = flat_nonzero(mask)
    labels = np.zeros(mask.shape, dtype=np.uint8)
    if flat.size == 0:
        return labels
    k, j, i = np.unravel_index(flat, mask.shape)
    xyz = grid.index_to_world(np.stack([i, j, k], axis=1))
    labels.reshape(-1)[flat] = voxel_segment_labels(xyz, plane, landmark_z)
    return labels


def relabel(labels_or_mask: np.ndarray, grid: Grid, plane: MidsagittalPlane,
            landmark_z: Mapping[str, float]) -> np.ndarray:
    """Re-map every non-zero voxel of a label map or mask after the plane or landmarks changed.

    The set of calcified voxels is kept; only their segment labels are recomputed (uint8 ``[k, j, i]``).
    """
    return segment_labels(labels_or_mask, grid, plane, landmark_z)
