"""`ViTSegmenter`: a 3D ViT encoder (ViTiac, `ViTEncoder`) with one of four segmentation decoders (Jin et al.).

The network follows the engine's segmenter interface: input ``[B, C, D, H, W]`` = windowed CT channels
(`iacseg.models.segmenter.segmenter_input`) on the CT's own voxel grid (k, j, i), D, H, W multiples of the patch
size (`divisor`); output one calcification logit per voxel ``[B, 1, D, H, W]``. Its encoder's state-dict keys are
``encoder.*`` exactly as in `MAE3D`, so an MAE's encoder (`iacseg.models.vit.mae.encoder_state`) loads into
``net.encoder`` unchanged. Decoders: see `iacseg.models.vit.decoders`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .decoders import DECODERS, build_decoder, hidden_blocks_for
from .encoder import PATCH_SIZES, ViTEncoder, vit_config


class ViTSegmenter(nn.Module):
    """ViT encoder (``encoder``) + segmentation decoder (``decoder``: "unetr", "sfpn", "upscale-transposed",
    "upscale-nearest" or "mae").

    ``width``/``depth``/``heads``/``mlp_ratio``: the encoder (a ViTiac configuration); ``patch``: cube edge in
    voxels (4, 8, 16); ``decoder_channels``: channels of the convolutional decoders at full resolution (doubling
    per halving, at most 320); ``decoder_width``/``decoder_depth``/``decoder_heads``: the MAE decoder's
    transformer (used by "mae" only). ``deep_supervision`` is accepted for the trainer's interface and changes
    nothing: every decoder returns one full-resolution output."""

    def __init__(self, in_channels: int = 2, patch: int = 8, width: int = 240, depth: int = 12, heads: int = 12,
                 mlp_ratio: float = 4.0, decoder: str = "unetr", decoder_channels: int = 16,
                 decoder_width: int = 120, decoder_depth: int = 8, decoder_heads: int = 12,
                 deep_supervision: bool = False) -> None:
        super().__init__()
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
        if patch not in PATCH_SIZES:
            raise ValueError(f"patch size must be one of {PATCH_SIZES} voxels, not {patch}")
        if decoder_channels < 1:
            raise ValueError(f"decoder_channels must be positive, not {decoder_channels}")
        self.config: dict[str, Any] = {
            "in_channels": int(in_channels), "patch": int(patch), "width": int(width), "depth": int(depth),
            "heads": int(heads), "mlp_ratio": float(mlp_ratio), "decoder": decoder,
            "decoder_channels": int(decoder_channels), "decoder_width": int(decoder_width),
            "decoder_depth": int(decoder_depth), "decoder_heads": int(decoder_heads),
            "deep_supervision": bool(deep_supervision)}
        self.patch, self.decoder_name = int(patch), decoder
        self.deep_supervision = bool(deep_supervision)
        self.encoder = ViTEncoder(in_channels, patch, width, depth, heads, mlp_ratio)
        self.hidden_blocks = tuple(hidden_blocks_for(decoder, depth, patch))
        self.decoder = build_decoder(decoder, in_channels=in_channels, width=width, patch=patch,
                                     base_channels=decoder_channels, decoder_width=decoder_width,
                                     decoder_depth=decoder_depth, decoder_heads=decoder_heads, mlp_ratio=mlp_ratio)

    @property
    def divisor(self) -> tuple[int, int, int]:
        """Input sizes (k, j, i) must be multiples of these: the patch size along each axis."""
        return (self.patch, self.patch, self.patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, D, H, W]`` (D, H, W multiples of the patch) → logits ``[B, 1, D, H, W]``."""
        return self.decoder(x, self.encoder(x, hidden_blocks=self.hidden_blocks))


def vit_segmenter_params(config: str = "S", patch: int = 8, decoder: str = "unetr", in_channels: int = 2,
                         decoder_channels: int = 16) -> dict[str, Any]:
    """`ViTSegmenter` parameters of a named ViTiac configuration ("tiny", "S", "M", "L") trained from scratch."""
    sizes = vit_config(config).params()
    return {"in_channels": int(in_channels), "patch": int(patch), **sizes, "decoder": decoder,
            "decoder_channels": int(decoder_channels)}


def mae_segmenter_params(mae_params: dict[str, Any], decoder: str = "unetr",
                         decoder_channels: int = 16) -> dict[str, Any]:
    """`ViTSegmenter` parameters matching an MAE's (``config.json["architecture"]["params"]`` of a "mae" model):
    its input channels, patch, encoder and MAE-decoder sizes; the segmentation decoder's weights start fresh."""
    keys = ("in_channels", "patch", "width", "depth", "heads", "mlp_ratio", "decoder_width", "decoder_depth",
            "decoder_heads")
    return {**{k: mae_params[k] for k in keys if k in mae_params}, "decoder": decoder,
            "decoder_channels": int(decoder_channels)}


def build_vit_segmenter(params: dict[str, Any]) -> ViTSegmenter:
    """`ViTSegmenter` from its ``config`` dict (builder of architecture "ViTSegmenter")."""
    return ViTSegmenter(**params)
