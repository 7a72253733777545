"""3D Vision Transformer encoder for CT cubes (Jin et al., ViTiac): cubes as tokens, fixed 3D sin-cos positions.

Tensors are ``[B, C, D, H, W]`` = ``[batch, channels, k, j, i]`` (slices, rows, columns of an axial LPS grid,
voxels — the CT's own grid, not mm). A cube of ``patch``³ voxels becomes one token; tokens are numbered in
raster order of the token grid ``(gd, gh, gw)`` = ``(D, H, W) / patch`` (k slowest, i fastest), the order of
`volume_to_tokens` and of `iacseg.models.vit.mae.patchify`.

The position embedding is not learned: each third of the width encodes one axis (k, j, i) with sines and
cosines (MAE's 2D sin-cos extended to 3D), so any input size divisible by the patch works without
interpolation, and the width must be divisible by 6.

Blocks are pre-norm transformer blocks (LayerNorm → multi-head self-attention → residual; LayerNorm → GELU MLP →
residual), PyTorch's ``nn.TransformerEncoderLayer(norm_first=True)``. (MONAI's ``TransformerBlock`` computes the
same thing but needs ``einops``, which IACSeg does not depend on.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple, Sequence

import torch
from torch import nn

PATCH_SIZES = (4, 8, 16)


@dataclass(frozen=True)
class ViTConfig:
    """Encoder and MAE-decoder sizes: widths (token channels), depths (blocks) and attention heads."""

    width: int
    depth: int
    heads: int
    decoder_width: int
    decoder_depth: int
    decoder_heads: int
    mlp_ratio: float = 4.0

    def params(self) -> dict[str, Any]:
        return asdict(self)


#: ViTiac-S/M/L from Jin et al. (supplementary Table 1) and a tiny one for tests.
VIT_CONFIGS: dict[str, ViTConfig] = {
    "tiny": ViTConfig(width=48, depth=2, heads=4, decoder_width=24, decoder_depth=1, decoder_heads=4),
    "S": ViTConfig(width=240, depth=12, heads=12, decoder_width=120, decoder_depth=8, decoder_heads=12),
    "M": ViTConfig(width=480, depth=12, heads=12, decoder_width=240, decoder_depth=8, decoder_heads=12),
    "L": ViTConfig(width=960, depth=12, heads=12, decoder_width=480, decoder_depth=8, decoder_heads=12),
}


def vit_config(name: str) -> ViTConfig:
    """The named configuration ("tiny", "S", "M", "L"; "ViTiac-S" etc. also accepted)."""
    key = name.removeprefix("ViTiac-")
    if key not in VIT_CONFIGS:
        raise ValueError(f"unknown ViT configuration {name!r}; choose one of {', '.join(VIT_CONFIGS)}")
    return VIT_CONFIGS[key]


def sincos_position_embedding_3d(grid: Sequence[int], width: int, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed 3D sin-cos positions ``[gd·gh·gw, width]`` (float32) for a token grid ``(gd, gh, gw)``.

    Channels ``[0, width/3)`` encode the k index, the next third j, the last third i; within each third the first
    half is ``sin(index·ω_f)``, the second ``cos(index·ω_f)`` with ``ω_f = temperature^(−f/(width/6))``.
    Raises ``ValueError`` when ``width`` is not divisible by 6 (3 axes × a sin/cos pair)."""
    if width <= 0 or width % 6:
        suggestion = max(6, 6 * round(width / 6))
        raise ValueError(f"3D sin-cos positions need a token width divisible by 6 (3 axes × sin and cos); "
                         f"{width} is not — use e.g. {suggestion}")
    if len(grid) != 3 or min(grid) < 1:
        raise ValueError(f"the token grid must be three positive sizes (gd, gh, gw), not {tuple(grid)}")
    half = width // 6
    omega = 1.0 / temperature ** (torch.arange(half, dtype=torch.float64) / half)
    axes = torch.meshgrid(*(torch.arange(int(n), dtype=torch.float64) for n in grid), indexing="ij")
    parts = []
    for coord in axes:
        angle = coord.reshape(-1, 1) * omega.reshape(1, -1)
        parts += [torch.sin(angle), torch.cos(angle)]
    return torch.cat(parts, dim=1).float()


