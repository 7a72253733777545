"""Depth-Sequence Transformer (DST, Hou et al.): six landmark distributions over the axial slices of a CT.

Pipeline (paper §II-C…F):

1. **Slice-wise encoder** — residual 3D conv blocks with stride 1 along the slices and 2 in-plane (torch
   ``[N, C, D, H, W]`` stride ``(1, 2, 2)``; the paper's ``(2, 2, 1)`` in (x, y, z)), so every slice is kept;
   then spatial (H, W) average pooling → one C-vector per slice → linear projection to ``dim``.
2. **Sequence preparation** — tokens are **left-padded** to the fixed length ``max_slices`` (L) with a boolean
   key-padding mask (True = padding); a positional embedding (sinusoidal or learned) is added; optionally a
   [CLS] token is prepended and an embedding of the slice spacing (mm) added to every token.
3. **DepthAttentionBlocks** — pre-norm residual blocks: multi-head self-attention (padding keys masked) →
   depthwise 1D convolution along the sequence (padding zeroed) → MLP.
4. **Localisation head** — Linear(dim → 6) per slice token → logits ``[B, L, 6]``; padded positions are −inf,
   so a softmax over the slice axis (dim 1) gives each landmark a distribution over the real slices only.

Slices are ordered inferior → superior (increasing k on an axial LPS grid). A sequence of ``D`` slices occupies
positions ``L − D … L − 1``; slice k sits at position ``k + (L − D)``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .unet import ResidualBlock

N_LANDMARKS = 6


class SliceEncoder(nn.Module):
    """``[1, C_in, D, H, W]`` → ``[D, features[-1]]``: residual blocks with stride (1, 2, 2), then H×W pooling."""

    def __init__(self, in_channels: int, features: Sequence[int]) -> None:
        super().__init__()
        blocks, cin = [], in_channels
        for cout in features:
            blocks.append(ResidualBlock(cin, cout, (1, 2, 2)))
            cin = cout
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(x)                      # [1, C, D, h, w]
        return h.mean(dim=(3, 4))[0].transpose(0, 1)  # [D, C]


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """The transformer's sin/cos table ``[length, dim]``."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return table


