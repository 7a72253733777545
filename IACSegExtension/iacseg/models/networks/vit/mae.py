"""3D masked autoencoder (MAE, He et al.; 3D as in Jin et al.) and its residual maps (Wang et al., GRCSF).

Pre-training: a random ``mask_ratio`` (90 %) of the cube tokens is hidden; the `ViTEncoder` sees only the kept
tokens; a light transformer decoder (`MAEDecoder`: its own width, sin-cos positions and a learned mask token in
the hidden places) predicts every cube's voxels; the loss is the mean squared error on the hidden cubes only,
against targets normalised per cube and channel (zero mean, unit variance: "pixel normalisation").

Shapes: input ``[B, C, D, H, W]`` (C intensity windows in 0..1, D, H, W multiples of the patch P); cube vectors
``[B, N, C·P³]`` in token raster order (`patchify`), each vector ordered (channel, k, j, i).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import torch
from torch import nn

from .encoder import ViTEncoder, sincos_position_embedding_3d, token_grid, transformer_block

NORM_EPS = 1e-6


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """Volume ``[B, C, D, H, W]`` → cube vectors ``[B, N, C·P³]`` (tokens in raster order, see module doc)."""
    b, c = x.shape[:2]
    gd, gh, gw = token_grid(x.shape[2:], patch)
    t = x.reshape(b, c, gd, patch, gh, patch, gw, patch)
    return t.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(b, gd * gh * gw, c * patch ** 3)


def unpatchify(cubes: torch.Tensor, patch: int, grid: Sequence[int], channels: int) -> torch.Tensor:
    """Cube vectors ``[B, N, C·P³]`` → volume ``[B, C, gd·P, gh·P, gw·P]`` (inverse of `patchify`)."""
    b = cubes.shape[0]
    gd, gh, gw = (int(g) for g in grid)
    t = cubes.reshape(b, gd, gh, gw, channels, patch, patch, patch)
    return t.permute(0, 4, 1, 5, 2, 6, 3, 7).reshape(b, channels, gd * patch, gh * patch, gw * patch)


def normalise_cubes(cubes: torch.Tensor, channels: int) -> torch.Tensor:
    """Each cube's voxels of each channel → zero mean, unit variance (``[B, N, C·P³]`` in and out)."""
    t = cubes.reshape(*cubes.shape[:2], channels, -1)
    mean, var = t.mean(-1, keepdim=True), t.var(-1, keepdim=True, unbiased=False)
    return ((t - mean) / torch.sqrt(var + NORM_EPS)).reshape(cubes.shape)


def denormalise_cubes(normalised: torch.Tensor, reference: torch.Tensor, channels: int) -> torch.Tensor:
    """Undo `normalise_cubes` with the mean and variance of each ``reference`` cube (same shape)."""
    ref = reference.reshape(*reference.shape[:2], channels, -1)
    mean, var = ref.mean(-1, keepdim=True), ref.var(-1, keepdim=True, unbiased=False)
    out = normalised.reshape(ref.shape) * torch.sqrt(var + NORM_EPS) + mean
    return out.reshape(reference.shape)


def kept_count(n_tokens: int, mask_ratio: float) -> int:
    """Tokens left visible: ``round((1 − mask_ratio)·N)``, at least 1."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"the mask ratio must be in [0, 1), not {mask_ratio}")
    return max(1, int(round((1.0 - mask_ratio) * n_tokens)))


def random_masking(batch: int, n_tokens: int, mask_ratio: float, generator: torch.Generator | None = None,
                   device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A uniformly random set of visible tokens per sample.

    Returns ``(keep_indices [B, K] int64, ascending; mask [B, N] bool, True = hidden)`` with
    K = `kept_count` (n_tokens, mask_ratio). Random numbers come from ``generator`` (CPU) when given."""
    k = kept_count(n_tokens, mask_ratio)
    noise = torch.rand(batch, n_tokens, generator=generator)
    keep = torch.sort(torch.argsort(noise, dim=1)[:, :k], dim=1).values
    mask = torch.ones(batch, n_tokens, dtype=torch.bool)
    mask.scatter_(1, keep, False)
    return keep.to(device or "cpu"), mask.to(device or "cpu")


def masked_cube_loss(x: torch.Tensor, prediction: torch.Tensor, mask: torch.Tensor, patch: int,
                     normalise: bool = True) -> torch.Tensor:
    """Mean squared error between predicted and true cubes, over hidden cubes only (``mask`` True).

    ``x`` ``[B, C, D, H, W]``; ``prediction`` ``[B, N, C·P³]``; targets normalised per cube and channel when
    ``normalise``. 0 when nothing is hidden."""
    target = patchify(x, patch)
    if normalise:
        target = normalise_cubes(target, x.shape[1])
    per_token = ((prediction.float() - target.float()) ** 2).mean(dim=-1)
    m = mask.to(per_token.dtype)
    return (per_token * m).sum() / m.sum().clamp(min=1.0)


