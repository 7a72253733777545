"""Ground truth from the noise-free plaque-only rendering.

Convention (Jin et al.): calcium is ≥ 130 HU with isolated single voxels removed. A voxel's plaque-only value
is ``blood HU + Σ occupancy·(plaque HU − blood HU)`` after the same partial volume and slice-thickness
profile as the CT; its label is its artery side and its world height against that side's true landmark
planes (DESIGN mapping rule).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..core.contracts import CALCIUM_HU, SEGMENTS, segment_id
from ..core.grid import Grid
from .anatomy import PART_NAMES
from .plaques import BLOOD_HU, Plaque


def calcified_mask(excess: np.ndarray, blood_hu: float = BLOOD_HU) -> np.ndarray:
    """bool ``[k, j, i]``: plaque-only value (``blood_hu + excess``) ≥ 130 HU, minus 26-connected single voxels."""
    mask = excess >= (CALCIUM_HU - blood_hu)
    if not mask.any():
        return mask
    lo = np.argwhere(mask).min(axis=0)
    hi = np.argwhere(mask).max(axis=0) + 1
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    comp, n = ndimage.label(mask[box], structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(comp.ravel())
    single = np.zeros(n + 1, bool)
    single[1:] = sizes[1:] == 1
    sub = mask[box]
    sub[single[comp]] = False
    return mask


def part_of_height(z: np.ndarray, heights: dict[str, float]) -> np.ndarray:
    """Part index 0..3 (cervical..supraclinoid) of world heights ``z`` (mm) against one side's landmarks."""
    return ((z >= heights["carotid_canal"]).astype(np.int8) + (z >= heights["petrolingual"])
            + (z >= heights["anterior_clinoid"]))


def truth_labels(excess: np.ndarray, plaque_id: np.ndarray, plaques: list[Plaque], grid: Grid,
                 heights: dict[str, dict[str, float]], blood_hu: float = BLOOD_HU) -> np.ndarray:
    """uint8 label map 0..8 on ``grid``; ``heights[side][kind]`` are the true world landmark heights (mm)."""
    mask = calcified_mask(excess, blood_hu)
    labels = np.zeros(mask.shape, np.uint8)
    kji = np.argwhere(mask)
    if len(kji) == 0:
        return labels
    side_of = {p.id: p.side for p in plaques}
    ids = plaque_id[mask]
    z = grid.kji_to_world(kji)[:, 2]
    values = np.zeros(len(kji), np.uint8)
    for side in ("L", "R"):
        on = np.isin(ids, [i for i, s in side_of.items() if s == side])
        part = part_of_height(z[on], heights[side])
        values[on] = np.array([segment_id(side, p) for p in PART_NAMES], np.uint8)[part]
    labels[tuple(kji.T)] = values
    return labels


def truth_summary(labels: np.ndarray, excess: np.ndarray, plaque_id: np.ndarray, hu: np.ndarray,
                  plaques: list[Plaque], grid: Grid, pose_to_world, blood_hu: float = BLOOD_HU,
                  ) -> tuple[list[dict], dict[str, float]]:
    """Per-plaque records and per-segment truth volumes (mm³) for truth.json."""
    vox = grid.voxel_volume_mm3
    counts = np.bincount(labels.ravel(), minlength=9)
    seg_vol = {name: float(counts[v] * vox) for v, name in SEGMENTS.items()}
    records = []
    for p in plaques:
        sel = (plaque_id == p.id) & (labels > 0)
        n = int(sel.sum())
        seg_labels = labels[sel]
        if n:
            major = int(np.bincount(seg_labels).argmax())
            segment = SEGMENTS[major]
            peak = float((blood_hu + excess[sel]).max())
            centroid = grid.kji_to_world(np.argwhere(sel)).mean(axis=0).tolist()
        else:
            segment, centroid = f"{p.side}_{p.part}", None
            peak = float(blood_hu + excess[plaque_id == p.id].max(initial=0))
        records.append({
            "id": p.id, "side": p.side, "segment": segment, "part": p.part,
            "center_lps": [float(v) for v in pose_to_world(p.centre_head)],
            "truth_centroid_lps": centroid, "volume_mm3": n * vox, "geometric_volume_mm3": p.volume_mm3,
            "density_hu": p.hu, "peak_hu": peak, "semi_axes_mm": [p.a_arc, p.a_circ, p.a_rad],
        })
    return records, seg_vol


def spread_plaque_ids(excess: np.ndarray, plaque_id: np.ndarray, blood_hu: float = BLOOD_HU) -> np.ndarray:
    """Plaque ids for voxels a reconstruction kernel pushed over the threshold outside their plaque's own
    voxels: each takes the id of the nearest voxel with an id in its own slice (the kernel is in-plane)."""
    need = (excess >= (CALCIUM_HU - blood_hu)) & (plaque_id == 0)
    if not need.any():
        return plaque_id
    has = plaque_id > 0
    if not has.any():
        return plaque_id
    pts = np.argwhere(need | has)
    lo, hi = pts.min(axis=0), pts.max(axis=0) + 1
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    sub = plaque_id[box]
    _, idx = ndimage.distance_transform_edt(sub == 0, sampling=(1e3, 1.0, 1.0), return_indices=True)
    nearest = sub[tuple(idx)]
    out = plaque_id.copy()
    out_box = out[box]
    out_box[need[box]] = nearest[need[box]]
    return out
