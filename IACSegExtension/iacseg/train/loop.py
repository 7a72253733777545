"""The one training loop of `iacseg.train.segmenter` and `iacseg.train.landmarks`, with per-model hooks.

A trainer prepares its cases (`prepare_split`), builds its network and hands both to `fit` with a `TrainingHooks`
saying what is its own: how a batch is drawn, the loss, validation and its score, the model folder's config and
card. `fit` does the rest, identically for both: checkpoint and resume (`iacseg.train.checkpoint`), DDP
(`iacseg.train.distributed`: each rank draws from seed + rank, rank 0 validates and saves), AdamW with the
warm-up + cosine schedule (`iacseg.train.common.lr_at`), bf16 autocast on CUDA, gradient clipping, validation
every ``val_every`` epochs and at the end, the best validated weights, an optional time budget, and the saved
model folder. The random draws are made in a fixed order, so a seed gives the same weights (exactly, on CPU),
and a resumed training ends where an uninterrupted one would.

The pre-trainers (`iacseg.train.pretrain_mae`, `iacseg.train.pretrain_desd`) have their own loops (no
validation, checkpoint or DDP) but share the step helpers `autocast`, `set_learning_rate` and `optimiser_step`.
"""

from __future__ import annotations

import copy
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ..core.errors import InputError
from ..core.progress import Progress
from .checkpoint import Checkpointer, LoopState, fingerprint, restore_rng
from .common import lr_at, split_cases, training_record
from .distributed import DistContext, all_reduce_mean, barrier, broadcast_flag, parameters_in_sync, wrap_model


# ------------------------------------------------------------------------------------------------ step helpers
def autocast(device: torch.device) -> AbstractContextManager[Any]:
    """bf16 autocast on CUDA; a no-op elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def set_learning_rate(opt: torch.optim.Optimizer, step: int, total: int, base_lr: float) -> None:
    """Every parameter group's learning rate at ``step`` of ``total`` (`lr_at`: warm-up then cosine)."""
    for g in opt.param_groups:
        g["lr"] = lr_at(step, total, base_lr)