class DepthAttentionBlock(nn.Module):
    """Convolution-enhanced self-attention block (pre-norm, residual): MHSA → depthwise conv1d → MLP."""

    def __init__(self, dim: int, heads: int, conv_kernel: int = 5, mlp_ratio: float = 2.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_conv = nn.LayerNorm(dim)
        self.conv = nn.Conv1d(dim, dim, conv_kernel, padding=conv_kernel // 2, groups=dim)
        self.norm_mlp = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, pad: torch.Tensor, n_prefix: int = 0) -> torch.Tensor:
        """``x`` ``[B, T, dim]``; ``pad`` ``[B, T]`` True at padding; the first ``n_prefix`` tokens ([CLS])
        take part in attention but not in the convolution along the slices."""
        h = self.norm_attn(x)
        x = x + self.attn(h, h, h, key_padding_mask=pad, need_weights=False)[0]
        h = self.norm_conv(x[:, n_prefix:]).masked_fill(pad[:, n_prefix:, None], 0.0)
        conv = self.conv(h.transpose(1, 2)).transpose(1, 2)
        x = torch.cat([x[:, :n_prefix], x[:, n_prefix:] + conv], dim=1)
        return x + self.mlp(self.norm_mlp(x))


class DepthSequenceTransformer(nn.Module):
    """The DST. `forward` takes a list of per-case volumes ``[C, D_b, H, W]`` (D_b ≤ max_slices) and returns
    (logits ``[B, L, 6]`` with −inf at padding, padding mask ``[B, L]``)."""

    def __init__(self, in_channels: int = 2, encoder_features: Sequence[int] = (16, 32, 48, 64, 96),
                 dim: int = 128, depth: int = 4, heads: int = 4, conv_kernel: int = 5, mlp_ratio: float = 2.0,
                 max_slices: int = 320, positional: str = "sinusoidal", use_cls: bool = False,
                 spacing_embedding: bool = True, dropout: float = 0.1, n_landmarks: int = N_LANDMARKS) -> None:
        super().__init__()
        if positional not in ("sinusoidal", "learned"):
            raise ValueError("positional must be 'sinusoidal' or 'learned'")
        self.config = {"in_channels": in_channels, "encoder_features": [int(f) for f in encoder_features],
                       "dim": dim, "depth": depth, "heads": heads, "conv_kernel": conv_kernel,
                       "mlp_ratio": mlp_ratio, "max_slices": max_slices, "positional": positional,
                       "use_cls": use_cls, "spacing_embedding": spacing_embedding, "dropout": dropout,
                       "n_landmarks": n_landmarks}
        self.max_slices = int(max_slices)
        self.encoder = SliceEncoder(in_channels, encoder_features)
        self.project = nn.Sequential(nn.Linear(encoder_features[-1], dim), nn.LayerNorm(dim))
        if positional == "learned":
            self.positions = nn.Parameter(torch.zeros(self.max_slices, dim))
            nn.init.trunc_normal_(self.positions, std=0.02)
        else:
            self.register_buffer("positions", sinusoidal_positions(self.max_slices, dim), persistent=False)
        self.spacing = nn.Linear(1, dim) if spacing_embedding else None
        self.cls = nn.Parameter(torch.zeros(1, 1, dim)) if use_cls else None
        self.blocks = nn.ModuleList(DepthAttentionBlock(dim, heads, conv_kernel, mlp_ratio, dropout)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_landmarks)

    def encode(self, volumes: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-case ``[C, D_b, H, W]`` → left-padded tokens ``[B, L, dim]`` (zeros at padding), mask ``[B, L]``."""
        L = self.max_slices
        rows, pads = [], []
        for vol in volumes:
            d = int(vol.shape[1])
            if not 0 < d <= L:
                raise ValueError(f"a volume has {d} slices; the model takes 1..{L}")
            tok = self.project(self.encoder(vol[None]))
            rows.append(F.pad(tok, (0, 0, L - d, 0)))
            pads.append(torch.arange(L, device=vol.device) < L - d)
        return torch.stack(rows), torch.stack(pads)

    def forward_tokens(self, tokens: torch.Tensor, pad: torch.Tensor,
                       spacing_mm: torch.Tensor | None = None) -> torch.Tensor:
        """Left-padded tokens ``[B, L, dim]`` + mask ``[B, L]`` (+ slice spacing ``[B]`` mm) → logits ``[B, L, 6]``.

        Padded positions get −inf and do not influence real positions whatever their content."""
        x = tokens + self.positions[None].to(tokens.dtype)
        if self.spacing is not None:
            if spacing_mm is None:
                raise ValueError("this model needs the slice spacing (mm) of each case")
            x = x + self.spacing(spacing_mm.to(x.dtype)[:, None] / 5.0)[:, None, :]
        x = x.masked_fill(pad[..., None], 0.0)
        n_prefix = 0
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
            pad = torch.cat([torch.zeros_like(pad[:, :1]), pad], dim=1)
            n_prefix = 1
        for block in self.blocks:
            x = block(x, pad, n_prefix)
        logits = self.head(self.norm(x[:, n_prefix:]))
        return logits.masked_fill(pad[:, n_prefix:, None], float("-inf"))

    def forward(self, volumes: Sequence[torch.Tensor],
                spacing_mm: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, pad = self.encode(volumes)
        return self.forward_tokens(tokens, pad, spacing_mm), pad


def landmark_loss(logits: torch.Tensor, targets: torch.Tensor, n_slices: torch.Tensor) -> torch.Tensor:
    """Sum over landmarks of the cross-entropy over slices, mean over the batch.

    ``logits`` ``[B, L, N]`` (left-padded), ``targets`` ``[B, N]`` slice indices k on each case's own grid,
    ``n_slices`` ``[B]`` real slice counts; the target position is ``k + (L − D_b)``."""
    B, L, N = logits.shape
    pos = targets.long() + (L - n_slices.long())[:, None]
    return F.cross_entropy(logits.permute(0, 2, 1).reshape(B * N, L), pos.reshape(-1), reduction="sum") / B


def decode_slices(logits: torch.Tensor, n_slices: torch.Tensor) -> dict[str, torch.Tensor]:
    """Logits ``[B, L, N]`` → per landmark: ``slice`` (argmax, index on the case grid), ``expected`` (mean
    index under the distribution), ``confidence`` (peak probability), ``prob`` ``[B, L, N]``."""
    L = logits.shape[1]
    prob = torch.softmax(logits.float(), dim=1)
    offset = (L - n_slices.long())[:, None]
    peak, arg = prob.max(dim=1)
    positions = torch.arange(L, device=logits.device, dtype=torch.float32)[None, :, None]
    expected = (prob * positions).sum(dim=1)
    return {"slice": arg - offset, "expected": expected - offset.float(), "confidence": peak, "prob": prob}


def build_dst(params: dict[str, Any]) -> DepthSequenceTransformer:
    """A `DepthSequenceTransformer` from its config ``params``."""
    return DepthSequenceTransformer(**params)
