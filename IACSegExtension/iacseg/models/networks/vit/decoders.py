"""Segmentation decoders on a 3D ViT encoder (Jin et al., Fig. 3): UNETR, SFPN U-Net, Upscale, MAE decoder.

Every decoder maps ``(x, encoded)`` — the network input ``[B, C, D, H, W]`` (``[batch, channels, k, j, i]``, the
CT's own voxel grid) and the `EncoderOutput` of that input — to one logit per voxel ``[B, 1, D, H, W]``.
The encoder sees the input through cubes of P = 4, 8 or 16 voxels, so its tokens form a volume at 1/P of the
input size; with ``L = log2(P)`` a convolutional decoder climbs L factor-2 steps back to full resolution.
Resolution level ``l`` means 1/2^l of the input size; its channels are `level_channels` (base·2^l, at most 320).

- ``UNETRDecoder`` (Hatamizadeh et al., generalised to any P): hidden states of evenly spaced blocks, each
  projected to its own level l = 1 … L−1 by l′ = L−l transposed-convolution steps (MONAI ``UnetrPrUpBlock``), the
  last block's normalised tokens at level L, the raw input at level 0 (``UnetrBasicBlock``), joined by U-Net
  up-steps (``UnetrUpBlock``: transposed convolution, concatenation with the skip, residual block).
- ``SFPNDecoder`` (simple feature pyramid, Li et al. ViTDet, in 3D): only the last block's tokens, brought to
  1/P × {4, 2, 1, ½} by two / one transposed convolutions, identity and max-pooling, then a U-Net-style decoder
  from the coarsest level up (transposed convolution, concatenation, two conv blocks) and plain up-steps below
  level L−2 when P > 4.
- ``UpscaleDecoder``: L up-steps from the tokens alone, each a transposed convolution (kernel = stride = 2) or
  nearest-neighbour ×2 followed by a 3×3×3 convolution (no checkerboard artefacts), then normalisation + act.
- ``MAESegmentationDecoder``: the MAE's light transformer decoder (`MAEDecoder`) with fresh weights predicting one
  logit for each voxel of each cube, put back in place by `unpatchify`.

Own convolution blocks use GroupNorm (it also normalises a single-voxel coarse level, where instance norm
cannot) and LeakyReLU(0.01) as nnU-Net does.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .encoder import EncoderOutput, tokens_to_volume
from .mae import MAEDecoder, unpatchify

MAX_CHANNELS = 320
DECODERS = ("unetr", "sfpn", "upscale-transposed", "upscale-nearest", "mae")


def up_steps(patch: int) -> int:
    """Factor-2 steps from the token grid back to full resolution: log2(patch)."""
    steps = int(round(math.log2(patch)))
    if 2 ** steps != patch:
        raise ValueError(f"the patch size must be a power of two, not {patch}")
    return steps


def level_channels(base: int, level: int) -> int:
    """Channels of a convolutional decoder at resolution level ``level`` (1/2^level of the input): base·2^level,
    at most 320."""
    return min(int(base) * 2 ** int(level), MAX_CHANNELS)


def unetr_hidden_blocks(depth: int, patch: int) -> tuple[int, ...]:
    """1-based encoder blocks whose hidden states feed UNETR levels 1 … L−1 (L = log2 patch): evenly spaced,
    ``ceil(depth·l/L)`` — for depth 12 and patch 16 the paper's blocks 3, 6, 9 (the last block feeds level L)."""
    levels = up_steps(patch)
    return tuple(max(1, math.ceil(depth * level / levels)) for level in range(1, levels))


def norm3d(channels: int) -> nn.GroupNorm:
    """GroupNorm over ``channels`` in 8 groups (or the largest of 4, 2, 1 that divides them)."""
    groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


