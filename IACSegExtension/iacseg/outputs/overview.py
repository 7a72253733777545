"""``overview.png``: a one-glance picture of a case for reports and quality control.

Left: coronal maximum-intensity projection (MIP) of the CT in a bone window around both ICAs, calcifications
coloured by segment, the six landmark planes drawn as labelled horizontal lines (left-side planes on the
patient's left half, right-side planes on the right half). Right: axial MIP between the lowest and highest
landmark (± margin) with the same colours and the landmark points. Radiological convention: the patient's left
is on the image's right. Axes are world mm (LPS x and z; exact for axial grids, approximate for oblique ones).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from ..core.contracts import LANDMARKS, SEGMENT_COLORS, SEGMENTS
from ..core.grid import Grid
from ..mapping.sparse import nonzero_kji
from ..core.files import atomic_file
from ..core.landmarks import Landmark

BONE_WINDOW_HU = (-400.0, 1400.0)
MARGIN_MM = 25.0
KIND_STYLE = {"carotid_canal": ("#ffffff", "canal"), "petrolingual": ("#00e5ff", "petrolingual"),
              "anterior_clinoid": ("#ff4dff", "clinoid")}


def _region(labels: np.ndarray, grid: Grid, landmarks: Mapping[str, Landmark]) -> tuple[slice, slice, slice]:
    """Index box [k, j, i] around the calcifications and landmarks, padded by `MARGIN_MM`."""
    points = [grid.kji_to_world(nonzero_kji(labels).astype(float))] if labels.any() else []
    points += [np.array([lm.position for lm in landmarks.values()], dtype=float)] if landmarks else []
    if not points:
        return tuple(slice(0, n) for n in grid.shape)  # type: ignore[return-value]
    ijk = grid.world_to_index(np.concatenate(points))
    pad = MARGIN_MM / np.asarray(grid.spacing)
    lo = np.floor(ijk.min(axis=0) - pad).astype(int)
    hi = np.ceil(ijk.max(axis=0) + pad).astype(int) + 1
    size = np.asarray(grid.shape)[::-1]
    lo, hi = np.clip(lo, 0, size - 1), np.clip(hi, 1, size)
    return slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0])


def _overlay(labels: np.ndarray, axis: int) -> np.ndarray:
    """RGBA projection of the segment labels along ``axis`` (a pixel takes the highest label present)."""
    proj = labels.max(axis=axis)
    rgba = np.zeros(proj.shape + (4,), dtype=np.float32)
    for value, colour in SEGMENT_COLORS.items():
        rgba[proj == value] = (*colour, 1.0)
    return rgba


def _world_x(grid: Grid, i: float, j: float, k: float) -> float:
    return float(grid.index_to_world(np.array([i, j, k]))[0])


def _world_z(grid: Grid, i: float, j: float, k: float) -> float:
    return float(grid.index_to_world(np.array([i, j, k]))[2])


def write_overview_png(path: str | Path, hu: np.ndarray, labels: np.ndarray, grid: Grid,
                       landmarks: Mapping[str, Landmark], title: str = "IACSeg overview") -> Path:
    """Render the overview (see module docstring) of ``hu``/``labels`` (``[k, j, i]`` on ``grid``) to a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    labels = np.asarray(labels)
    box = _region(labels, grid, landmarks)
    ks, js, is_ = box
    jc, kc, ic = (js.start + js.stop - 1) / 2, (ks.start + ks.stop - 1) / 2, (is_.start + is_.stop - 1) / 2
    x0, x1 = _world_x(grid, is_.start - 0.5, jc, kc), _world_x(grid, is_.stop - 0.5, jc, kc)
    z0, z1 = _world_z(grid, ic, jc, ks.start - 0.5), _world_z(grid, ic, jc, ks.stop - 0.5)
    y0 = float(grid.index_to_world(np.array([ic, js.start - 0.5, kc]))[1])
    y1 = float(grid.index_to_world(np.array([ic, js.stop - 0.5, kc]))[1])

    heights = [lm.z_mm for lm in landmarks.values()]
    if heights:  # axial MIP over the landmark range ± 10 mm
        kz = [grid.world_to_index(np.array([0.0, 0.0, z]))[2] for z in (min(heights) - 10, max(heights) + 10)]
        ka, kb = sorted(int(round(v)) for v in kz)
        ka, kb = max(ka, ks.start), min(kb + 1, ks.stop)
        if kb <= ka:
            ka, kb = ks.start, ks.stop
    else:
        ka, kb = ks.start, ks.stop
    ct = np.asarray(hu)[box]
    lab = labels[box]

    fig = Figure(figsize=(12, 6.5), dpi=110)
    FigureCanvasAgg(fig)
    ax_c, ax_a = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1]})
    vmin, vmax = BONE_WINDOW_HU
    ax_c.imshow(ct.max(axis=1), cmap="gray", vmin=vmin, vmax=vmax, origin="lower", extent=(x0, x1, z0, z1),
                interpolation="nearest")
    ax_c.imshow(_overlay(lab, 1), origin="lower", extent=(x0, x1, z0, z1), interpolation="nearest")
    axial_ct = np.asarray(hu)[ka:kb, js, is_].max(axis=0)
    axial_lab = labels[ka:kb, js, is_]
    ax_a.imshow(axial_ct, cmap="gray", vmin=vmin, vmax=vmax, origin="upper", extent=(x0, x1, y1, y0),
                interpolation="nearest")
    ax_a.imshow(_overlay(axial_lab, 0), origin="upper", extent=(x0, x1, y1, y0), interpolation="nearest")

    left_x = [lm.position[0] for n, lm in landmarks.items() if n.startswith("L_")]
    right_x = [lm.position[0] for n, lm in landmarks.items() if n.startswith("R_")]
    mid = (np.mean(left_x) + np.mean(right_x)) / 2 if left_x and right_x else (x0 + x1) / 2
    lo_x, hi_x = min(x0, x1), max(x0, x1)
    for name in [n for n in LANDMARKS if n in landmarks]:
        lm = landmarks[name]
        side, kind = name.split("_", 1)
        colour, short = KIND_STYLE.get(kind, ("yellow", kind))
        span = (mid, hi_x) if side == "L" else (lo_x, mid)
        ax_c.plot(span, (lm.z_mm, lm.z_mm), color=colour, linestyle="--", linewidth=1.2)
        ax_c.text(span[1] if side == "L" else span[0], lm.z_mm, f" {side} {short} ", color=colour, fontsize=7,
                  va="bottom", ha="right" if side == "L" else "left")
        ax_a.plot(lm.position[0], lm.position[1], marker="+", color=colour, markersize=9, mew=1.5)
    for ax in (ax_c, ax_a):
        ax.set_xlim(x0, x1)
        ax.text(0.01, 0.98, "R", color="w", transform=ax.transAxes, va="top", fontsize=11, weight="bold")
        ax.text(0.99, 0.98, "L", color="w", transform=ax.transAxes, va="top", ha="right", fontsize=11,
                weight="bold")
        ax.set_xlabel("x (mm, LPS)")
    ax_c.set_ylim(z0, z1)
    ax_c.set_ylabel("z (mm, LPS, superior up)")
    ax_c.set_title("coronal MIP, bone window")
    ax_a.set_ylabel("y (mm, LPS, posterior down)")
    ax_a.set_title("axial MIP between the landmark planes")
    handles = [Patch(color=SEGMENT_COLORS[v], label=SEGMENTS[v]) for v in sorted(SEGMENTS)]
    handles += [Line2D([], [], color=c, linestyle="--", label=f"{short} plane") for c, short in KIND_STYLE.values()]
    leg = fig.legend(handles=handles, loc="lower center", ncol=6, fontsize=8, frameon=True)
    leg.get_frame().set_facecolor("#dddddd")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    path = Path(path)
    with atomic_file(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", facecolor="white")
    return path
