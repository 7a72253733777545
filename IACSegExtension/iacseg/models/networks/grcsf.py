"""GRCSF (Wang et al., "Global and Regional Compensation Segmentation Framework") adapted to 3D CT.

The network segments calcification from the windowed CT channels ``x`` ``[B, C, D, H, W]`` (``[batch, channel,
k, j, i]`` of the CT's own axial LPS grid, voxels; intensity windows scaled to 0..1 as `segmenter_input` makes
them) and returns one logit per voxel ``[B, 1, D, H, W]`` — or, with ``deep_supervision`` while training, the
logits of every full-resolution U-Net++ node, final node first. It has three parts:

1. **MAE residual maps** (paper §3.3.1). A frozen `MAE3D` (its weights are part of this network's state dict,
   so one model folder is self-contained; never trained here, always in eval mode, run without gradients)
   reconstructs ``x`` under random masks of 50 % and 75 % of its cubes (``ratios``); `residual_maps` averages
   each cube's reconstructions over ``repeats`` masks (masks that together hide every cube at least once) and
   gives ``1 − cosine(input cube, mean reconstruction)`` per cube and ratio, ``[B, 2, D, H, W]`` in [0, 2].
   3D choices: the MAE is the project's 3D cube-token ViT MAE trained on the same windowed CT, so residuals are
   constant over each MAE cube (patch³ voxels) instead of per pixel, and no resizing to 224² is needed (3D
   sin-cos positions take any multiple of the patch). Masks come from the global random generator while
   training (fresh masks each step, an augmentation) and from a generator seeded with ``eval_seed`` at eval, each
   sample on its own, so inference is deterministic and a window's output does not depend on its batch.
   The paper averages 5 reconstructions per ratio; ``repeats`` (default 4, `residual_maps`' default) is
   configurable because each repeat is a full MAE pass.
2. **U-Net++ backbone** (paper §3.1; Zhou et al.): encoder nodes X^{i,0} (two conv–instance-norm–LeakyReLU
   blocks, the first strided by ``strides[i]`` — strided convolutions instead of max-pooling, as the project's
   U-Net; strides may be anisotropic, e.g. (1, 2, 2) first for thick slices), nested dense skip nodes
   ``X^{i,j} = node(cat(X^{i,0}, …, X^{i,j−1}, up(X^{i+1,j−1})))`` with a transposed-convolution ``up`` per node,
   and a 1×1×1 logit head on X^{0,L−1} (heads on X^{0,1..L−2} for deep supervision). The loss is the
   trainer's (the paper used focal loss, plus Dice for strokes).
3. **Compensation units.**
   *GCU* (§3.2, eq. 1–2; `GlobalCompensationUnit`) at every skip concatenation: ``RU`` = the next encoder output
   re-upscaled (trilinear + 1×1×1 conv) to the level; ``R = cos_channels(RU ⊙ SE(U), SE(F))`` per voxel with
   squeeze-and-excitation (whole-window channel averages — the global context) on the node's upsampled input U
   and on the level's first skip F = X^{i,0}; every skip of the node becomes ``skip ⊙ R + skip`` (the residual
   of the first skip refines all later skips of the level, Fig. 2). Where a node also has an RCU, U is the
   RCU's output M.
   *RCU* (§3.3.2, eq. 6; `RegionalCompensationUnit`) on the upsampled input U of the last decoder nodes
   X^{i,L−1−i} for i in ``rcu_levels`` (default the last three, as the paper): residual maps average-pooled to
   the level, image features and each residual map cut into patches of ``rcu_patch`` input voxels (default
   the MAE cube, so one token per MAE cube — pixel-level attention inside a patch would see a constant residual);
   each image patch token (query) attends to all residual patch tokens of the window (keys/values; fixed 3D
   sin-cos patch positions; one attention per mask ratio), the result is scaled by the patch's importance score
   and rearranged back, and ``M = Σ_r W_r · CA_r · s + U`` (learnable per-ratio weights W_r, initialised to 1)
   replaces U. Importance scores follow the paper: computed from the image features of each patch (not from
   the residuals, so the backbone can overrule residual-map false positives) by 1×1×1 conv → FC–ReLU → FC–ReLU
   → FC → sigmoid, one independent score in (0, 1) per patch (not a softmax: several patches may hold
   calcification). Reading of the paper: it cuts U and the maps into N patches of P² pixels and applies
   SAGAN-style cross-attention "between" them without saying which side queries nor whether attention runs
   inside or across patches. Here tokens are whole patches and attention spans the window (3D attention inside
   a patch costs (P³)² per patch and, at the MAE cube size, would see one constant residual), and queries are
   image features, so the maps inject "where the MAE could not predict the anatomy" into the decoder.

``divisor`` (k, j, i) = the lcm of the product of the strides, the MAE patch and the RCU patch: window sizes must
be multiples. ``forward(x, residuals=…)`` accepts precomputed (or zeroed, for ablation) residual maps.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn

from .grcsf_blocks import DoubleConv, GlobalCompensationUnit, RegionalCompensationUnit
from .unet import stride_product
from .vit.mae import MAE3D, residual_maps

MAE_KIND = "mae"


def _triple(v: int | Sequence[int]) -> tuple[int, int, int]:
    t = (int(v),) * 3 if isinstance(v, (int, float)) else tuple(int(a) for a in v)
    if len(t) != 3 or min(t) < 1:
        raise ValueError(f"expected three positive voxel counts (k, j, i), not {v!r}")
    return (t[0], t[1], t[2])


class GRCSF(nn.Module):
    """3D GRCSF calcification segmenter (see the module docstring for the design and the 3D choices).

    ``mae``: `MAE3D` constructor parameters (its ``config``); ``features[i]``/``strides[i]``: channels and
    (k, j, i) downsampling of U-Net++ level i; ``ratios``/``repeats``: MAE mask ratios and masks per ratio;
    ``rcu_levels``: levels whose last decoder node gets an RCU (empty: no RCU); ``rcu_patch``: RCU patch in input
    voxels (None: the MAE patch); ``rcu_width``/``rcu_heads``: attention width (divisible by 6) and heads;
    ``gcu``: GCUs on the skips; ``eval_seed``: seed of the residual-map masks in eval mode."""

    def __init__(self, mae: dict[str, Any], in_channels: int | None = None, features: Sequence[int] = (8, 16, 32, 64),
                 strides: Sequence[Sequence[int]] = ((1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2)),
                 ratios: Sequence[float] = (0.5, 0.75), repeats: int = 4, rcu_levels: Sequence[int] | None = None,
                 rcu_patch: int | Sequence[int] | None = None, rcu_width: int = 48, rcu_heads: int = 4,
                 gcu: bool = True, eval_seed: int = 0, deep_supervision: bool = False) -> None:
        super().__init__()
        levels = len(features)
        if levels < 2 or len(strides) != levels:
            raise ValueError("features and strides need one entry per level, and at least two levels")
        self.mae = MAE3D(**mae)
        in_channels = self.mae.in_channels if in_channels is None else int(in_channels)
        if in_channels != self.mae.in_channels:
            raise ValueError(f"the MAE reads {self.mae.in_channels} intensity channels but the network was asked for "
                             f"{in_channels}; the residual maps need the same windowed CT channels")
        self.mae.requires_grad_(False)
        self.mae.eval()
        self.strides = [_triple(s) for s in strides]
        self.features = [int(f) for f in features]
        self.ratios = [float(r) for r in ratios]
        self.repeats, self.eval_seed, self.use_gcu = int(repeats), int(eval_seed), bool(gcu)
        self.deep_supervision = bool(deep_supervision)
        rcu_levels = list(range(min(3, levels - 1))) if rcu_levels is None else [int(i) for i in rcu_levels]
        if any(not 0 <= i < levels - 1 for i in rcu_levels):
            raise ValueError(f"rcu_levels must be decoder levels 0..{levels - 2}, not {rcu_levels}")
        patch = _triple(self.mae.patch if rcu_patch is None else rcu_patch)
        self.rcu_levels = sorted(set(rcu_levels))
        self.config = {"mae": dict(self.mae.config), "in_channels": in_channels, "features": self.features,
                       "strides": [list(s) for s in self.strides], "ratios": self.ratios, "repeats": self.repeats,
                       "rcu_levels": self.rcu_levels, "rcu_patch": list(patch), "rcu_width": int(rcu_width),
                       "rcu_heads": int(rcu_heads), "gcu": self.use_gcu, "eval_seed": self.eval_seed,
                       "deep_supervision": self.deep_supervision}
        cum = [stride_product(self.strides[: i + 1]) for i in range(levels)]
        self.encoder = nn.ModuleList(DoubleConv(in_channels if i == 0 else self.features[i - 1], self.features[i],
                                                self.strides[i]) for i in range(levels))
        self.up, self.nodes = nn.ModuleDict(), nn.ModuleDict()
        for j in range(1, levels):
            for i in range(levels - j):
                st = self.strides[i + 1]
                self.up[f"{i}_{j}"] = nn.ConvTranspose3d(self.features[i + 1], self.features[i], st, stride=st,
                                                         bias=False)
                self.nodes[f"{i}_{j}"] = DoubleConv((j + 1) * self.features[i], self.features[i])
        self.gcu = nn.ModuleList(GlobalCompensationUnit(self.features[i], self.features[i + 1], levels - 1 - i)
                                 for i in range(levels - 1)) if self.use_gcu else nn.ModuleList()
        self.rcu = nn.ModuleDict()
        for i in self.rcu_levels:
            if any(p % c for p, c in zip(patch, cum[i])):
                raise ValueError(f"the RCU patch {patch} (input voxels) must be a multiple of level {i}'s total "
                                 f"stride {cum[i]}; choose a larger rcu_patch or other rcu_levels")
            level_patch = tuple(p // c for p, c in zip(patch, cum[i]))
            self.rcu[str(i)] = RegionalCompensationUnit(self.features[i], len(self.ratios), level_patch, cum[i],
                                                        int(rcu_width), int(rcu_heads))
        self.heads = nn.ModuleList(nn.Conv3d(self.features[0], 1, 1) for _ in range(levels - 1))  # X^{0,1..L-1}
        parts = [stride_product(self.strides), (self.mae.patch,) * 3] + ([patch] if self.rcu_levels else [])
        self._divisor = tuple(math.lcm(*(p[a] for p in parts)) for a in range(3))

    @property
    def divisor(self) -> tuple[int, int, int]:
        """Input sizes (k, j, i) must be multiples of these (strides, MAE patch and RCU patch)."""
        return (self._divisor[0], self._divisor[1], self._divisor[2])

    def train(self, mode: bool = True) -> "GRCSF":
        """Set training mode; the frozen MAE always stays in eval mode."""
        super().train(mode)
        self.mae.eval()
        return self

    def residual_maps(self, x: torch.Tensor) -> torch.Tensor:
        """MAE residual maps of ``x``: ``[B, len(ratios), D, H, W]`` float32 in [0, 2], no gradient.

        Random masks while training; in eval mode every sample gets the masks of a generator seeded with
        ``eval_seed`` (deterministic, independent of the other samples in the batch)."""
        if self.training:
            return residual_maps(self.mae, x, self.ratios, self.repeats)
        return torch.cat([residual_maps(self.mae, x[b:b + 1], self.ratios, self.repeats,
                                        torch.Generator().manual_seed(self.eval_seed)) for b in range(x.shape[0])])

    def forward(self, x: torch.Tensor, residuals: torch.Tensor | None = None) -> torch.Tensor | list[torch.Tensor]:
        """Windowed CT ``[B, C, D, H, W]`` → logits ``[B, 1, D, H, W]`` (a list, final node first, with deep
        supervision in training). ``residuals``: precomputed ``[B, len(ratios), D, H, W]`` maps (None: the MAE's)."""
        if x.ndim != 5 or any(s % d for s, d in zip(x.shape[2:], self.divisor)):
            raise ValueError(f"GRCSF needs input [B, C, D, H, W] with D, H, W multiples of {self.divisor}, "
                             f"not {tuple(x.shape)}; pad or crop the window")
        if self.rcu_levels and residuals is None:
            residuals = self.residual_maps(x)
        levels = len(self.features)
        grid: dict[tuple[int, int], torch.Tensor] = {}
        h = x
        for i, stage in enumerate(self.encoder):
            h = grid[i, 0] = stage(h)
        prepared = {i: self.gcu[i].prepare(grid[i, 0], grid[i + 1, 0]) for i in range(levels - 1)} \
            if self.use_gcu else {}
        for j in range(1, levels):
            for i in range(levels - j):
                up = self.up[f"{i}_{j}"](grid[i + 1, j - 1])
                if i + j == levels - 1 and str(i) in self.rcu:
                    up = self.rcu[str(i)](up, residuals.to(up.dtype))  # type: ignore[union-attr]
                skips = [grid[i, k] for k in range(j)]
                if self.use_gcu:
                    r = self.gcu[i].residual(j - 1, up, *prepared[i])
                    skips = [s * r + s for s in skips]
                grid[i, j] = self.nodes[f"{i}_{j}"](torch.cat(skips + [up], dim=1))
        if self.deep_supervision and self.training:
            return [self.heads[j - 1](grid[0, j]) for j in range(levels - 1, 0, -1)]
        return self.heads[-1](grid[0, levels - 1])


def build_grcsf(params: dict[str, Any]) -> GRCSF:
    """`GRCSF` from its ``config`` dict (builder of architecture "GRCSF"); ``params["mae"]`` holds the
    MAE3D parameters (its weights come with the GRCSF state dict)."""
    if "mae" not in params:
        raise TypeError("GRCSF parameters need 'mae' (the MAE3D configuration that makes the residual maps)")
    return GRCSF(**params)
