"""Model input preparation shared by inference and training: intensity windows and the DST's in-plane view.

Both are pure torch functions; the choices (windows, field of view) are stored in each model's config so
training and inference prepare inputs identically.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..core.grid import Grid
from ..preprocess.intensity import intensity_channels


#: HU → ``[C, ...]`` channels, each window ``(lo, hi)`` HU clipped and scaled to 0..1 (the preprocess function).
window_channels = intensity_channels


def axial_view_indices(grid: Grid, centre_xy: Sequence[float], normal_xy: Sequence[float], fov_mm: float,
                       size: int) -> torch.Tensor:
    """Fractional (i, j) indices ``[size, size, 2]`` of a square in-plane view of an axial LPS grid.

    The view is ``fov_mm`` wide, centred on ``centre_xy`` (LPS mm) and rotated so its columns run along
    ``normal_xy`` (towards the patient's left) and its rows towards posterior. Same for every slice.
    """
    n = np.asarray(normal_xy[:2], dtype=np.float64)
    n = n / (np.linalg.norm(n) + 1e-12)
    post = np.array([-n[1], n[0]])  # +x rotated by +90° about z: left → posterior
    step = fov_mm / size
    offs = (np.arange(size) - (size - 1) / 2.0) * step
    xy = (np.asarray(centre_xy[:2], dtype=np.float64)[None, None, :]
          + offs[None, :, None] * n[None, None, :] + offs[:, None, None] * post[None, None, :])  # [row, col, 2]
    fi = (xy[..., 0] - grid.origin[0]) / grid.spacing[0]
    fj = (xy[..., 1] - grid.origin[1]) / grid.spacing[1]
    return torch.from_numpy(np.stack([fi, fj], axis=-1).astype(np.float32))


def sample_axial_view(hu: torch.Tensor, indices: torch.Tensor, pool: int = 1, fill_hu: float = -1024.0,
                      chunk: int = 32) -> torch.Tensor:
    """Resample every slice of ``hu`` ``[D, H, W]`` (HU) at fractional (i, j) ``indices`` ``[S, S, 2]`` →
    ``[D, S, S]`` (bilinear; air outside). ``pool`` > 1 first averages ``pool``×``pool`` pixel blocks
    (anti-aliasing when the view's pixels are much larger than the CT's)."""
    out = []
    idx = indices.to(hu.device).double()
    if pool > 1:
        idx = (idx - (pool - 1) / 2.0) / pool
    for start in range(0, hu.shape[0], chunk):
        block = hu[start:start + chunk, None].float() - fill_hu
        if pool > 1:
            block = F.avg_pool2d(block, pool, stride=pool, ceil_mode=True)
        h, w = block.shape[-2:]
        g = torch.stack([2.0 * idx[..., 0] / max(w - 1, 1) - 1.0, 2.0 * idx[..., 1] / max(h - 1, 1) - 1.0], -1)
        g = g.float()[None].expand(block.shape[0], -1, -1, -1)
        out.append(F.grid_sample(block, g, mode="bilinear", padding_mode="zeros", align_corners=True)[:, 0] + fill_hu)
    return torch.cat(out, dim=0)
