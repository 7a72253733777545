"""Building blocks of the 3D GRCSF network (`iacseg.models.grcsf`): squeeze-and-excitation, the Global
Compensation Unit (GCU), the patch importance score and the Regional Compensation Unit (RCU).

Tensors are ``[B, C, D, H, W]`` = ``[batch, channels, k, j, i]`` (slices, rows, columns of the CT's own axial LPS
grid, in voxels of the decoder level they live on). Patches are boxes of ``(pk, pj, pi)`` voxels; patch tokens are
numbered in raster order of the patch grid (k slowest, i fastest), each patch vector ordered (channel, k, j, i).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .unet import ConvNormAct
from .vit.encoder import sincos_position_embedding_3d

Box = tuple[int, int, int]


def patch_grid(spatial: Sequence[int], patch: Sequence[int]) -> Box:
    """Patch grid ``(gd, gh, gw)`` of a ``spatial`` (D, H, W) volume cut into ``patch`` boxes; ``ValueError``
    when a size is not a positive multiple of the patch along its axis."""
    if any(int(s) < int(p) or int(s) % int(p) for s, p in zip(spatial, patch)):
        raise ValueError(f"a feature map of {tuple(int(s) for s in spatial)} voxels cannot be cut into patches of "
                         f"{tuple(int(p) for p in patch)}; the input size must be a multiple of the network divisor")
    return (int(spatial[0]) // int(patch[0]), int(spatial[1]) // int(patch[1]), int(spatial[2]) // int(patch[2]))


def box_patchify(x: torch.Tensor, patch: Sequence[int]) -> torch.Tensor:
    """Volume ``[B, C, D, H, W]`` → patch vectors ``[B, N, C·pk·pj·pi]`` (anisotropic patches, raster order)."""
    b, c = x.shape[:2]
    (gd, gh, gw), (pk, pj, pi) = patch_grid(x.shape[2:], patch), (int(p) for p in patch)
    t = x.reshape(b, c, gd, pk, gh, pj, gw, pi).permute(0, 2, 4, 6, 1, 3, 5, 7)
    return t.reshape(b, gd * gh * gw, c * pk * pj * pi)


def box_unpatchify(vectors: torch.Tensor, patch: Sequence[int], grid: Sequence[int], channels: int) -> torch.Tensor:
    """Patch vectors ``[B, N, C·pk·pj·pi]`` → volume ``[B, C, gd·pk, gh·pj, gw·pi]`` (undoes `box_patchify`)."""
    b = vectors.shape[0]
    (gd, gh, gw), (pk, pj, pi) = (int(g) for g in grid), (int(p) for p in patch)
    t = vectors.reshape(b, gd, gh, gw, channels, pk, pj, pi).permute(0, 4, 1, 5, 2, 6, 3, 7)
    return t.reshape(b, channels, gd * pk, gh * pj, gw * pi)


class DoubleConv(nn.Sequential):
    """A U-Net++ node: two 3×3×3 conv–instance-norm–LeakyReLU blocks (the first may be strided)."""

    def __init__(self, cin: int, cout: int, stride: Sequence[int] = (1, 1, 1)) -> None:
        st = (int(stride[0]), int(stride[1]), int(stride[2]))
        super().__init__(ConvNormAct(cin, cout, st), ConvNormAct(cout, cout))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al.): each channel scaled by a gate in (0, 1) computed from the global
    average of every channel over the whole window (the "global" descriptor). ``[B, C, …]`` in and out."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(2, channels // reduction)
        self.gate = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels),
                                  nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gate(x.mean(dim=(2, 3, 4)))
        return x * g[:, :, None, None, None]


class GlobalCompensationUnit(nn.Module):
    """GCU of one U-Net++ level (Wang et al. eq. 1–2), for its ``nodes`` decoder nodes.

    ``F`` = the level's first skip (encoder output X^{i,0}, ``channels``), ``S`` = the next encoder output
    X^{i+1,0} (``coarse_channels``), re-upscaled to F's size by trilinear interpolation + a 1×1×1 convolution
    (``RU``); ``U`` = the node's upsampled decoder input. Per voxel, ``R = cos(RU ⊙ SE(U), SE(F))`` over channels
    (in [−1, 1]), and every skip of the node becomes ``skip ⊙ R + skip`` — the residual from the first skip is
    applied to all later skips of the level, as the paper's Fig. 2 does for UNet++."""

    def __init__(self, channels: int, coarse_channels: int, nodes: int, reduction: int = 4) -> None:
        super().__init__()
        self.reupscale = nn.Conv3d(coarse_channels, channels, 1)
        self.se_skip = SqueezeExcite(channels, reduction)
        self.se_up = nn.ModuleList(SqueezeExcite(channels, reduction) for _ in range(nodes))

    def prepare(self, skip: torch.Tensor, coarse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(RU, SE(F))`` of the level, computed once and shared by its nodes."""
        ru = self.reupscale(F.interpolate(coarse, size=skip.shape[2:], mode="trilinear", align_corners=False))
        return ru, self.se_skip(skip)

    def residual(self, node: int, up: torch.Tensor, ru: torch.Tensor, se_skip: torch.Tensor) -> torch.Tensor:
        """The skip-concatenation residual map ``R`` ``[B, 1, D, H, W]`` of decoder node ``node`` (0-based)."""
        return F.cosine_similarity(ru * self.se_up[node](up), se_skip, dim=1, eps=1e-6).unsqueeze(1)


class ImportanceScore(nn.Module):
    """Patch importance φ(U') (paper Fig. 5): 1×1×1 convolution, patches, two fully connected layers with ReLU,
    a last fully connected layer and a sigmoid — one independent score in (0, 1) per patch (several patches may
    hold calcification, so the scores are not normalised to sum to 1). ``[B, C, D, H, W]`` → ``[B, N]``."""

    def __init__(self, channels: int, patch: Sequence[int], hidden: int) -> None:
        super().__init__()
        reduced = max(1, channels // 4)
        self.patch = tuple(int(p) for p in patch)
        self.reduce = nn.Conv3d(channels, reduced, 1)
        volume = self.patch[0] * self.patch[1] * self.patch[2]
        self.mlp = nn.Sequential(nn.Linear(reduced * volume, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mlp(box_patchify(self.reduce(features), self.patch))).squeeze(-1)


class PatchCrossAttention(nn.Module):
    """Cross-attention from image-feature patch tokens (queries) to the patch tokens of one residual map (keys,
    values): every image patch attends to all residual patches of the window (``heads`` heads, width ``width``),
    and the result is mapped back to ``channels`` values per voxel of the patch.

    Residual tokens: linear embedding of a patch's residual voxels + fixed 3D sin-cos position of the patch,
    LayerNorm. ``forward(queries [B, N, width], residual [B, 1, D, H, W], positions [1, N, width])`` → patch
    vectors ``[B, N, channels·patch volume]`` (not yet rearranged into a feature map)."""

    def __init__(self, channels: int, patch: Sequence[int], width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"the RCU width {width} must be divisible by its number of heads {heads}")
        self.patch, self.width, self.heads = tuple(int(p) for p in patch), width, heads
        volume = self.patch[0] * self.patch[1] * self.patch[2]
        self.embed_residual = nn.Linear(volume, width)
        self.norm_kv = nn.LayerNorm(width)
        self.q, self.k, self.v = nn.Linear(width, width), nn.Linear(width, width), nn.Linear(width, width)
        self.out = nn.Linear(width, channels * volume)

    def forward(self, queries: torch.Tensor, residual: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        kv_tok = self.norm_kv(self.embed_residual(box_patchify(residual.to(queries.dtype), self.patch)) + positions)
        b, n, _ = queries.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, n, self.heads, self.width // self.heads).transpose(1, 2)

        attended = F.scaled_dot_product_attention(heads(self.q(queries)), heads(self.k(kv_tok)), heads(self.v(kv_tok)))
        return self.out(attended.transpose(1, 2).reshape(b, n, self.width))


class RegionalCompensationUnit(nn.Module):
    """RCU of one decoder level (Wang et al. eq. 6):
    ``M = Σ_r W_r · φ⁻¹(CA_r(U', RM'_r) · s(U')) + U`` over the residual maps ``r`` (one per MAE mask ratio),
    with ``CA_r`` a `PatchCrossAttention` (image tokens — linear embedding of each patch of U + fixed 3D sin-cos
    patch position, LayerNorm — shared by the ratios), ``s`` the `ImportanceScore` of each image patch, ``φ⁻¹``
    the rearrangement of patches back into the feature map and ``W_r`` learnable scalars (initialised to 1).

    ``stride``: the level's total downsampling (k, j, i) relative to the input; residual maps arrive at input
    resolution ``[B, R, D, H, W]`` and are average-pooled by ``stride`` to the level's grid. ``patch``: the
    patch at the level's resolution (voxels of the level)."""

    def __init__(self, channels: int, n_maps: int, patch: Sequence[int], stride: Sequence[int], width: int,
                 heads: int) -> None:
        super().__init__()
        self.stride = tuple(int(s) for s in stride)
        self.patch = tuple(int(p) for p in patch)
        self.channels, self.width = channels, width
        sincos_position_embedding_3d((1, 1, 1), width)  # refuse a width the positions cannot encode
        volume = self.patch[0] * self.patch[1] * self.patch[2]
        self.embed_image = nn.Linear(channels * volume, width)
        self.norm_q = nn.LayerNorm(width)
        self.attention = nn.ModuleList(PatchCrossAttention(channels, patch, width, heads) for _ in range(n_maps))
        self.score = ImportanceScore(channels, patch, width)
        self.map_weights = nn.Parameter(torch.ones(n_maps))

    def forward(self, up: torch.Tensor, residuals: torch.Tensor) -> torch.Tensor:
        maps = residuals if self.stride == (1, 1, 1) else F.avg_pool3d(residuals, self.stride, self.stride)
        if maps.shape[2:] != up.shape[2:]:
            raise ValueError(f"residual maps of {tuple(maps.shape[2:])} voxels do not match decoder features of "
                             f"{tuple(up.shape[2:])} at stride {self.stride}")
        grid = patch_grid(up.shape[2:], self.patch)
        pos = sincos_position_embedding_3d(grid, self.width).to(up.device, up.dtype)[None]
        queries = self.norm_q(self.embed_image(box_patchify(up, self.patch)) + pos)  # image tokens, shared
        scores = self.score(up)[..., None]  # [B, N, 1]
        out = up
        for r, attention in enumerate(self.attention):
            patches = attention(queries, maps[:, r:r + 1], pos) * scores
            out = out + self.map_weights[r] * box_unpatchify(patches, self.patch, grid, self.channels)
        return out