class ConvBlock(nn.Sequential):
    """3×3×3 convolution → GroupNorm → LeakyReLU(0.01)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv3d(cin, cout, 3, padding=1, bias=False), norm3d(cout), nn.LeakyReLU(0.01, inplace=True))


class UpStep(nn.Sequential):
    """Factor-2 upsampling + GroupNorm + LeakyReLU: ``"transposed"`` (ConvTranspose3d, kernel = stride = 2) or
    ``"nearest"`` (nearest-neighbour ×2 then a 3×3×3 convolution)."""

    def __init__(self, cin: int, cout: int, mode: str = "transposed") -> None:
        if mode == "transposed":
            layers: list[nn.Module] = [nn.ConvTranspose3d(cin, cout, 2, stride=2, bias=False)]
        elif mode == "nearest":
            layers = [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv3d(cin, cout, 3, padding=1, bias=False)]
        else:
            raise ValueError(f"upsampling mode must be 'transposed' or 'nearest', not {mode!r}")
        super().__init__(*layers, norm3d(cout), nn.LeakyReLU(0.01, inplace=True))


def crop_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x`` cut to the spatial size of ``like`` (an upsampled odd-sized level is one voxel too large)."""
    d, h, w = like.shape[2:]
    return x[:, :, :d, :h, :w]


class UNETRDecoder(nn.Module):
    """UNETR decoder for any patch size (see module doc). ``hidden`` of the encoder output must hold the states of
    `unetr_hidden_blocks` (depth, patch), in that order."""

    def __init__(self, in_channels: int, width: int, patch: int, base_channels: int = 16) -> None:
        from monai.networks.blocks import UnetOutBlock, UnetrBasicBlock, UnetrPrUpBlock, UnetrUpBlock

        super().__init__()
        levels = up_steps(patch)
        ch = [level_channels(base_channels, lv) for lv in range(levels)] + [width]
        self.input_skip = UnetrBasicBlock(3, in_channels, ch[0], kernel_size=3, stride=1, norm_name="instance",
                                          res_block=True)
        self.hidden_skips = nn.ModuleList(
            UnetrPrUpBlock(3, width, ch[lv], num_layer=levels - lv - 1, kernel_size=3, stride=1,
                           upsample_kernel_size=2, norm_name="instance", conv_block=True, res_block=True)
            for lv in range(1, levels))
        self.up = nn.ModuleList(UnetrUpBlock(3, ch[lv + 1], ch[lv], kernel_size=3, upsample_kernel_size=2,
                                             norm_name="instance", res_block=True)
                                for lv in range(levels - 1, -1, -1))
        self.head = UnetOutBlock(3, ch[0], 1)

    def forward(self, x: torch.Tensor, encoded: EncoderOutput) -> torch.Tensor:
        skips = [self.input_skip(x)]
        skips += [proj(tokens_to_volume(h, encoded.grid)) for proj, h in zip(self.hidden_skips, encoded.hidden)]
        h = tokens_to_volume(encoded.tokens, encoded.grid)
        for up, skip in zip(self.up, reversed(skips)):
            h = up(h, skip)
        return self.head(h)


class _SkipUp(nn.Module):
    """U-Net up-step: transposed convolution (×2) → crop to the skip → concatenate → two conv blocks."""

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose3d(cin, cout, 2, stride=2, bias=False)
        self.conv = nn.Sequential(ConvBlock(cout + cskip, cout), ConvBlock(cout, cout))

    def forward(self, h: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([crop_to(self.up(h), skip), skip], dim=1))


def _projection(cin: int, cout: int) -> nn.Sequential:
    """ViTDet's per-level projection: 1×1×1 convolution + norm, 3×3×3 convolution + norm (+ act)."""
    return nn.Sequential(nn.Conv3d(cin, cout, 1, bias=False), norm3d(cout), ConvBlock(cout, cout))