def optimiser_step(opt: torch.optim.Optimizer, loss: torch.Tensor, parameters: Iterable[torch.Tensor],
                   clip_norm: float) -> None:
    """Zero the gradients, back-propagate ``loss``, clip the gradient norm to ``clip_norm``, step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parameters, clip_norm)
    opt.step()


# ------------------------------------------------------------------------------------------------ cases
def prepare_split(prepare: Callable[[Any, bool], list[Any]], data: Any, val_data: Any, val_fraction: float,
                  seed: int) -> tuple[list[Any], list[Any], list[Any]]:
    """``(train cases, validation cases, all cases)``. ``prepare(source, validation)`` reduces a data source to
    prepared cases; without ``val_data`` the cases of ``data`` are split at random (`split_cases`), with it all of
    ``data`` trains. Refuses data without cases."""
    cases = prepare(data, False)
    if not cases:
        raise InputError("the training data holds no cases; give a folder of case folders or phantom seeds")
    if val_data is None:
        train_idx, val_idx = split_cases(len(cases), val_fraction, seed)
        return [cases[i] for i in train_idx], [cases[i] for i in val_idx], cases
    val_cases = prepare(val_data, True)
    return cases, val_cases, cases + val_cases


# ------------------------------------------------------------------------------------------------ the loop
@dataclass
class TrainingHooks:
    """What one trainer adds to `fit`.

    * ``kind``: "segmenter" | "landmarks" (checkpoint fingerprint, augmentation record);
    * ``architecture``, ``input_cfg``: what the checkpoint fingerprint records;
    * ``steps_per_epoch``; ``clip_norm``: gradient-norm clip;
    * ``batch(rng, loop, step_in_epoch)`` → one batch (every random draw of a step is made here);
    * ``loss(model, batch, autocast)`` → the loss tensor (``autocast``: the context for the forward pass);
    * ``validate(net)`` → metrics; ``score(metrics)`` → the key that picks the best weights
      (``higher_is_better``); ``describe_validation(metrics)`` → the progress message's tail;
    * ``model_config(net, metrics, record)`` → (``config.json``, ``MODEL_CARD.md``) of the model folder;
    * ``start_epoch(rng)`` (optional) → the epoch's case order, kept in the checkpoint (drawn before its batches).
    """

    kind: str
    architecture: dict[str, Any]
    input_cfg: dict[str, Any]
    steps_per_epoch: int
    clip_norm: float
    batch: Callable[[np.random.Generator, LoopState, int], Any]
    loss: Callable[[nn.Module, Any, Callable[[], AbstractContextManager[Any]]], torch.Tensor]
    validate: Callable[[nn.Module], dict[str, Any]]
    score: Callable[[dict[str, Any]], list[float]]
    higher_is_better: bool
    describe_validation: Callable[[dict[str, Any]], str]
    model_config: Callable[[nn.Module, dict[str, Any], dict[str, Any]], tuple[dict[str, Any], str]]
    start_epoch: Callable[[np.random.Generator], list[int] | None] | None = None


def _better(key: list[float], best: list[float] | None, higher: bool) -> bool:
    return best is None or (key > best if higher else key < best)


def fit(ctx: DistContext, net: nn.Module, hooks: TrainingHooks, cfg: dict[str, Any], train_cases: Sequence[Any],
        val_cases: Sequence[Any], all_cases: Sequence[Any], rng: np.random.Generator, t0: float, out_dir: Path,
        progress: Progress, resume: bool, overwrite: bool, data: Any, phantom_options: dict[str, Any] | None,
        validation_given: bool) -> Path:
    """Train ``net`` (on ``ctx.device``) and save it as a model folder at ``out_dir``; returns its path on every
    rank. ``cfg``: the hyper-parameters (``epochs``, ``batch``, ``lr``, ``weight_decay``, ``seed``, ``val_every``,
    ``checkpoint_every``, optional ``time_budget_s``); ``rng``: the trainer's seeded generator (it prepared the
    cases with it); ``t0``: when the training began."""
    from ..models.loading import save_model
    from .augment import describe_augmentation

    epochs, lr, seed, val_every = (cfg[k] for k in ("epochs", "lr", "seed", "val_every"))
    dev = ctx.device
    ckpt = Checkpointer(out_dir, ctx, cfg["checkpoint_every"],
                        fingerprint(hooks.kind, hooks.architecture, hooks.input_cfg, cfg, train_cases, val_cases,
                                    ctx.world_size), cfg)
    resumed = ckpt.start(resume, progress)
    if resumed is not None:  # before DDP wraps the network (it copies rank 0's weights to all ranks)
        net.load_state_dict(resumed.model)
    if ctx.enabled:  # each rank draws its own batches; DDP starts every rank from rank 0's weights
        rng = np.random.default_rng(seed + ctx.rank)
        torch.manual_seed(seed + ctx.rank)
    model = wrap_model(net, ctx)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg["weight_decay"])
    steps_per_epoch = hooks.steps_per_epoch
    total = max(1, epochs * steps_per_epoch)
    loop = LoopState()
    if resumed is not None:
        opt.load_state_dict(resumed.optimizer)
        loop = resumed.loop
        restore_rng(resumed.rng, rng, dev)
        t0 = time.time() - loop.elapsed_s
    budget = cfg.get("time_budget_s")
    for epoch in range(loop.epoch, epochs):
        model.train()
        if loop.step_in_epoch == 0:
            loop.epoch, loop.losses = epoch, []
            if hooks.start_epoch is not None:
                loop.order = hooks.start_epoch(rng)
        for s in range(loop.step_in_epoch, steps_per_epoch):
            batch = hooks.batch(rng, loop, s)
            set_learning_rate(opt, loop.step, total, lr)
            loss = hooks.loss(model, batch, lambda: autocast(dev))
            optimiser_step(opt, loss, model.parameters(), hooks.clip_norm)
            loop.losses.append(loss.item())
            loop.step, loop.step_in_epoch = loop.step + 1, s + 1
            if ckpt.due_after_step(loop):
                ckpt.save(loop, net, opt, rng, t0)
        epoch_loss = all_reduce_mean(float(np.mean(loop.losses)))  # mean over ranks (this rank's alone when single)
        msg = f"epoch {epoch + 1}/{epochs} loss {epoch_loss:.4f}"
        out_of_time = broadcast_flag(bool(budget) and time.time() - t0 > float(budget))  # rank 0's clock decides
        last = epoch + 1 == epochs or out_of_time
        if ctx.is_main and val_cases and ((epoch + 1) % max(1, val_every) == 0 or last):
            loop.metrics = hooks.validate(net)
            msg += hooks.describe_validation(loop.metrics)
            key = hooks.score(loop.metrics)
            if _better(key, loop.best_key, hooks.higher_is_better):
                loop.best_key, loop.best_metrics = key, {**loop.metrics, "epoch": epoch + 1}
                loop.best_state = copy.deepcopy(net.state_dict())
        loop.metrics["train_loss_last_epoch"] = epoch_loss
        loop.epoch, loop.step_in_epoch = epoch + 1, 0
        if ckpt.due_after_epoch() and not last:
            ckpt.save(loop, net, opt, rng, t0)
        progress("train", (epoch + 1) / epochs, msg)
        if out_of_time:  # stop early but keep the best validated weights
            progress("train", 1.0, f"time budget of {budget} s reached after epoch {epoch + 1}")
            break
    if ctx.enabled and not parameters_in_sync(model):
        raise RuntimeError("the training processes ended with different weights; check that every rank runs the "
                           "same IACSeg and PyTorch versions")
    if not ctx.is_main:  # rank 0 writes the model; the others wait for it and return the same folder
        barrier()
        return out_dir
    metrics = dict(loop.metrics)
    if loop.best_state is not None and loop.best_metrics is not None:
        net.load_state_dict(loop.best_state)
        metrics = {**loop.best_metrics, "train_loss_last_epoch": loop.metrics.get("train_loss_last_epoch")}
    record = training_record(cfg, data, phantom_options, all_cases, len(train_cases), len(val_cases), t0, dev)
    record.update(world_size=ctx.world_size, effective_batch=cfg["batch"] * ctx.world_size,
                  validation="given cases" if validation_given else "random split",
                  augmentation=describe_augmentation(cfg, hooks.kind), steps=loop.step)
    config, card = hooks.model_config(net, metrics, record)
    path = save_model(out_dir, net.cpu(), config, card, overwrite=overwrite)
    ckpt.remove()  # only once the model folder is in place
    barrier()
    return path
