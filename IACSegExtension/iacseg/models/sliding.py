"""Gated sliding-window inference of a dense 3D network over a region (nnU-Net-style Gaussian blending).

A window is *gated out* (never run) when it holds no candidate voxel (e.g. no voxel ≥ 130 HU): nothing it
predicts could survive the calcium rule. Every voxel that is a candidate lies only in windows that are run,
so at candidate voxels the result is identical to running every window.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

from ..core.progress import Progress, no_progress


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Start offsets of windows of ``window`` covering ``size`` with at least ``overlap`` (0..1) between them."""
    if size <= window:
        return [0]
    step = max(1, int(window * (1.0 - overlap)))
    n = math.ceil((size - window) / step) + 1
    return sorted({int(round(v)) for v in np.linspace(0, size - window, n)})


def gaussian_importance(window: Sequence[int], sigma_scale: float = 0.125) -> torch.Tensor:
    """``[d, h, w]`` Gaussian weights (peak 1 at the centre, σ = ``sigma_scale`` × size, floor 1e-3)."""
    axes = []
    for n in window:
        x = torch.arange(n, dtype=torch.float32) - (n - 1) / 2.0
        axes.append(torch.exp(-0.5 * (x / max(sigma_scale * n, 1e-3)) ** 2))
    w = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    return (w / w.max()).clamp_min(1e-3)


def fit_window(size: Sequence[int], window: Sequence[int], divisor: Sequence[int]) -> tuple[int, int, int]:
    """Per axis: the configured window, shrunk to the region size rounded up to a multiple of ``divisor``."""
    out = [min(int(w), int(math.ceil(s / d) * d)) for s, w, d in zip(size, window, divisor)]
    return (out[0], out[1], out[2])


def sliding_window_proba(image: torch.Tensor, predict_logits: Callable[[torch.Tensor], torch.Tensor],
                         window: Sequence[int], *, overlap: float = 0.25, gate: torch.Tensor | None = None,
                         batch: int = 2, divisor: Sequence[int] = (1, 1, 1), pad_value: float = 0.0,
                         progress: Progress = no_progress) -> tuple[torch.Tensor, dict[str, int]]:
    """Probability ``[D, H, W]`` of ``image`` ``[C, D, H, W]`` by blending sigmoid(logits) of windows.

    ``predict_logits`` maps ``[B, C, d, h, w]`` → ``[B, 1, d, h, w]``. ``gate`` (bool ``[D, H, W]``) marks
    candidate voxels; windows without one are skipped and voxels covered by no run window get 0.
    Returns ``(probability, {"windows": total, "run": run})``.
    """
    C, D, H, W = image.shape
    win = fit_window((D, H, W), window, divisor)
    pads = [max(0, w - s) for w, s in zip(win, (D, H, W))]
    if any(pads):
        image = torch.nn.functional.pad(image, (0, pads[2], 0, pads[1], 0, pads[0]), value=pad_value)
        if gate is not None:
            gate = torch.nn.functional.pad(gate, (0, pads[2], 0, pads[1], 0, pads[0]), value=False)
    size = image.shape[1:]
    boxes = [(a, b, c) for a in window_starts(size[0], win[0], overlap)
             for b in window_starts(size[1], win[1], overlap) for c in window_starts(size[2], win[2], overlap)]
    if gate is not None:
        run = [bx for bx in boxes if bool(gate[bx[0]:bx[0] + win[0], bx[1]:bx[1] + win[1], bx[2]:bx[2] + win[2]].any())]
    else:
        run = boxes
    acc = torch.zeros(size, dtype=torch.float32, device=image.device)
    weight = torch.zeros(size, dtype=torch.float32, device=image.device)
    imp = gaussian_importance(win).to(image.device)
    for n in range(0, len(run), max(1, batch)):
        chunk = run[n:n + batch]
        x = torch.stack([image[:, a:a + win[0], b:b + win[1], c:c + win[2]] for a, b, c in chunk])
        prob = torch.sigmoid(predict_logits(x).float())[:, 0]
        for (a, b, c), p in zip(chunk, prob):
            acc[a:a + win[0], b:b + win[1], c:c + win[2]] += p * imp
            weight[a:a + win[0], b:b + win[1], c:c + win[2]] += imp
        progress("segment", min(1.0, (n + len(chunk)) / max(len(run), 1)), f"window {n + len(chunk)}/{len(run)}")
    out = torch.where(weight > 0, acc / weight.clamp_min(1e-8), torch.zeros_like(acc))
    return out[:D, :H, :W], {"windows": len(boxes), "run": len(run)}
