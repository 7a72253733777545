"""DeSD-style self-distillation pre-training of the segmenter's ResEnc U-Net encoder on unlabelled CT.

Method (Ye et al. 2022, "DeSD", as adapted to non-contrast head CT by Seia et al.):

* **student** — the U-Net's encoder (`ResEncEncoder`) with a projection head after *every* stage: global average
  pooling → MLP (two GELU hidden layers) → L2-normalised bottleneck → weight-normalised linear layer to K outputs;
* **teacher** — an exponential moving average (EMA) of the student's encoder and of its deepest-stage head,
  ``θ_t ← λ θ_t + (1 − λ) θ_s`` with λ on a cosine schedule from ``momentum`` to 1; it receives no gradients;
* **views** — a context box is cut from the ICA region of a case (centred on a ≥ 130 HU voxel with probability
  ``bone_fraction``, else anywhere in the region; air outside the crop) and two overlapping patches of ``patch``
  (k, j, i voxels) are cropped from it at random and distorted independently (flips, HU contrast and brightness,
  noise, blur); the label map is never used;
* **loss** — the teacher's deepest-stage output is centred (``c``, an EMA of its batch mean with rate
  ``center_momentum``) and sharpened (temperature ``teacher_temp``, warmed up from ``teacher_temp_start``) into
  ``P_t``; every student stage ``i`` gives ``P_s^i`` at ``student_temp``. Loss =
  ``1/N Σ_i ½ Σ_{x ≠ x'} H(P_t(x), P_s^i(x'))`` with ``H(a, b) = −Σ a log b`` (deep self-distillation: each
  stage learns to predict the teacher's deepest representation of the *other* view).

The result is a model folder of kind ``desd-encoder`` holding the teacher's encoder with the U-Net's key names
(``stem.*``, ``encoder.*``): ``iacseg train segmenter --init FOLDER`` loads it into a fresh U-Net (decoder newly
initialised, `iacseg.train.networks.load_encoder_weights`). Scaled-down defaults (head widths, K, batch) suit a CPU; the papers used
2048-wide heads, K = 65 536 and batch 64 on GPUs.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.contracts import CALCIUM_HU
from ..core.errors import InputError
from ..models.loading import save_model
from ..models.segmenter import DEFAULT_SEGMENTER_INPUT, segmenter_input
from ..models.sliding import fit_window
from ..models.networks.unet import ResEncEncoder
from ..core.progress import Progress, no_progress
from .common import model_card, seed_everything, training_record
from .loop import autocast, optimiser_step, set_learning_rate
from .data import is_prepared
from .regions import CTRegion, prepare_regions
from .segmenter import SEGMENTER_DEFAULTS, SegmenterCase, sample_patch

DESD_KIND = "desd-encoder"

#: Hyper-parameters of DeSD pre-training (any may be given to `pretrain_desd` as a keyword).
DESD_DEFAULTS: dict[str, Any] = {
    "epochs": 20, "steps_per_epoch": 100, "batch": 4, "lr": 5e-4, "patch": (32, 64, 64),
    "features": SEGMENTER_DEFAULTS["features"], "strides": SEGMENTER_DEFAULTS["strides"],
    "blocks": SEGMENTER_DEFAULTS["blocks"], "head_hidden": 256, "head_bottleneck": 64, "out_dim": 1024,
    "student_temp": 0.1, "teacher_temp": 0.07, "teacher_temp_start": 0.04, "teacher_temp_warmup": 0.1,
    "center_momentum": 0.9, "momentum": 0.996, "weight_decay": 0.04, "weight_decay_end": 1e-5, "clip_grad": 3.0,
    "bone_fraction": 0.5, "name": "unet-desd-encoder", "version": "1.0",
}


class ProjectionHead(nn.Module):
    """Stage features ``[N, C, D, H, W]`` → global average pool → MLP → L2-normalised bottleneck
    ``[N, bottleneck]`` → weight-normalised (unit rows) linear layer → ``[N, out_dim]`` outputs (cosines, ±1)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 256, bottleneck: int = 64) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, bottleneck))
        self.prototypes = nn.Parameter(torch.randn(out_dim, bottleneck) * 0.02)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """The MLP output ``[N, bottleneck]`` (before normalisation) of pooled stage features."""
        return self.mlp(features.float().mean(dim=(2, 3, 4)))

    def project(self, embedding: torch.Tensor) -> torch.Tensor:
        """``[N, bottleneck]`` embedding → ``[N, out_dim]``: cosines with the unit-norm rows of the last layer."""
        return F.linear(F.normalize(embedding, dim=-1), F.normalize(self.prototypes, dim=-1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.project(self.embed(features))


class DeSDStudent(nn.Module):
    """The encoder and one projection head per stage; ``forward`` → one ``[N, out_dim]`` output per stage."""

    def __init__(self, encoder: ResEncEncoder, out_dim: int, hidden: int, bottleneck: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleList(ProjectionHead(f, out_dim, hidden, bottleneck) for f in encoder.config["features"])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # type: ignore[override]
        return [head(f) for head, f in zip(self.heads, self.encoder(x))]


class DeSDTeacher(nn.Module):
    """A frozen copy of the student's encoder and deepest head, moved only by `ema_update`;
    ``forward`` → (deepest-stage outputs ``[N, out_dim]``, bottleneck embeddings ``[N, bottleneck]``)."""

    def __init__(self, student: DeSDStudent) -> None:
        super().__init__()
        self.encoder = copy.deepcopy(student.encoder)
        self.head = copy.deepcopy(student.heads[-1])
        for p in self.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        embedding = self.head.embed(self.encoder(x)[-1])
        return self.head.project(embedding), embedding

    @torch.no_grad()
    def follow(self, student: DeSDStudent, momentum: float) -> None:
        """EMA step towards the student: encoder ← encoder, head ← the student's deepest head."""
        ema_update(self.encoder, student.encoder, momentum)
        ema_update(self.head, student.heads[-1], momentum)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """In place, every parameter ``t ← m·t + (1 − m)·s`` (buffers copied); modules must have the same names."""
    s_params = dict(student.named_parameters())
    for name, t in teacher.named_parameters():
        t.mul_(momentum).add_(s_params[name].detach().to(t.dtype), alpha=1.0 - momentum)
    s_buffers = dict(student.named_buffers())
    for name, b in teacher.named_buffers():
        b.copy_(s_buffers[name])


def momentum_at(step: int, total: int, base: float) -> float:
    """Teacher EMA momentum: cosine schedule from ``base`` at step 0 to 1 at ``total``."""
    t = min(1.0, step / max(1, total))
    return 1.0 - (1.0 - base) * 0.5 * (1.0 + math.cos(math.pi * t))


def teacher_temperature_at(step: int, total: int, start: float, end: float, warmup_fraction: float) -> float:
    """Teacher temperature: linear from ``start`` to ``end`` over the first ``warmup_fraction`` of the steps."""
    warm = int(total * warmup_fraction)
    return end if step >= warm else start + (end - start) * step / max(1, warm)


def teacher_probabilities(logits: torch.Tensor, center: torch.Tensor, temperature: float) -> torch.Tensor:
    """Centred and sharpened teacher distribution ``softmax((logits − center) / temperature)`` over the last axis."""
    return F.softmax((logits.float() - center) / temperature, dim=-1)


def cross_entropy(teacher_p: torch.Tensor, student_logits: torch.Tensor, student_temp: float) -> torch.Tensor:
    """Mean over the batch of ``H(P_t, P_s) = −Σ_k P_t,k log softmax(student_logits / student_temp)_k``."""
    log_ps = F.log_softmax(student_logits.float() / student_temp, dim=-1)
    return -(teacher_p * log_ps).sum(dim=-1).mean()


def distillation_loss(teacher_p: Sequence[torch.Tensor], student_logits: Sequence[Sequence[torch.Tensor]],
                      student_temp: float) -> tuple[torch.Tensor, list[float]]:
    """Deep self-distillation loss and its per-stage values.

    ``teacher_p[v]``: teacher distribution of view ``v`` (two views); ``student_logits[i][v]``: stage ``i``'s
    outputs for view ``v``. Each stage is matched to the teacher on the *other* view; mean over stages."""
    per_stage = []
    for stage in student_logits:
        pairs = [cross_entropy(teacher_p[a], stage[b], student_temp)
                 for a in range(len(teacher_p)) for b in range(len(stage)) if a != b]
        per_stage.append(torch.stack(pairs).mean())
    total = torch.stack(per_stage).mean()
    return total, [float(v.detach()) for v in per_stage]


def update_center(center: torch.Tensor, teacher_logits: torch.Tensor, momentum: float) -> torch.Tensor:
    """``c ← m·c + (1 − m)·mean over the batch of the teacher outputs`` (a new tensor)."""
    return momentum * center + (1.0 - momentum) * teacher_logits.detach().float().mean(dim=0)


def rank_me(embeddings: torch.Tensor, eps: float = 1e-7) -> float:
    """RankMe (Garrido et al.): ``exp(entropy)`` of the normalised singular values of ``[n, d]`` embeddings —
    the effective rank, between 1 (collapsed) and ``min(n, d)``."""
    s = torch.linalg.svdvals(embeddings.double())
    p = s / s.sum() + eps
    return float(torch.exp(-(p * p.log()).sum()))


def patch_source(region: CTRegion, rng: np.random.Generator, max_points: int = 4000) -> SegmenterCase:
    """An unlabelled pre-training region (`iacseg.train.regions.CTRegion`: HU crop, ICA box) as the segmenter's
    patch source: an empty calcium mask and, as sample points, ≥ 130 HU voxels of the box (crop indices)."""
    bright = np.argwhere(region.hu[region.roi] >= CALCIUM_HU) + np.array([s.start for s in region.roi])
    if len(bright) > max_points:
        bright = bright[rng.choice(len(bright), max_points, replace=False)]
    return SegmenterCase(region.name, region.hu, np.zeros(region.hu.shape, bool), region.roi,
                         np.empty((0, 3), np.int64), bright, 0)


def sample_views(c: SegmenterCase, view: Sequence[int], batch: int, rng: np.random.Generator,
                 bone_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Two ``[batch, *view]`` float32 HU arrays: per sample, two random crops of one context box 1.5 × ``view``."""
    view = [int(v) for v in view]
    context = [v + v // 2 for v in view]
    out: list[list[np.ndarray]] = [[], []]
    for _ in range(batch):
        box, _ = sample_patch(c, context, rng, 0.0, bone_fraction)
        for views in out:
            o = [int(rng.integers(0, n - v + 1)) for n, v in zip(context, view)]
            views.append(box[o[0]:o[0] + view[0], o[1]:o[1] + view[1], o[2]:o[2] + view[2]])
    return np.stack(out[0]).astype(np.float32), np.stack(out[1]).astype(np.float32)


def distort(hu: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """One view's distortion of HU ``[B, D, H, W]``: flips along k, j, i, contrast ×0.9–1.1 about 40 HU,
    brightness ±40 HU, noise σ 0–20 HU, and (p = 0.3) a partial 3×3×3 box blur."""
    for axis in (1, 2, 3):
        if rng.random() < 0.5:
            hu = hu.flip(axis)
    b = hu.shape[0]
    scale = torch.tensor(rng.uniform(0.9, 1.1, (b, 1, 1, 1)), dtype=hu.dtype, device=hu.device)
    offset = torch.tensor(rng.uniform(-40.0, 40.0, (b, 1, 1, 1)), dtype=hu.dtype, device=hu.device)
    hu = (hu - 40.0) * scale + 40.0 + offset + float(rng.uniform(0.0, 20.0)) * torch.randn_like(hu)
    if rng.random() < 0.3:
        blurred = F.avg_pool3d(hu[:, None], 3, stride=1, padding=1, count_include_pad=False)[:, 0]
        a = float(rng.uniform(0.3, 1.0))
        hu = (1.0 - a) * hu + a * blurred
    return hu


def _prepare(data: Any, patch: Sequence[int], rng: np.random.Generator, phantom_options: dict[str, Any] | None,
             progress: Progress) -> list[SegmenterCase]:
    """Patch sources of every CT of ``data`` (`iacseg.train.regions.prepare_regions`; context margin = half the
    view and its half again, as views come from a 1.5 × view box)."""
    if is_prepared(data, SegmenterCase):  # cached crops made elsewhere; only their HU and bright points are used
        return list(data)
    margin = [int(p) * 3 // 4 for p in patch]
    return [patch_source(r, rng) for r in prepare_regions(data, margin, phantom_options, progress)]


def _param_groups(module: nn.Module) -> list[dict[str, Any]]:
    """Weight decay on weight matrices/kernels only (not on biases or norm scales), as in DINO."""
    decay = [p for p in module.parameters() if p.requires_grad and p.ndim > 1]
    other = [p for p in module.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "decay": True}, {"params": other, "decay": False, "weight_decay": 0.0}]


def pretrain_desd(data: Any, out_dir: str | Path, *, epochs: int = 20, steps_per_epoch: int = 100, batch: int = 4,
                  lr: float = 5e-4, device: Any = "auto", seed: int = 0, progress: Progress = no_progress,
                  phantom_options: dict[str, Any] | None = None, **hp: Any) -> Path:
    """Pre-train the U-Net encoder by DeSD self-distillation and save it as a ``desd-encoder`` model folder.

    ``data``: a folder of CTs or case folders (truth files optional: landmarks place the ICA box when present,
    labels are never read), or anything `iacseg.train.data.iter_cases` takes (phantom seeds, phantoms) — see
    `iacseg.train.regions`. ``patch``: view size (k, j, i voxels); ``batch``: cases' view pairs per step;
    ``lr``: peak AdamW learning rate (warm-up then cosine). Other keys of `DESD_DEFAULTS` may be given (features,
    strides, blocks of the U-Net — keep the segmenter's; head sizes; temperatures; momenta). Returns the model
    folder path. Single process (under torchrun, run it on one rank only). An existing non-empty ``out_dir`` that
    is not an earlier IACSeg model folder is refused before any work (`iacseg.models.output_folder`)."""
    unknown = set(hp) - set(DESD_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown DeSD hyper-parameters {sorted(unknown)}; known: {sorted(DESD_DEFAULTS)}")
    from ..core.device import resolve_device
    from ..models.output_folder import check_model_replaceable

    check_model_replaceable(out_dir, overwrite=True)  # before any work: only an earlier model folder is replaced

    cfg = {**DESD_DEFAULTS, **hp, "epochs": epochs, "steps_per_epoch": steps_per_epoch, "batch": batch, "lr": lr,
           "seed": seed, "patch": tuple(hp.get("patch", DESD_DEFAULTS["patch"]))}
    dev = resolve_device(device)
    rng = seed_everything(seed)
    t0 = time.time()
    cases = _prepare(data, cfg["patch"], rng, phantom_options, progress)
    if not cases:
        raise InputError("the pre-training data holds no cases; give a folder of case folders or phantom seeds")
    input_cfg = {**DEFAULT_SEGMENTER_INPUT, "patch_size_kji": list(cfg["patch"])}
    encoder = ResEncEncoder(len(input_cfg["windows_hu"]), cfg["features"], cfg["strides"], cfg["blocks"])
    student = DeSDStudent(encoder, cfg["out_dim"], cfg["head_hidden"], cfg["head_bottleneck"]).to(dev)
    teacher = DeSDTeacher(student).to(dev)
    center = torch.zeros(cfg["out_dim"], device=dev)
    opt = torch.optim.AdamW(_param_groups(student), lr=lr, weight_decay=cfg["weight_decay"])
    total = max(1, epochs * steps_per_epoch)
    step, history = 0, []
    stage_losses: list[list[float]] = []
    embeddings: list[torch.Tensor] = []
    for epoch in range(epochs):
        student.train()
        losses, stage_losses, embeddings = [], [], []
        for _ in range(steps_per_epoch):
            c = cases[int(rng.integers(len(cases)))]
            size = fit_window(c.hu.shape, cfg["patch"], encoder.divisor)
            v1, v2 = sample_views(c, size, batch, rng, cfg["bone_fraction"])
            views = [distort(torch.from_numpy(v).to(dev), rng) for v in (v1, v2)]
            x = torch.cat([torch.stack([segmenter_input(h, input_cfg) for h in v]) for v in views])
            t_temp = teacher_temperature_at(step, total, cfg["teacher_temp_start"], cfg["teacher_temp"],
                                            cfg["teacher_temp_warmup"])
            wd = cfg["weight_decay_end"] + (cfg["weight_decay"] - cfg["weight_decay_end"]) * 0.5 * (
                1.0 + math.cos(math.pi * step / total))
            set_learning_rate(opt, step, total, lr)
            for g in opt.param_groups:
                if g["decay"]:
                    g["weight_decay"] = wd
            with autocast(dev):
                t_logits, t_emb = teacher(x)
                s_logits = student(x)
            t_p = teacher_probabilities(t_logits, center, t_temp).chunk(2)
            loss, per_stage = distillation_loss(t_p, [s.chunk(2) for s in s_logits], cfg["student_temp"])
            optimiser_step(opt, loss, student.parameters(), cfg["clip_grad"])
            teacher.follow(student, momentum_at(step, total, cfg["momentum"]))
            center = update_center(center, t_logits, cfg["center_momentum"])
            losses.append(float(loss.detach()))
            stage_losses.append(per_stage)
            embeddings.append(t_emb.detach().float().cpu())
            step += 1
        history.append(float(np.mean(losses)))
        progress("pretrain", (epoch + 1) / epochs, f"epoch {epoch + 1}/{epochs} DeSD loss {history[-1]:.4f}")
    emb = torch.cat(embeddings)[-512:] if embeddings else torch.zeros(1, 1)
    metrics: dict[str, Any] = {"loss_first_epoch": history[0], "loss_last_epoch": history[-1]} if history else {}
    if stage_losses:
        metrics["loss_per_stage_last_epoch"] = [round(float(v), 4) for v in np.mean(stage_losses, axis=0)]
    metrics.update(teacher_rankme_last_epoch=rank_me(emb), rankme_max=int(min(emb.shape)))
    return _save(out_dir, teacher.encoder.cpu(), cfg, input_cfg, metrics, data, phantom_options, cases, t0, dev)


def _save(out_dir: str | Path, encoder: ResEncEncoder, cfg: dict[str, Any], input_cfg: dict[str, Any],
          metrics: dict[str, Any], data: Any, phantom_options: dict[str, Any] | None, cases: list[SegmenterCase],
          t0: float, dev: torch.device) -> Path:
    name, version = str(cfg["name"]), str(cfg["version"])
    record = training_record(cfg, data, phantom_options, cases, len(cases), 0, t0, dev)
    record["labels_used"] = False
    config = {
        "name": name, "version": version, "kind": DESD_KIND,
        "architecture": {"name": "ResEncUNetEncoder", "params": dict(encoder.config)},
        "input": input_cfg, "threshold": None, "n_parameters": int(sum(p.numel() for p in encoder.parameters())),
        "metrics": metrics, "training": record,
        "transfer": "iacseg train segmenter --init THIS_FOLDER (encoder weights only; the decoder starts fresh)",
    }
    card = model_card(
        "Self-distilled U-Net encoder (DeSD) — for transfer, not a segmenter", config,
        "Initial weights for the encoder of the ResEnc U-Net calcification segmenter: `iacseg train segmenter "
        "--init <this folder>` loads them (stem and encoder stages, strictly) into a new U-Net whose decoder "
        "starts from a fresh initialisation. It has no decoder and no output layer: it segments nothing and "
        "cannot be used with `iacseg segment`.",
        "DeSD self-distillation (Ye et al. 2022; Seia et al.) without labels on two distorted, overlapping views "
        "of ICA-region CT patches: a momentum (EMA) teacher's deepest-stage projection, centred and sharpened, "
        "is predicted by every stage of the student through per-stage projection heads (cross-entropy, mean over "
        "stages). The saved weights are the teacher's encoder; the projection heads are dropped.")
    card = card.replace("## Validation metrics (held-out cases)",
                        "## Pre-training metrics (self-distillation loss and teacher RankMe; no labels)")
    return save_model(out_dir, encoder, config, card)
