"""Intensity windows: HU → network input channels in 0..1."""

from __future__ import annotations

from typing import Sequence

import torch

#: Useful default windows (low HU, high HU): brain/soft tissue, calcium, bone.
DEFAULT_WINDOWS: tuple[tuple[float, float], ...] = ((-100.0, 200.0), (0.0, 1000.0), (-1000.0, 2000.0))


def intensity_channels(hu: torch.Tensor, windows: Sequence[tuple[float, float]]) -> torch.Tensor:
    """Stack one channel per window: ``[...]`` HU → ``[C, ...]`` float in 0..1.

    Each window is ``(low_HU, high_HU)``: values at/below ``low`` map to 0, at/above ``high`` to 1, linear
    between. Runs on ``hu``'s device and keeps its floating dtype (float32 for integer input).
    """
    if len(windows) == 0:
        raise ValueError("at least one intensity window is needed")
    x = hu if hu.is_floating_point() else hu.float()
    channels = []
    for low, high in windows:
        if not high > low:
            raise ValueError(f"intensity window ({low}, {high}) must have high > low (HU)")
        channels.append(((x - float(low)) / float(high - low)).clamp_(0.0, 1.0))
    return torch.stack(channels, dim=0)