def token_grid(spatial: Sequence[int], patch: int) -> tuple[int, int, int]:
    """Token grid ``(gd, gh, gw)`` of an input of ``spatial`` = (D, H, W) voxels; ``ValueError`` when a size is
    not a positive multiple of ``patch``."""
    if len(spatial) != 3 or any(int(s) % patch or int(s) < patch for s in spatial):
        raise ValueError(f"the input size {tuple(int(s) for s in spatial)} (slices, rows, columns) must be a "
                         f"positive multiple of the patch size {patch} along every axis; pad or crop it")
    return (int(spatial[0]) // patch, int(spatial[1]) // patch, int(spatial[2]) // patch)


def tokens_to_volume(tokens: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """Tokens ``[B, N, W]`` (raster order of ``grid``) → feature volume ``[B, W, gd, gh, gw]``."""
    b, n, w = tokens.shape
    if n != grid[0] * grid[1] * grid[2]:
        raise ValueError(f"{n} tokens do not fill a token grid {tuple(grid)}; give all tokens (no masking)")
    return tokens.transpose(1, 2).reshape(b, w, *grid)


def volume_to_tokens(volume: torch.Tensor) -> torch.Tensor:
    """Feature volume ``[B, W, gd, gh, gw]`` → tokens ``[B, gd·gh·gw, W]`` in raster order."""
    return volume.flatten(2).transpose(1, 2)


def transformer_block(width: int, heads: int, mlp_ratio: float = 4.0) -> nn.TransformerEncoderLayer:
    """One pre-norm transformer block on ``[B, N, width]`` tokens (no dropout, GELU MLP of ``mlp_ratio``·width)."""
    if width % heads:
        raise ValueError(f"the token width {width} must be divisible by the number of attention heads {heads}")
    return nn.TransformerEncoderLayer(width, heads, dim_feedforward=int(round(width * mlp_ratio)), dropout=0.0,
                                      activation="gelu", batch_first=True, norm_first=True)


class EncoderOutput(NamedTuple):
    """What `ViTEncoder` returns.

    ``tokens``: final tokens after the last LayerNorm ``[B, K, width]`` (K = all N tokens, or the kept ones in
    the order of ``keep_indices``); ``hidden``: the outputs of the requested blocks (before the final norm), same
    shape, in the order requested; ``grid``: the full token grid ``(gd, gh, gw)``."""

    tokens: torch.Tensor
    hidden: list[torch.Tensor]
    grid: tuple[int, int, int]


class ViTEncoder(nn.Module):
    """3D ViT encoder: cube patch embedding (``Conv3d`` kernel = stride = ``patch``) + fixed 3D sin-cos positions
    + ``depth`` pre-norm transformer blocks + final LayerNorm.

    Input ``[B, in_channels, D, H, W]`` with D, H, W multiples of ``patch`` (any size)."""

    def __init__(self, in_channels: int = 2, patch: int = 8, width: int = 240, depth: int = 12, heads: int = 12,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if patch not in PATCH_SIZES:
            raise ValueError(f"patch size must be one of {PATCH_SIZES} voxels, not {patch}")
        sincos_position_embedding_3d((1, 1, 1), width)  # refuse a width that 3D sin-cos cannot encode, now
        self.in_channels, self.patch, self.width, self.depth, self.heads = in_channels, patch, width, depth, heads
        self.mlp_ratio = mlp_ratio
        self.patch_embed = nn.Conv3d(in_channels, width, kernel_size=patch, stride=patch)
        self.blocks = nn.ModuleList(transformer_block(width, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self._positions: dict[tuple, torch.Tensor] = {}
        self.reset_parameters()

    @property
    def config(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels, "patch": self.patch, "width": self.width, "depth": self.depth,
                "heads": self.heads, "mlp_ratio": self.mlp_ratio}

    def reset_parameters(self) -> None:
        """MAE initialisation: Xavier-uniform linear layers and patch embedding (as a linear map), zero biases."""
        w = self.patch_embed.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def positions(self, grid: Sequence[int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Sin-cos position embedding ``[1, N, width]`` of a token grid (cached per grid, device and dtype)."""
        key = (tuple(grid), str(device), dtype)
        if key not in self._positions:
            self._positions[key] = sincos_position_embedding_3d(grid, self.width).to(device, dtype)[None]
        return self._positions[key]

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """Input ``[B, C, D, H, W]`` → (all tokens with positions ``[B, N, width]``, token grid)."""
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"the encoder takes [B, {self.in_channels}, D, H, W] input, not {tuple(x.shape)}")
        grid = token_grid(x.shape[2:], self.patch)
        tokens = volume_to_tokens(self.patch_embed(x))
        return tokens + self.positions(grid, tokens.device, tokens.dtype), grid

    def forward(self, x: torch.Tensor, keep_indices: torch.Tensor | None = None,
                hidden_blocks: Sequence[int] = ()) -> EncoderOutput:
        """Encode ``x`` ``[B, C, D, H, W]``.

        ``keep_indices`` ``[B, K]`` (int64 token numbers) runs the blocks on those tokens only (MAE); None = all.
        ``hidden_blocks``: 1-based block numbers whose outputs to return (e.g. (3, 6, 9, 12) for UNETR)."""
        tokens, grid = self.embed(x)
        if keep_indices is not None:
            index = keep_indices.to(tokens.device).long().unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
            tokens = torch.gather(tokens, 1, index)
        wanted = [int(b) for b in hidden_blocks]
        if any(b < 1 or b > self.depth for b in wanted):
            raise ValueError(f"hidden_blocks must be block numbers 1..{self.depth}, not {wanted}")
        hidden: dict[int, torch.Tensor] = {}
        for number, block in enumerate(self.blocks, start=1):
            tokens = block(tokens)
            if number in wanted:
                hidden[number] = tokens
        return EncoderOutput(self.norm(tokens), [hidden[b] for b in wanted], grid)


def build_vit_encoder(params: dict[str, Any]) -> ViTEncoder:
    """`ViTEncoder` from its ``config`` dict (in_channels, patch, width, depth, heads, mlp_ratio)."""
    return ViTEncoder(**params)
