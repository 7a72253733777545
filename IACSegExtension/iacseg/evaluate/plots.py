"""Evaluation figures as PNG files: Bland–Altman plots of total volume and predicted-vs-true segment volumes.

Drawn with matplotlib's object API on an Agg canvas (no pyplot, no global backend change, so this is safe
inside 3D Slicer or a notebook); files are written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.contracts import SEGMENTS
from .bootstrap import bland_altman


def _figure(width_in: float, height_in: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> Path:
    from ..core.files import atomic_file

    path = Path(path)
    with atomic_file(path, suffix=".png") as tmp:
        fig.savefig(str(tmp), format="png")
    return path


def _bland_altman_axes(ax: Any, pred: Sequence[float], truth: Sequence[float], title: str) -> None:
    ba = bland_altman(pred, truth)
    ax.scatter(ba["mean_of_pair"], ba["difference"], s=18, color="#1f77b4", alpha=0.8)
    if ba["mean_difference"] is not None:
        ax.axhline(ba["mean_difference"], color="black", lw=1.2, label=f"mean {ba['mean_difference']:.1f}")
    if ba["sd_difference"] is not None:
        for v, tag in ((ba["upper_limit"], "+1.96 SD"), (ba["lower_limit"], "−1.96 SD")):
            ax.axhline(v, color="#d62728", ls="--", lw=1.0, label=f"{tag} {v:.1f}")
    ax.axhline(0.0, color="0.6", lw=0.6)
    ax.set_xlabel("mean of predicted and true volume (mm³)")
    ax.set_ylabel("predicted − true volume (mm³)")
    ax.set_title(f"{title} (n={ba['n']})")
    if ba["n"]:
        ax.legend(loc="best", fontsize=8)


def bland_altman_png(path: str | Path, panels: Sequence[tuple[str, Sequence[float], Sequence[float]]]) -> Path:
    """One Bland–Altman panel per ``(title, predicted volumes mm³, true volumes mm³)``, side by side.

    Each panel: x = mean of predicted and true total volume, y = predicted − true; lines at the mean difference
    and at mean ± 1.96 SD (95 % limits of agreement). Returns ``path``.
    """
    if not panels:
        raise ValueError("bland_altman_png needs at least one panel")
    fig = _figure(5.0 * len(panels), 4.2)
    for n, (title, pred, truth) in enumerate(panels):
        _bland_altman_axes(fig.add_subplot(1, len(panels), n + 1), pred, truth, title)
    fig.tight_layout()
    return _save(fig, path)


def segment_volumes_png(path: str | Path, cases: Sequence[Mapping[str, Any]], title: str = "") -> Path:
    """Predicted vs true volume (mm³) per ICA segment: 8 scatter panels (2 × 4) with the identity line.

    ``cases`` are `iacseg.evaluate` case records with ``segment_volumes_mm3`` ``{segment: {"pred", "truth"}}``;
    failed cases are skipped. Returns ``path``.
    """
    ok = [c for c in cases if c.get("status", "ok") == "ok" and c.get("segment_volumes_mm3")]
    fig = _figure(14.0, 7.0)
    for n, name in enumerate(SEGMENTS.values()):
        ax = fig.add_subplot(2, 4, n + 1)
        t = np.array([float(c["segment_volumes_mm3"][name]["truth"]) for c in ok])
        p = np.array([float(c["segment_volumes_mm3"][name]["pred"]) for c in ok])
        top = float(max(t.max(initial=0.0), p.max(initial=0.0), 1.0)) * 1.05
        ax.plot([0.0, top], [0.0, top], color="0.5", lw=1.0, ls="--", label="identity")
        ax.scatter(t, p, s=16, color="#2ca02c", alpha=0.8)
        ax.set_xlim(0.0, top)
        ax.set_ylim(0.0, top)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("true volume (mm³)", fontsize=8)
        ax.set_ylabel("predicted volume (mm³)", fontsize=8)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def evaluation_plots(out_dir: str | Path, result: Mapping[str, Any]) -> dict[str, str]:
    """Write ``bland_altman.png`` and ``segment_volumes.png`` for an `evaluate_folders` result into ``out_dir``.

    Returns ``{figure name: path}``.
    """
    out_dir = Path(out_dir)
    ok = [c for c in result["cases"] if c.get("status") == "ok"]
    pred = [float(c["pred_volume_mm3"]) for c in ok]
    truth = [float(c["truth_volume_mm3"]) for c in ok]
    return {
        "bland_altman": str(bland_altman_png(out_dir / "bland_altman.png",
                                             [("total ICA calcium volume", pred, truth)])),
        "segment_volumes": str(segment_volumes_png(out_dir / "segment_volumes.png", ok,
                                                   "predicted vs true volume per ICA segment")),
    }
