"""Masked-autoencoder pre-training of the 3D ViT encoder on unlabelled CT regions (Jin et al.).

Each CT is reduced once to its skull-base ICA region (`iacseg.train.regions`); every step draws ``batch`` random
blocks of ``roi_size`` (k, j, i voxels, the CT's own grid — no resampling, as the segmenter) from random
cases, flips them left–right at random, windows the HU exactly as the segmenter does
(`iacseg.models.segmenter.segmenter_input` with `DEFAULT_SEGMENTER_INPUT`'s windows), hides ``mask_ratio`` of
the cubes and trains `MAE3D` on the per-cube-normalised MSE of the hidden cubes. AdamW (β = 0.9, 0.95, weight
decay 0.05 on weight matrices), linear warm-up then cosine decay. The result is a model folder of kind "mae"
(architecture "MAE3D"): its ``encoder.*`` weights initialise ViT segmenters; the whole MAE gives residual maps.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..core.errors import InputError
from ..models.loading import save_model
from ..models.segmenter import DEFAULT_SEGMENTER_INPUT, segmenter_input
from ..models.networks.vit.encoder import PATCH_SIZES, vit_config
from ..models.networks.vit.mae import MAE3D
from ..core.progress import Progress, no_progress
from .common import model_card, seed_everything, training_record
from .loop import autocast, optimiser_step, set_learning_rate
from .regions import CTRegion, prepare_regions, sample_cube

MAE_KIND = "mae"

#: Defaults of `pretrain_mae` (the paper pre-trained 800 epochs on 4,933 regions on GPUs; these suit a small run).
MAE_DEFAULTS: dict[str, Any] = {
    "config": "S", "patch": 8, "roi_size": (32, 64, 64), "epochs": 50, "steps_per_epoch": 100, "batch": 4,
    "lr": 5e-4, "mask_ratio": 0.9, "weight_decay": 0.05, "flip_lr": True, "norm_pix_loss": True,
}


def _check(config: str, patch: int, roi_size: Sequence[int], mask_ratio: float) -> None:
    if config.removeprefix("ViTiac-") not in ("tiny", "S", "M", "L"):
        raise InputError(f"ViT configuration {config} is unknown; use tiny, S, M or L", parameter="config")
    if patch not in PATCH_SIZES:
        raise InputError(f"patch size {patch} is not supported; use 4, 8 or 16 voxels", parameter="patch")
    if len(roi_size) != 3 or any(int(s) < patch or int(s) % patch for s in roi_size):
        raise InputError(f"the block size {tuple(roi_size)} (slices, rows, columns) must be a multiple of the patch "
                         f"size {patch} along every axis; e.g. {(4 * patch, 8 * patch, 8 * patch)}", parameter="roi")
    if not 0.0 < mask_ratio < 1.0:
        raise InputError(f"mask ratio {mask_ratio} must be between 0 and 1 (the paper uses 0.9)",
                         parameter="mask_ratio")
    n = int(np.prod([int(s) // patch for s in roi_size]))
    if n < 2:
        raise InputError(f"a block of {tuple(roi_size)} voxels holds only {n} cube of {patch}³; use a larger block "
                         f"or a smaller patch so some cubes can be hidden and others seen")


def _param_groups(module: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices and kernels only (not biases, norms, the mask token), as MAE does."""
    decay = [p for n, p in module.named_parameters() if p.ndim > 1 and "mask_token" not in n]
    other = [p for n, p in module.named_parameters() if p.ndim <= 1 or "mask_token" in n]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}]


def _batch(regions: list[CTRegion], size: Sequence[int], batch: int, rng: np.random.Generator, flip_lr: bool,
           input_cfg: dict[str, Any], device: torch.device) -> torch.Tensor:
    """``[batch, C, *size]`` windowed network input from random blocks of random regions."""
    blocks = []
    for _ in range(batch):
        block = sample_cube(regions[int(rng.integers(len(regions)))], size, rng)
        blocks.append(block[:, :, ::-1] if flip_lr and rng.random() < 0.5 else block)  # i axis: left ↔ right
    hu = torch.from_numpy(np.ascontiguousarray(np.stack(blocks)).astype(np.float32)).to(device)
    return torch.stack([segmenter_input(h, input_cfg) for h in hu])