class MAEDecoder(nn.Module):
    """Light transformer decoder: encoder tokens → ``width`` → (mask tokens where hidden) + sin-cos positions →
    ``depth`` pre-norm blocks → LayerNorm → a linear head giving ``out_channels``·P³ values per cube.

    With ``out_channels`` = classes and fresh weights it is the "MAE decoder" segmentation head (Jin et al.)."""

    def __init__(self, encoder_width: int, width: int, depth: int, heads: int, patch: int, out_channels: int,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        sincos_position_embedding_3d((1, 1, 1), width)  # refuse an unusable width now
        self.width, self.patch, self.out_channels = width, patch, out_channels
        self.embed = nn.Linear(encoder_width, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.blocks = nn.ModuleList(transformer_block(width, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, out_channels * patch ** 3)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, latent: torch.Tensor, grid: Sequence[int],
                keep_indices: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder tokens ``[B, K, encoder_width]`` → cube predictions ``[B, N, out_channels·P³]`` for the full
        grid. ``keep_indices`` ``[B, K]`` says which token each latent is (None: all N, in order)."""
        h = self.embed(latent)
        n = int(grid[0] * grid[1] * grid[2])
        if keep_indices is not None:
            full = self.mask_token.to(h.dtype).expand(h.shape[0], n, -1).clone()
            index = keep_indices.to(h.device).long().unsqueeze(-1).expand(-1, -1, h.shape[-1])
            h = full.scatter(1, index, h)
        elif h.shape[1] != n:
            raise ValueError(f"{h.shape[1]} tokens for a grid of {n}: pass keep_indices for masked input")
        h = h + sincos_position_embedding_3d(grid, self.width).to(h.device, h.dtype)[None]
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))


class MAEOutput(NamedTuple):
    """``loss`` (scalar), ``prediction`` ``[B, N, C·P³]`` (normalised cube space when the loss normalises),
    ``mask`` ``[B, N]`` bool (True = hidden)."""

    loss: torch.Tensor
    prediction: torch.Tensor
    mask: torch.Tensor


class MAE3D(nn.Module):
    """Masked autoencoder: `ViTEncoder` (``encoder``) + `MAEDecoder` (``decoder``) reconstructing the input."""

    def __init__(self, in_channels: int = 2, patch: int = 8, width: int = 240, depth: int = 12, heads: int = 12,
                 decoder_width: int = 120, decoder_depth: int = 8, decoder_heads: int = 12,
                 mlp_ratio: float = 4.0, mask_ratio: float = 0.9, norm_pix_loss: bool = True) -> None:
        super().__init__()
        kept_count(1, mask_ratio)  # validate
        self.encoder = ViTEncoder(in_channels, patch, width, depth, heads, mlp_ratio)
        self.decoder = MAEDecoder(width, decoder_width, decoder_depth, decoder_heads, patch, in_channels, mlp_ratio)
        self.in_channels, self.patch = in_channels, patch
        self.mask_ratio, self.norm_pix_loss = mask_ratio, norm_pix_loss
        self.config = {"in_channels": in_channels, "patch": patch, "width": width, "depth": depth, "heads": heads,
                       "decoder_width": decoder_width, "decoder_depth": decoder_depth,
                       "decoder_heads": decoder_heads, "mlp_ratio": mlp_ratio, "mask_ratio": mask_ratio,
                       "norm_pix_loss": norm_pix_loss}

    def predict(self, x: torch.Tensor, keep_indices: torch.Tensor | None) -> torch.Tensor:
        """Cube predictions ``[B, N, C·P³]`` of ``x`` seen through the visible tokens ``keep_indices`` ``[B, K]``."""
        out = self.encoder(x, keep_indices)
        return self.decoder(out.tokens, out.grid, keep_indices)

    def forward(self, x: torch.Tensor, mask_ratio: float | None = None,
                generator: torch.Generator | None = None) -> MAEOutput:
        """Hide a random ``mask_ratio`` (default: the model's) of the cubes of ``x`` and reconstruct them."""
        ratio = self.mask_ratio if mask_ratio is None else mask_ratio
        n = math.prod(token_grid(x.shape[2:], self.patch))
        keep, mask = random_masking(x.shape[0], n, ratio, generator, x.device)
        prediction = self.predict(x, keep)
        return MAEOutput(masked_cube_loss(x, prediction, mask, self.patch, self.norm_pix_loss), prediction, mask)

    def reconstruction(self, x: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
        """Predicted cubes in ``x``'s intensity space ``[B, N, C·P³]`` (de-normalised with each true cube's mean
        and variance when the model predicts normalised cubes, as MAE visualisations do)."""
        if not self.norm_pix_loss:
            return prediction
        return denormalise_cubes(prediction.float(), patchify(x, self.patch).float(), self.in_channels)


def build_mae(params: dict[str, Any]) -> MAE3D:
    """`MAE3D` from its ``config`` dict (builder of architecture "MAE3D")."""
    return MAE3D(**params)


def encoder_state(mae_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The `ViTEncoder` part of an MAE3D state dict (keys ``encoder.*`` without the prefix)."""
    return {k[len("encoder."):]: v for k, v in mae_state.items() if k.startswith("encoder.")}


def covering_masks(batch: int, n_tokens: int, mask_ratio: float, repeats: int,
                   generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """At least ``repeats`` random masks ``[B, N]`` (True = hidden, each hiding N − `kept_count` tokens) that
    together hide every token at least once: consecutive windows of one random token order per sample, spaced
    evenly round it (more masks than ``repeats`` when that many cannot cover N)."""
    hidden = n_tokens - kept_count(n_tokens, mask_ratio)
    if hidden < 1:
        raise ValueError(f"a mask ratio of {mask_ratio} hides no token of {n_tokens}; use a larger ratio")
    passes = max(int(repeats), math.ceil(n_tokens / hidden))
    order = torch.argsort(torch.rand(batch, n_tokens, generator=generator), dim=1)
    masks = []
    for p in range(passes):
        start = (p * n_tokens) // passes
        window = order[:, (start + torch.arange(hidden)) % n_tokens]
        mask = torch.zeros(batch, n_tokens, dtype=torch.bool)
        mask.scatter_(1, window, True)
        masks.append(mask)
    return masks


def cube_cosine_residual(x_cubes: torch.Tensor, recon_cubes: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``1 − cos(input cube, reconstructed cube)`` per token ``[B, N]`` (cubes ``[B, N, C·P³]``); 0 for two
    all-zero cubes (e.g. air clipped to 0 in both)."""
    dot = (x_cubes * recon_cubes).sum(-1)
    norms = x_cubes.norm(dim=-1) * recon_cubes.norm(dim=-1)
    return (1.0 - (dot + eps) / (norms + eps)).clamp(min=0.0, max=2.0)


@torch.no_grad()
def residual_maps(mae: MAE3D, x: torch.Tensor, ratios: Sequence[float] = (0.5, 0.75), repeats: int = 4,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """MAE residual maps (GRCSF's regional input): ``[B, len(ratios), D, H, W]`` float32 in [0, 2].

    For each mask ratio, `covering_masks` hide every cube at least once; a cube's reconstructions from the
    masks that hid it are averaged (in ``x``'s intensity space, `MAE3D.reconstruction`), and the map is
    ``1 − cosine similarity`` between the true cube's voxel values (all channels) and that average, constant over
    the cube's P³ voxels. 0 where the MAE reproduces the input; high where it cannot (e.g. a bright lesion the
    surrounding anatomy does not predict). ``x``: ``[B, C, D, H, W]`` with D, H, W multiples of the patch."""
    was_training = mae.training
    mae.eval()
    try:
        b = x.shape[0]
        grid = token_grid(x.shape[2:], mae.patch)
        n = math.prod(grid)
        truth = patchify(x, mae.patch).float()
        maps = []
        for ratio in ratios:
            total = torch.zeros_like(truth)
            count = torch.zeros(b, n, 1, device=x.device)
            for mask in covering_masks(b, n, float(ratio), repeats, generator):
                mask = mask.to(x.device)
                keep = torch.argsort(mask.to(torch.uint8), dim=1, stable=True)[:, : n - int(mask[0].sum())]
                keep = torch.sort(keep, dim=1).values
                recon = mae.reconstruction(x, mae.predict(x, keep)).float()
                total += recon * mask[..., None]
                count += mask[..., None].float()
            residual = cube_cosine_residual(truth, total / count.clamp(min=1.0))  # [B, N]
            cubes = residual[..., None].expand(-1, -1, mae.patch ** 3)
            maps.append(unpatchify(cubes, mae.patch, grid, 1)[:, 0])
        return torch.stack(maps, dim=1)
    finally:
        mae.train(was_training)
