"""Which ICA segments the scan covers, per side.

A segment can only be measured when the scan holds all of it. Its height range follows the landmark planes:

* cervical — the last ``CERVICAL_MM`` (10 mm) below the carotid canal (the part a head CT is expected to show);
* petrous — carotid canal → petrolingual; cavernous — petrolingual → anterior clinoid;
* supraclinoid — the first ``SUPRACLINOID_MM`` (10 mm) above the anterior clinoid.

The scanned height range at a side is read from the data, not from the grid: on the axial grid, the slices whose
``BOX_MM`` box around that side's landmark column holds tissue (> −300 HU) in at least a quarter of its voxels.
So the empty corners of a gantry-tilt-corrected volume, or padding in a volume someone else resampled, do not
count as scanned. A segment with less than ``ASSESSABLE_FRACTION`` of its range scanned is *not assessable*:
its measures are reported as null, never 0 mm³.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..core.contracts import ICA_PARTS, SIDES
from ..io.volume import CTVolume

CERVICAL_MM = 10.0
SUPRACLINOID_MM = 10.0
ASSESSABLE_FRACTION = 0.9
BOX_MM = 15.0
TISSUE_HU = -300.0
TISSUE_FRACTION = 0.25


@dataclass
class SideCoverage:
    side: str
    z_range_mm: tuple[float, float] | None        # scanned heights at this side's landmark column (None: none)
    segment_range_mm: dict[str, tuple[float, float]]
    fraction: dict[str, float]                     # share of each segment's height range that was scanned


def scanned_z_range(vol: CTVolume, xy: tuple[float, float], box_mm: float = BOX_MM) -> tuple[float, float] | None:
    """Lowest and highest scanned height (mm, slice borders) at in-plane point ``xy`` of an axial LPS ``vol``."""
    g = vol.grid
    si, sj, sk = g.spacing
    ci, cj, _ = g.world_to_index(np.array([xy[0], xy[1], g.origin[2]]))
    hi_, hj = int(round(box_mm / si)), int(round(box_mm / sj))
    i0, i1 = max(0, int(round(ci)) - hi_), min(g.shape[2], int(round(ci)) + hi_ + 1)
    j0, j1 = max(0, int(round(cj)) - hj), min(g.shape[1], int(round(cj)) + hj + 1)
    if i0 >= i1 or j0 >= j1:
        return None
    box = vol.hu[:, j0:j1, i0:i1]
    tissue = (box > TISSUE_HU).mean(axis=(1, 2))
    scanned = np.flatnonzero(tissue >= TISSUE_FRACTION)
    if scanned.size == 0:
        return None
    z0 = g.origin[2]
    return float(z0 + (scanned[0] - 0.5) * sk), float(z0 + (scanned[-1] + 0.5) * sk)


def segment_ranges(heights: Mapping[str, float]) -> dict[str, tuple[float, float]]:
    """Height range (mm) of the four segments of one side from its three landmark heights (by kind)."""
    canal, petro, clinoid = heights["carotid_canal"], heights["petrolingual"], heights["anterior_clinoid"]
    return {"cervical": (canal - CERVICAL_MM, canal), "petrous": (canal, petro), "cavernous": (petro, clinoid),
            "supraclinoid": (clinoid, clinoid + SUPRACLINOID_MM)}


def side_coverage(vol: CTVolume, side: str, landmarks: Mapping[str, object]) -> SideCoverage:
    """Coverage of one side's four segments; ``landmarks`` maps contract names to `Landmark`s (position, z_mm)."""
    lms = {kind: landmarks[f"{side}_{kind}"] for kind in ("carotid_canal", "petrolingual", "anterior_clinoid")}
    heights = {kind: float(getattr(lm, "z_mm")) for kind, lm in lms.items()}
    xy = np.mean([getattr(lm, "position")[:2] for lm in lms.values()], axis=0)
    z_range = scanned_z_range(vol, (float(xy[0]), float(xy[1])))
    ranges = segment_ranges(heights)
    fraction = {}
    for part, (a, b) in ranges.items():
        if z_range is None or b <= a:
            fraction[part] = 0.0 if z_range is None else float(z_range[0] <= a <= z_range[1])
            continue
        overlap = max(0.0, min(b, z_range[1]) - max(a, z_range[0]))
        fraction[part] = float(overlap / (b - a))
    return SideCoverage(side, z_range, ranges, fraction)


def case_coverage(vol: CTVolume, landmarks: Mapping[str, object]) -> dict[str, SideCoverage]:
    """`SideCoverage` of both sides (``vol``: the axial LPS CT the landmarks were found on)."""
    return {side: side_coverage(vol, side, landmarks) for side in SIDES}


def segment_fractions(coverage: Mapping[str, SideCoverage]) -> dict[str, float]:
    """``{segment name: scanned fraction}`` for the 8 contract segments."""
    return {f"{side}_{part}": coverage[side].fraction[part] for side in SIDES for part in ICA_PARTS}


def not_assessable(fractions: Mapping[str, float], limit: float = ASSESSABLE_FRACTION) -> list[str]:
    """Segment names whose scanned fraction is below ``limit``, in contract order."""
    return [name for name, f in fractions.items() if f < limit]
