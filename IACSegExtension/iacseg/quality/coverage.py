"""Which ICA segments the scan covers, per side.

A segment can only be measured when the scan holds all of it. Its height range follows the landmark planes:

* cervical — the last ``CERVICAL_MM`` (10 mm) below the carotid canal (the part a head CT is expected to show);
* petrous — carotid canal → petrolingual; cavernous — petrolingual → anterior clinoid;
* supraclinoid — the first ``SUPRACLINOID_MM`` (10 mm) above the anterior clinoid.

How far the scan reaches is read from the data, not from the grid, at each landmark's own column (its
``position``: where the localiser expects that landmark in the plane's frame, `iacseg.core.anatomy`, or where a
reader put it): the slices whose ``BOX_MM`` box around that column holds tissue (> −300 HU) in at least a quarter
of its voxels. So the empty corners of a gantry-tilt-corrected volume, or padding in a volume someone else
resampled, do not count as scanned; and with a tilted gantry, whose first and last slices slope from front to
back, the supraclinoid segment is judged in front, beside the sella, where it lies. A segment's range is judged at the
columns of the landmarks that bound it (`PART_LANDMARKS`; both must be scanned there). A segment with less than
``ASSESSABLE_FRACTION`` of its range scanned is *not assessable*: its measures are reported as null, never 0 mm³.
A landmark within one slice of the scan's first or last scanned height at its column cannot be told from one beyond
the scan (a localiser cannot place a landmark it does not see, so it tends to put it on the edge): the segments it
bounds, and those beyond them, are not assessable either.

The bone can say more than the landmark heights: when the skull-base prior finds that the scan ends inside the
sella region, or starts inside the petrous bone (`LandmarkPrior.outside_scan`), the segments that
landmark bounds, and those beyond them, are not assessable wherever the landmark was placed (`beyond_scan`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..core.contracts import ICA_PARTS, LANDMARK_KINDS, SIDES
from ..io.volume import CTVolume

CERVICAL_MM = 10.0
SUPRACLINOID_MM = 10.0
ASSESSABLE_FRACTION = 0.9
BOX_MM = 15.0
TISSUE_HU = -300.0
TISSUE_FRACTION = 0.25
#: A landmark closer than one slice (at least this many mm) to the scan's first or last scanned height at its column
#: is "at the edge": it may lie beyond the scan.
EDGE_MIN_MM = 2.0
#: The landmarks that bound each segment (its height range is judged at their columns).
PART_LANDMARKS: dict[str, tuple[str, ...]] = {"cervical": ("carotid_canal",),
                                              "petrous": ("carotid_canal", "petrolingual"),
                                              "cavernous": ("petrolingual", "anterior_clinoid"),
                                              "supraclinoid": ("anterior_clinoid",)}


@dataclass
class SideCoverage:
    side: str
    z_range_mm: tuple[float, float] | None        # heights scanned at all three landmark columns (None: none)
    segment_range_mm: dict[str, tuple[float, float]]
    fraction: dict[str, float]                     # share of each segment's height range that was scanned
    at_edge: list[str] = field(default_factory=list)  # landmark kinds placed at the scan's first or last slice


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


def _common(ranges: list[tuple[float, float] | None]) -> tuple[float, float] | None:
    """The heights inside every range (None when one is None or they do not overlap)."""
    if any(r is None for r in ranges):
        return None
    lo, hi = max(r[0] for r in ranges), min(r[1] for r in ranges)  # type: ignore[index]
    return (lo, hi) if lo < hi else None


def side_coverage(vol: CTVolume, side: str, landmarks: Mapping[str, object]) -> SideCoverage:
    """Coverage of one side's four segments; ``landmarks`` maps contract names to `Landmark`s (position, z_mm)."""
    lms = {kind: landmarks[f"{side}_{kind}"] for kind in LANDMARK_KINDS}
    heights = {kind: float(getattr(lm, "z_mm")) for kind, lm in lms.items()}
    scanned = {kind: scanned_z_range(vol, (float(getattr(lm, "position")[0]), float(getattr(lm, "position")[1])))
               for kind, lm in lms.items()}
    ranges = segment_ranges(heights)
    fraction = {}
    for part, (a, b) in ranges.items():
        z_range = _common([scanned[kind] for kind in PART_LANDMARKS[part]])
        if z_range is None or b <= a:
            fraction[part] = 0.0 if z_range is None else float(z_range[0] <= a <= z_range[1])
            continue
        overlap = max(0.0, min(b, z_range[1]) - max(a, z_range[0]))
        fraction[part] = float(overlap / (b - a))
    # a landmark on the scan's first or last slice cannot be told from one beyond it: the segments it bounds, and
    # those beyond, may be cut
    edge_mm = max(float(vol.grid.spacing[2]), EDGE_MIN_MM)
    at_edge = []
    for kind, r in scanned.items():
        for where, near in (("below", r is not None and heights[kind] - r[0] < edge_mm),
                            ("above", r is not None and r[1] - heights[kind] < edge_mm)):
            if near:
                at_edge.append(kind)
                fraction.update({p: 0.0 for p in parts_cut(kind, where)})
    return SideCoverage(side, _common(list(scanned.values())), ranges, fraction, at_edge)


def case_coverage(vol: CTVolume, landmarks: Mapping[str, object]) -> dict[str, SideCoverage]:
    """`SideCoverage` of both sides (``vol``: the axial LPS CT the landmarks were found on)."""
    return {side: side_coverage(vol, side, landmarks) for side in SIDES}


def segment_fractions(coverage: Mapping[str, SideCoverage]) -> dict[str, float]:
    """``{segment name: scanned fraction}`` for the 8 contract segments."""
    return {f"{side}_{part}": coverage[side].fraction[part] for side in SIDES for part in ICA_PARTS}


def not_assessable(fractions: Mapping[str, float], limit: float = ASSESSABLE_FRACTION) -> list[str]:
    """Segment names whose scanned fraction is below ``limit``, in contract order."""
    return [name for name, f in fractions.items() if f < limit]


def parts_cut(kind: str, where: str) -> tuple[str, ...]:
    """The ICA parts (possibly) cut when landmark ``kind`` lies ``"above"`` or ``"below"`` the scan: the two it
    bounds (part k ends at landmark k, part k + 1 starts there) and every one beyond them."""
    k = LANDMARK_KINDS.index(kind)
    return ICA_PARTS[k:] if where == "above" else ICA_PARTS[:k + 2]


def beyond_scan(outside: Mapping[str, str]) -> list[str]:
    """Segment names the bone puts (partly) outside the scan, from the prior's ``{landmark: "above" | "below"}``
    (`LandmarkPrior.outside_scan`; `parts_cut`). So a scan ending in the sella region loses the cavernous and
    supraclinoid segments: where the clinoid is, it cannot tell. In contract order."""
    out: set[str] = set()
    for name, where in outside.items():
        side, kind = name.split("_", 1)
        if kind in LANDMARK_KINDS:
            out.update(f"{side}_{p}" for p in parts_cut(kind, where))
    return [f"{side}_{p}" for side in SIDES for p in ICA_PARTS if f"{side}_{p}" in out]
