"""Risk group from the total ICA calcification volume (mm³), with configurable cut points.

The defaults are **not clinical thresholds**: they are round numbers that split typical intracranial ICA
calcium volumes on head CT (tens of mm³ in older adults) into four groups for research summaries:

    none: 0 mm³; low: 0 < V < 30 mm³; moderate: 30 ≤ V < 100 mm³; high: V ≥ 100 mm³.

Pass your own cut points (two increasing volumes, or ``{group name: lower bound mm³}``) to use a cohort's
quantiles or a published scheme.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..core.errors import InputError

DEFAULT_CUTPOINTS_MM3: tuple[float, float] = (30.0, 100.0)
DEFAULT_GROUPS: tuple[str, ...] = ("low", "moderate", "high")


def _groups(cutpoints_mm3: Sequence[float] | Mapping[str, float] | None) -> list[tuple[str, float]]:
    """``[(name, lower bound mm³)]`` for the groups above 'none', the first bound being 0 (exclusive)."""
    if cutpoints_mm3 is None:
        cutpoints_mm3 = DEFAULT_CUTPOINTS_MM3
    if isinstance(cutpoints_mm3, Mapping):
        groups = sorted(((str(k), float(v)) for k, v in cutpoints_mm3.items()), key=lambda g: g[1])
    else:
        bounds = [float(v) for v in cutpoints_mm3]
        if len(bounds) != len(DEFAULT_GROUPS) - 1:
            raise InputError(f"risk cut points must be {len(DEFAULT_GROUPS) - 1} volumes in mm³ (low|moderate and "
                             f"moderate|high), not {len(bounds)}; or give a mapping of group names to lower bounds")
        groups = list(zip(DEFAULT_GROUPS, [0.0, *bounds]))
    lows = [g[1] for g in groups]
    if not groups or lows[0] < 0 or any(b <= a for a, b in zip(lows, lows[1:])) or (len(lows) > 1 and lows[1] <= 0):
        raise InputError(f"risk cut points {cutpoints_mm3} must be non-negative, strictly increasing volumes in mm³")
    return groups


def risk_group(total_volume_mm3: float,
               cutpoints_mm3: Sequence[float] | Mapping[str, float] | None = None) -> dict[str, Any]:
    """Risk group of a case: ``{"group", "total_volume_mm3", "cutpoints_mm3", "note"}``.

    A volume of exactly 0 is 'none'; otherwise the group whose lower bound is the largest one ≤ the volume
    (lower bounds inclusive, the first group starting just above 0).
    """
    groups = _groups(cutpoints_mm3)
    volume = float(total_volume_mm3)
    name = "none"
    if volume > 0:
        name = groups[0][0]
        for group, low in groups[1:]:
            if volume >= low:
                name = group
    return {"group": name, "total_volume_mm3": volume,
            "cutpoints_mm3": {"none": 0.0, **{g: low for g, low in groups}},
            "note": "research grouping by total ICA calcium volume with configurable cut points; not a clinical "
                    "threshold"}