def pretrain_mae(data: Any, out_dir: str | Path, *, config: str = "S", patch: int = 8,
                 roi_size: Sequence[int] = (32, 64, 64), epochs: int = 50, steps_per_epoch: int = 100,
                 batch: int = 4, lr: float = 5e-4, mask_ratio: float = 0.9, device: Any = "auto", seed: int = 0,
                 progress: Progress = no_progress, phantom_options: dict[str, Any] | None = None,
                 name: str | None = None, version: str = "1.0", **hp: Any) -> Path:
    """Pre-train `MAE3D` (ViTiac ``config`` "tiny" | "S" | "M" | "L", cube ``patch`` 4 | 8 | 16 voxels) on the
    skull-base ICA regions of the CTs in ``data`` and save it as a model folder of kind "mae" at ``out_dir``.

    ``data``: a folder of CTs or case folders, or any `iacseg.train.data.iter_cases` source (see
    `iacseg.train.regions`). ``roi_size``: training block (k, j, i voxels), a multiple of ``patch``. ``lr``: peak
    AdamW learning rate. Other keys of `MAE_DEFAULTS` (weight_decay, flip_lr, norm_pix_loss) may be given.
    Returns the model folder path; its metrics hold the final loss (mean of the last epoch). An existing non-empty
    ``out_dir`` that is not an earlier IACSeg model folder is refused before any work."""
    unknown = set(hp) - set(MAE_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown MAE hyper-parameters {sorted(unknown)}; known: {sorted(MAE_DEFAULTS)}")
    roi_size = tuple(int(s) for s in roi_size)
    _check(config, int(patch), roi_size, float(mask_ratio))
    from ..models.output_folder import check_model_replaceable
    from ..core.device import resolve_device

    check_model_replaceable(out_dir, overwrite=True)  # before any work: only an earlier model folder is replaced

    cfg = {**MAE_DEFAULTS, **hp, "config": config, "patch": int(patch), "roi_size": roi_size, "epochs": epochs,
           "steps_per_epoch": steps_per_epoch, "batch": batch, "lr": lr, "mask_ratio": float(mask_ratio),
           "seed": seed}
    dev = resolve_device(device)
    rng = seed_everything(seed)
    t0 = time.time()
    regions = prepare_regions(data, [s // 2 for s in roi_size], phantom_options, progress)
    input_cfg = {"windows_hu": DEFAULT_SEGMENTER_INPUT["windows_hu"], "roi_size_kji": list(roi_size),
                 "grid": "native axial LPS grid of the CT (no resampling)",
                 "region": "skull-base ICA box (iacseg.preprocess.ica_region_box), block centres inside it"}
    params = {"in_channels": len(input_cfg["windows_hu"]), "patch": int(patch), **vit_config(config).params(),
              "mask_ratio": float(mask_ratio), "norm_pix_loss": bool(cfg["norm_pix_loss"])}
    mae = MAE3D(**params).to(dev)
    opt = torch.optim.AdamW(_param_groups(mae, cfg["weight_decay"]), lr=lr, betas=(0.9, 0.95))
    total = max(1, epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    history: list[float] = []
    step = 0
    for epoch in range(epochs):
        mae.train()
        losses = []
        for _ in range(steps_per_epoch):
            x = _batch(regions, roi_size, batch, rng, cfg["flip_lr"], input_cfg, dev)
            set_learning_rate(opt, step, total, lr)
            with autocast(dev):
                loss = mae(x, generator=generator).loss
            optimiser_step(opt, loss, mae.parameters(), 3.0)
            losses.append(float(loss.item()))
            step += 1
        history.append(float(np.mean(losses)))
        progress("pretrain", (epoch + 1) / max(1, epochs), f"epoch {epoch + 1}/{epochs} loss {history[-1]:.4f}")
    metrics = {"final_loss": history[-1] if history else float("nan"),
               "first_epoch_loss": history[0] if history else float("nan"), "epochs_run": len(history),
               "regions": len(regions), "regions_from_landmarks": sum(r.method == "landmarks" for r in regions)}
    return _save(Path(out_dir), mae, cfg, params, input_cfg, metrics, regions, data, phantom_options, t0, dev,
                 name, version)


def _save(out_dir: Path, mae: MAE3D, cfg: dict[str, Any], params: dict[str, Any], input_cfg: dict[str, Any],
          metrics: dict[str, Any], regions: list[CTRegion], data: Any, phantom_options: dict[str, Any] | None,
          t0: float, dev: torch.device, name: str | None, version: str) -> Path:
    config_name = str(cfg["config"]).removeprefix("ViTiac-")
    cfg["name"] = name or f"mae-vitiac-{config_name}-p{params['patch']}"
    config = {
        "name": cfg["name"], "version": version, "kind": MAE_KIND,
        "architecture": {"name": "MAE3D", "params": params},
        "vit_config": config_name, "patch": params["patch"], "mask_ratio": params["mask_ratio"],
        "input": input_cfg, "threshold": None,
        "n_parameters": int(sum(p.numel() for p in mae.parameters())),
        "n_encoder_parameters": int(sum(p.numel() for p in mae.encoder.parameters())),
        "metrics": metrics,
        "training": training_record(dict(cfg), data, phantom_options, regions, len(regions), 0, t0, dev),
    }
    card = model_card(
        f"3D masked autoencoder (ViTiac-{config_name}, patch {params['patch']}³)", config,
        "Pre-trained encoder for ViT calcification segmenters (`iacseg train segmenter --arch vit --init`) and "
        "MAE residual maps (GRCSF). It does not segment anything by itself.",
        f"MAE pre-training (He et al.; 3D as Jin et al.): cubes of {params['patch']}³ voxels as tokens, fixed 3D "
        f"sin-cos positions, {params['mask_ratio']:.0%} of the cubes hidden, a light transformer decoder, MSE on the "
        f"hidden cubes normalised per cube and channel, on unlabelled skull-base ICA regions of the CTs' own grids "
        f"windowed like the segmenter. Final loss: {metrics['final_loss']:.4g} (first epoch "
        f"{metrics['first_epoch_loss']:.4g}).")
    return save_model(out_dir, mae.cpu(), config, card)
