"""Training the landmark localiser (Depth-Sequence Transformer) on whole slice sequences.

Each case is reduced once — by the inference input function `iacseg.models.localiser.localiser_input` — to
an int16 HU view ``[D, S, S]`` (all native slices, plane-centred in-plane view) and six target slices
k* = ceil((z − z0)/sk). Augmentation: random z-crops that keep every target inside (so the padding amount,
hence absolute position, changes), in-plane shifts, HU scale/offset/noise. Loss: per-landmark cross-entropy
over slices (summed). Validation: MAE in slices and the share within ±1 slice (argmax).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..contracts import LANDMARKS
from ..models.dst import DepthSequenceTransformer, decode_slices, landmark_loss
from ..models.inputs import window_channels
from ..models.localiser import DEFAULT_LOCALISER_INPUT, localiser_input
from ..models.registry import save_model
from ..errors import InputError
from ..progress import Progress, no_progress
from .common import lr_at, model_card, model_identity, seed_everything, split_cases, training_record
from .data import case_plane, is_prepared, iter_cases, landmark_slices
from .distributed import (DistContext, all_reduce_mean, barrier, parameters_in_sync, wrap_model)
from .distributed import session as distributed_session

#: Recommended hyper-parameters for the demo localiser.
LANDMARK_DEFAULTS: dict[str, Any] = {
    "epochs": 150, "batch": 4, "lr": 5e-4, "weight_decay": 0.05, "val_fraction": 0.1,
    "encoder_features": (16, 32, 48, 64, 96), "dim": 128, "depth": 4, "heads": 4, "conv_kernel": 5,
    "max_slices": 320, "positional": "sinusoidal", "use_cls": False, "spacing_embedding": True, "dropout": 0.1,
    "fov_mm": 160.0, "size": 128, "crop_probability": 0.8, "crop_margin_slices": 3, "shift_pixels": 8,
    "name": "dst-demo", "version": "1.0",
}


@dataclass
class LandmarkCase:
    """Cached DST input of one case: HU view (int16 ``[D, S, S]``), targets (slices in the view), slice spacing."""

    name: str
    view: np.ndarray
    targets: np.ndarray
    spacing_mm: float


def prepare_landmark_case(case: Any, input_cfg: dict[str, Any], max_slices: int) -> LandmarkCase:
    """Reduce a case to its cached DST input (targets outside the view are clipped to its ends)."""
    view, offset = localiser_input(case.ct, case_plane(case), input_cfg, max_slices)
    targets = np.clip(landmark_slices(case, LANDMARKS) - offset, 0, view.shape[0] - 1)
    hu = view.round().clamp(-1024, 3071).to(torch.int16).cpu().numpy()
    return LandmarkCase(case.name, hu, targets, float(case.ct.grid.spacing[2]))


def random_crop(c: LandmarkCase, rng: np.random.Generator, margin: int) -> tuple[int, int]:
    """Slice range [a, b) keeping every target at least ``margin`` slices from the cut ends."""
    lo, hi = int(c.targets.min()), int(c.targets.max())
    D = c.view.shape[0]
    a = int(rng.integers(0, max(0, lo - margin) + 1))
    b = int(rng.integers(min(D, hi + margin + 1), D + 1))
    return a, max(b, a + 1)


def shift_in_plane(view: torch.Tensor, dy: int, dx: int, fill: float = -1024.0) -> torch.Tensor:
    """Translate ``[D, S, S]`` by (dy, dx) pixels, filling with air."""
    out = torch.full_like(view, fill)
    S = view.shape[1:]
    ys, yd = (slice(0, S[0] - dy), slice(dy, S[0])) if dy >= 0 else (slice(-dy, S[0]), slice(0, S[0] + dy))
    xs, xd = (slice(0, S[1] - dx), slice(dx, S[1])) if dx >= 0 else (slice(-dx, S[1]), slice(0, S[1] + dx))
    out[:, yd, xd] = view[:, ys, xs]
    return out


def training_sample(c: LandmarkCase, rng: np.random.Generator, cfg: dict[str, Any], input_cfg: dict[str, Any],
                    device: torch.device) -> tuple[torch.Tensor, np.ndarray]:
    """One augmented (input ``[C, D', S, S]``, targets) pair."""
    a, b = (0, c.view.shape[0])
    if rng.random() < cfg["crop_probability"]:
        a, b = random_crop(c, rng, cfg["crop_margin_slices"])
    view = torch.from_numpy(c.view[a:b].astype(np.float32)).to(device)
    s = int(cfg["shift_pixels"])
    if s:
        view = shift_in_plane(view, int(rng.integers(-s, s + 1)), int(rng.integers(-s, s + 1)))
    view = view * float(rng.uniform(0.96, 1.04)) + float(rng.uniform(-15, 15))
    view = view + float(rng.uniform(0, 10)) * torch.randn_like(view)
    return window_channels(view, input_cfg["windows_hu"]), c.targets - a


def evaluate_landmarks(model: DepthSequenceTransformer, cases: Sequence[LandmarkCase], input_cfg: dict[str, Any],
                       device: torch.device) -> dict[str, float]:
    """MAE (slices), share within ±1 slice, top-1 accuracy and mean confidence over held-out cases."""
    model.eval()
    errors, conf = [], []
    with torch.inference_mode():
        for c in cases:
            x = window_channels(torch.from_numpy(c.view.astype(np.float32)).to(device), input_cfg["windows_hu"])
            logits, _ = model([x], torch.tensor([c.spacing_mm], device=device))
            dec = decode_slices(logits, torch.tensor([c.view.shape[0]], device=device))
            errors.append(np.abs(dec["slice"][0].cpu().numpy() - c.targets))
            conf.append(dec["confidence"][0].cpu().numpy())
    err = np.concatenate(errors) if errors else np.zeros(0)
    return {"val_mae_slices": float(err.mean()) if err.size else float("nan"),
            "val_within_1_slice": float((err <= 1).mean()) if err.size else float("nan"),
            "val_top1": float((err == 0).mean()) if err.size else float("nan"),
            "val_mean_confidence": float(np.concatenate(conf).mean()) if conf else float("nan"),
            "val_cases": len(cases)}


def _prepare_cases(data: Any, input_cfg: dict[str, Any], max_slices: int, phantom_options: dict[str, Any] | None,
                   progress: Progress) -> list[LandmarkCase]:
    if is_prepared(data, LandmarkCase):  # cached tensors made elsewhere (e.g. in parallel workers)
        return list(data)
    cases = []
    for n, case in enumerate(iter_cases(data, phantom_options)):
        cases.append(prepare_landmark_case(case, input_cfg, max_slices))
        progress("prepare", 0.0, f"case {n + 1}: {case.name}")
    return cases


def _parent_config(init_dir: str | Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """The parent localiser's config; copies its architecture and field of view into ``cfg``."""
    from ..models.registry import read_config

    parent = read_config(init_dir)
    if parent.get("kind") != "landmarks" or (parent.get("architecture") or {}).get("name") != "DepthSequenceTransformer":
        raise InputError(f"{init_dir} is not a landmark (DST) model; fine-tune the localiser from a landmarks "
                         "model folder made by iacseg train")
    cfg.update({k: v for k, v in parent["architecture"]["params"].items() if k != "in_channels"})
    cfg.update(fov_mm=float(parent.get("input", {}).get("fov_mm", cfg["fov_mm"])),
               size=int(parent.get("input", {}).get("size", cfg["size"])))
    return parent


def train_landmarks(data: Any, out_dir: str | Path, *, epochs: int = 150, batch: int = 4, lr: float = 5e-4,
                    device: Any = "auto", seed: int = 0, val_fraction: float = 0.1, val_every: int = 5,
                    progress: Progress = no_progress, phantom_options: dict[str, Any] | None = None,
                    val_data: Any = None, init: str | Path | None = None, name: str | None = None,
                    version: str | None = None, **hp: Any) -> Path:
    """Train a DST landmark localiser and save it as a model folder at ``out_dir`` (returns its path).

    One epoch = every training case once (shuffled) in batches of ``batch``. ``val_data``: the validation cases;
    when given, all of ``data`` trains (no random split). ``init``: a landmarks model folder to fine-tune (its
    architecture, field of view and weights). ``name``/``version`` default to "dst-demo" "1.0", or for a
    fine-tune to the parent's name and its version's last number + 1. Other keys of `LANDMARK_DEFAULTS`
    (architecture, fov_mm, size, augmentation) may be given. Under ``torchrun`` every rank runs the same steps on
    its own shuffles (DDP; effective batch = ``batch`` × world size); rank 0 validates and saves."""
    cfg = {**LANDMARK_DEFAULTS, **hp, "epochs": epochs, "batch": batch, "lr": lr, "seed": seed,
           "val_fraction": val_fraction, "val_every": val_every}
    with distributed_session(device) as ctx:
        return _fit(ctx, data, Path(out_dir), cfg, progress if ctx.is_main else no_progress, phantom_options,
                    val_data, init, name, version)


def _fit(ctx: DistContext, data: Any, out_dir: Path, cfg: dict[str, Any], progress: Progress,
         phantom_options: dict[str, Any] | None, val_data: Any, init_dir: str | Path | None, name: str | None,
         version: str | None) -> Path:
    epochs, batch, lr, seed, val_every = (cfg[k] for k in ("epochs", "batch", "lr", "seed", "val_every"))
    dev = ctx.device
    rng = seed_everything(seed)
    t0 = time.time()
    parent = _parent_config(init_dir, cfg) if init_dir else None
    cfg["name"], cfg["version"] = model_identity(cfg, parent, name, version)
    input_cfg = {**DEFAULT_LOCALISER_INPUT, "fov_mm": float(cfg["fov_mm"]), "size": int(cfg["size"])}
    cases = _prepare_cases(data, input_cfg, int(cfg["max_slices"]), phantom_options, progress)
    if not cases:
        raise InputError("the training data holds no cases; give a folder of case folders or phantom seeds")
    if val_data is None:
        train_idx, val_idx = split_cases(len(cases), cfg["val_fraction"], seed)
        train_cases, val_cases = [cases[i] for i in train_idx], [cases[i] for i in val_idx]
    else:
        train_cases = cases
        val_cases = _prepare_cases(val_data, input_cfg, int(cfg["max_slices"]), phantom_options, progress)
    arch_keys = ("encoder_features", "dim", "depth", "heads", "conv_kernel", "max_slices", "positional", "use_cls",
                 "spacing_embedding", "dropout")
    params = {k: cfg[k] for k in arch_keys + ("mlp_ratio", "n_landmarks") if k in cfg}
    net = DepthSequenceTransformer(in_channels=len(input_cfg["windows_hu"]), **params).to(dev)
    if init_dir:
        from ..models.registry import load_state, sha256_file

        try:
            net.load_state_dict(load_state(init_dir))
        except RuntimeError:
            raise InputError(f"the weights in {init_dir} do not match its DST configuration; fine-tune from a "
                             "landmarks model folder made by iacseg train") from None
        cfg["parent"] = {"name": parent.get("name"), "version": parent.get("version"),  # type: ignore[union-attr]
                         "sha256": sha256_file(Path(init_dir) / "model.safetensors")}
    if ctx.enabled:  # each rank shuffles and augments on its own; DDP starts every rank from rank 0's weights
        rng = np.random.default_rng(seed + ctx.rank)
        torch.manual_seed(seed + ctx.rank)
    model = wrap_model(net, ctx)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg["weight_decay"])
    steps_per_epoch = max(1, int(np.ceil(len(train_cases) / batch)))
    total = epochs * steps_per_epoch
    amp = dev.type == "cuda"
    best: tuple[tuple[float, float], dict[str, Any], dict[str, torch.Tensor]] | None = None
    step, metrics = 0, {}
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(train_cases))
        losses = []
        for s in range(steps_per_epoch):
            chosen = [train_cases[i] for i in order[s * batch:(s + 1) * batch]]
            samples = [training_sample(c, rng, cfg, input_cfg, dev) for c in chosen]
            xs = [x for x, _ in samples]
            targets = torch.tensor(np.stack([t for _, t in samples]), device=dev)
            n_slices = torch.tensor([x.shape[1] for x in xs], device=dev)
            spacing = torch.tensor([c.spacing_mm for c in chosen], device=dev)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, lr)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                logits, _ = model(xs, spacing)
            loss = landmark_loss(logits.float(), targets, n_slices)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            losses.append(loss.item())
            step += 1
        epoch_loss = all_reduce_mean(float(np.mean(losses)))  # mean over ranks (this rank's alone when single)
        msg = f"epoch {epoch + 1}/{epochs} loss {epoch_loss:.4f}"
        if ctx.is_main and val_cases and ((epoch + 1) % max(1, val_every) == 0 or epoch + 1 == epochs):
            metrics = evaluate_landmarks(net, val_cases, input_cfg, dev)
            msg += f" val MAE {metrics['val_mae_slices']:.2f} slices, ≤1 slice {metrics['val_within_1_slice']:.1%}"
            key = (metrics["val_mae_slices"], -metrics["val_within_1_slice"])
            if best is None or key < best[0]:
                best = (key, {**metrics, "epoch": epoch + 1}, copy.deepcopy(net.state_dict()))
        metrics["train_loss_last_epoch"] = epoch_loss
        progress("train", (epoch + 1) / epochs, msg)
    if ctx.enabled and not parameters_in_sync(model):
        raise RuntimeError("the training processes ended with different weights; check that every rank runs the "
                           "same IACSeg and PyTorch versions")
    if not ctx.is_main:  # rank 0 writes the model; the others wait for it and return the same folder
        barrier()
        return out_dir
    final_metrics = dict(metrics)
    if best is not None:
        net.load_state_dict(best[2])
        final_metrics = {**best[1], "train_loss_last_epoch": metrics.get("train_loss_last_epoch")}
    record = training_record(cfg, data, phantom_options, cases if val_data is None else cases + val_cases,
                             len(train_cases), len(val_cases), t0, dev)
    record.update(world_size=ctx.world_size, effective_batch=batch * ctx.world_size,
                  validation="given cases" if val_data is not None else "random split")
    config = {
        "name": cfg["name"], "version": cfg["version"], "kind": "landmarks",
        "architecture": {"name": "DepthSequenceTransformer",
                         "params": {"in_channels": len(input_cfg["windows_hu"]), **net.config}},
        "input": input_cfg, "landmarks": list(LANDMARKS),
        "slice_convention": "target k* = ceil((z - z0)/sk); predicted plane z = z0 + (k - 0.5)*sk",
        "n_parameters": int(sum(p.numel() for p in net.parameters())),
        "metrics": final_metrics,
        "training": record,
    }
    card = model_card("Landmark localiser (Depth-Sequence Transformer)", config,
                      "Slice index of the six ICA landmark planes (L/R carotid canal, petrolingual ligament, anterior "
                      "clinoid) on an axial non-contrast head CT, splitting each ICA into cervical | petrous | "
                      "cavernous | supraclinoid.",
                      "DST (Hou et al.): slice-wise 3D CNN encoder with stride (1, 2, 2), one token per native "
                      "slice, left-padding with attention mask, convolution-enhanced self-attention blocks, six "
                      "softmax distributions over slices trained with cross-entropy.")
    path = save_model(out_dir, net.cpu(), config, card)
    barrier()
    return path