class SFPNDecoder(nn.Module):
    """Simple feature pyramid from the last block's tokens + U-Net decoder (see module doc). Level L+1 (½ of the
    token grid) uses ceil pooling, so any token grid works (the up-steps crop back to each level's size)."""

    def __init__(self, width: int, patch: int, base_channels: int = 16) -> None:
        super().__init__()
        levels = up_steps(patch)
        self.levels = levels
        half, quarter = max(1, width // 2), max(1, width // 4)
        self.pyramid_levels = (levels - 2, levels - 1, levels, levels + 1)  # scales ×4, ×2, ×1, ×½ of the tokens
        ch = {lv: level_channels(base_channels, lv) for lv in range(levels + 2)}
        self.to_scale = nn.ModuleList([
            nn.Sequential(nn.ConvTranspose3d(width, half, 2, stride=2), norm3d(half), nn.GELU(),
                          nn.ConvTranspose3d(half, quarter, 2, stride=2)),
            nn.ConvTranspose3d(width, half, 2, stride=2),
            nn.Identity(),
            nn.MaxPool3d(2, stride=2, ceil_mode=True),
        ])
        scale_channels = (quarter, half, width, width)
        self.project = nn.ModuleList(_projection(c, ch[lv]) for c, lv in zip(scale_channels, self.pyramid_levels))
        self.up_with_skip = nn.ModuleList(_SkipUp(ch[lv + 1], ch[lv], ch[lv]) for lv in (levels, levels - 1, levels - 2))
        self.up_plain = nn.ModuleList(UpStep(ch[lv + 1], ch[lv]) for lv in range(levels - 3, -1, -1))
        self.head = nn.Conv3d(ch[0], 1, 1)

    def forward(self, x: torch.Tensor, encoded: EncoderOutput) -> torch.Tensor:
        tokens = tokens_to_volume(encoded.tokens, encoded.grid)
        pyramid = [proj(scale(tokens)) for scale, proj in zip(self.to_scale, self.project)]
        h = pyramid[-1]
        for up, skip in zip(self.up_with_skip, reversed(pyramid[:-1])):
            h = up(h, skip)
        for up in self.up_plain:
            h = up(h)
        return self.head(h)


class UpscaleDecoder(nn.Module):
    """log2(P) up-steps (`UpStep`, ``mode`` "transposed" | "nearest") from the last block's tokens, then a 1×1×1
    head."""

    def __init__(self, width: int, patch: int, base_channels: int = 16, mode: str = "transposed") -> None:
        super().__init__()
        levels = up_steps(patch)
        ch = [level_channels(base_channels, lv) for lv in range(levels)] + [width]
        self.steps = nn.Sequential(*(UpStep(ch[lv + 1], ch[lv], mode) for lv in range(levels - 1, -1, -1)))
        self.head = nn.Conv3d(ch[0], 1, 1)

    def forward(self, x: torch.Tensor, encoded: EncoderOutput) -> torch.Tensor:
        return self.head(self.steps(tokens_to_volume(encoded.tokens, encoded.grid)))


class MAESegmentationDecoder(nn.Module):
    """The MAE transformer decoder (freshly initialised) predicting P³ logits per cube, un-patchified to voxels."""

    def __init__(self, width: int, patch: int, decoder_width: int, decoder_depth: int, decoder_heads: int,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.patch = patch
        self.transformer = MAEDecoder(width, decoder_width, decoder_depth, decoder_heads, patch, 1, mlp_ratio)

    def forward(self, x: torch.Tensor, encoded: EncoderOutput) -> torch.Tensor:
        cubes = self.transformer(encoded.tokens, encoded.grid)
        return unpatchify(cubes, self.patch, encoded.grid, 1)


def build_decoder(name: str, *, in_channels: int, width: int, patch: int, base_channels: int,
                  decoder_width: int, decoder_depth: int, decoder_heads: int, mlp_ratio: float) -> nn.Module:
    """The decoder called ``name`` (one of `DECODERS`) for an encoder of ``width`` and ``patch``."""
    if name == "unetr":
        return UNETRDecoder(in_channels, width, patch, base_channels)
    if name == "sfpn":
        return SFPNDecoder(width, patch, base_channels)
    if name in ("upscale-transposed", "upscale-nearest"):
        return UpscaleDecoder(width, patch, base_channels, name.split("-")[1])
    if name == "mae":
        return MAESegmentationDecoder(width, patch, decoder_width, decoder_depth, decoder_heads, mlp_ratio)
    raise ValueError(f"unknown decoder {name!r}; choose one of {', '.join(DECODERS)}")


def hidden_blocks_for(name: str, depth: int, patch: int) -> Sequence[int]:
    """Encoder blocks whose hidden states the decoder ``name`` needs (UNETR only)."""
    return unetr_hidden_blocks(depth, patch) if name == "unetr" else ()
