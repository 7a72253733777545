"""Residual-encoder 3D U-Net in the nnU-Net ResEnc style, sized to run on a laptop CPU.

Tensors are ``[N, C, D, H, W]`` = ``[batch, channels, k, j, i]`` (slices, rows, columns of an axial LPS grid).
Encoder stages are residual blocks (conv–IN–LeakyReLU–conv–IN + skip, then LeakyReLU); stage ``s > 0`` starts
with a strided block. The decoder upsamples by transposed convolution (kernel = stride), concatenates the
skip, and applies one conv–IN–LeakyReLU block per stage, as nnU-Net's ResEnc decoder does. The output is one
logit per voxel (binary calcification). With ``deep_supervision`` the forward pass returns the full-resolution
logits followed by lower-resolution logits (training only).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

Stride = tuple[int, int, int]


def _conv(cin: int, cout: int, stride: Stride = (1, 1, 1), kernel: int = 3) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)


class ConvNormAct(nn.Sequential):
    """3×3×3 convolution → instance norm (affine) → LeakyReLU(0.01)."""

    def __init__(self, cin: int, cout: int, stride: Stride = (1, 1, 1)) -> None:
        super().__init__(_conv(cin, cout, stride), nn.InstanceNorm3d(cout, affine=True),
                         nn.LeakyReLU(0.01, inplace=True))


class ResidualBlock(nn.Module):
    """Basic residual block: conv(stride)–IN–act–conv–IN, plus a (strided 1×1×1) projection skip, then act."""

    def __init__(self, cin: int, cout: int, stride: Stride = (1, 1, 1)) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(cin, cout, stride)
        self.conv2 = nn.Sequential(_conv(cout, cout), nn.InstanceNorm3d(cout, affine=True))
        self.skip: nn.Module = nn.Identity()
        if cin != cout or any(s != 1 for s in stride):
            self.skip = nn.Sequential(nn.Conv3d(cin, cout, 1, stride=stride, bias=False),
                                      nn.InstanceNorm3d(cout, affine=True))
        self.act = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.skip(x))


class ResEncUNet(nn.Module):
    """Residual-encoder U-Net.

    ``features[s]`` channels and ``strides[s]`` (k, j, i) downsampling at stage ``s`` (``strides[0]`` is the
    stem's, normally (1, 1, 1)); ``blocks[s]`` residual blocks per encoder stage. Input sizes must be
    divisible by `divisor` along each axis.
    """

    def __init__(self, in_channels: int = 2, features: Sequence[int] = (8, 16, 32, 64),
                 strides: Sequence[Sequence[int]] = ((1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2)),
                 blocks: Sequence[int] = (1, 1, 2, 2), deep_supervision: bool = False) -> None:
        super().__init__()
        if not (len(features) == len(strides) == len(blocks)):
            raise ValueError("features, strides and blocks need one entry per level")
        self.config = {"in_channels": int(in_channels), "features": [int(f) for f in features],
                       "strides": [[int(s) for s in st] for st in strides], "blocks": [int(b) for b in blocks],
                       "deep_supervision": bool(deep_supervision)}
        strides_t = [tuple(int(s) for s in st) for st in strides]
        self.strides = strides_t
        self.deep_supervision = deep_supervision
        self.stem = ConvNormAct(in_channels, features[0], strides_t[0])  # type: ignore[arg-type]
        self.encoder = nn.ModuleList()
        cin = features[0]
        for s, (cout, n) in enumerate(zip(features, blocks)):
            stage = [ResidualBlock(cin, cout, strides_t[s] if s > 0 else (1, 1, 1))]  # type: ignore[arg-type]
            stage += [ResidualBlock(cout, cout) for _ in range(n - 1)]
            self.encoder.append(nn.Sequential(*stage))
            cin = cout
        self.upsample = nn.ModuleList()
        self.decoder = nn.ModuleList()
        self.heads = nn.ModuleList()
        for s in range(len(features) - 1, 0, -1):
            st = strides_t[s]
            self.upsample.append(nn.ConvTranspose3d(features[s], features[s - 1], st, stride=st, bias=False))
            self.decoder.append(ConvNormAct(2 * features[s - 1], features[s - 1]))
            self.heads.append(nn.Conv3d(features[s - 1], 1, 1))

    @property
    def divisor(self) -> tuple[int, int, int]:
        """Input sizes (k, j, i) must be multiples of these (product of the strides)."""
        return stride_product(self.strides)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's stage outputs for ``[N, C, D, H, W]``: one ``[N, features[s], …]`` map per stage, finest
        first (the decoder's skips; the last is the bottleneck)."""
        return encode_stages(self.stem, self.encoder, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """``[N, C, D, H, W]`` → logits ``[N, 1, D, H, W]`` (list of coarser ones too with deep supervision)."""
        skips = self.encode(x)
        outs = []
        h = skips[-1]
        for n, (up, dec, head) in enumerate(zip(self.upsample, self.decoder, self.heads)):
            h = dec(torch.cat([up(h), skips[-2 - n]], dim=1))
            if self.deep_supervision and self.training:
                outs.append(head(h))
        if self.deep_supervision and self.training:
            return outs[::-1]
        return self.heads[-1](h)


def stride_product(strides: Sequence[Sequence[int]]) -> tuple[int, int, int]:
    """Product of the stage strides along (k, j, i): the divisor of valid input sizes."""
    d = [1, 1, 1]
    for st in strides:
        d = [a * int(b) for a, b in zip(d, st)]
    return (d[0], d[1], d[2])


def encode_stages(stem: nn.Module, stages: nn.ModuleList, x: torch.Tensor) -> list[torch.Tensor]:
    """Run the stem, then each encoder stage in turn; every stage's output, finest first."""
    feats = []
    h = stem(x)
    for stage in stages:
        h = stage(h)
        feats.append(h)
    return feats


class ResEncEncoder(nn.Module):
    """The encoder of a `ResEncUNet` alone (stem + stages; no decoder), for self-supervised pre-training.

    Built from the same parameters as the U-Net, its state-dict keys (``stem.*``, ``encoder.*``) are exactly the
    U-Net's encoder keys, so its weights load into a `ResEncUNet` of that configuration (see
    `iacseg.train.networks.load_encoder_weights`). ``forward`` returns every stage's output, finest first.
    ``deep_supervision`` is accepted (and ignored) so a U-Net's stored parameters build it unchanged.
    """

    def __init__(self, in_channels: int = 2, features: Sequence[int] = (8, 16, 32, 64),
                 strides: Sequence[Sequence[int]] = ((1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2)),
                 blocks: Sequence[int] = (1, 1, 2, 2), deep_supervision: bool = False) -> None:
        super().__init__()
        full = ResEncUNet(in_channels, features, strides, blocks)  # one construction path for both modules
        self.stem, self.encoder = full.stem, full.encoder
        self.strides = full.strides
        self.config = {k: v for k, v in full.config.items() if k != "deep_supervision"}

    @property
    def divisor(self) -> tuple[int, int, int]:
        """Input sizes (k, j, i) must be multiples of these (product of the strides)."""
        return stride_product(self.strides)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # type: ignore[override]
        """``[N, C, D, H, W]`` → the stage outputs ``[N, features[s], …]``, finest first."""
        return encode_stages(self.stem, self.encoder, x)


def build_unet_encoder(params: dict[str, Any]) -> ResEncEncoder:
    """A `ResEncEncoder` from U-Net parameters (``config.json["architecture"]["params"]`` of a desd-encoder)."""
    return ResEncEncoder(**params)


def build_unet(params: dict[str, Any]) -> ResEncUNet:
    """A `ResEncUNet` from its config ``params`` (as stored in ``config.json["architecture"]["params"]``)."""
    return ResEncUNet(**params)
