"""Checkpoints that let both trainers resume an interrupted training and end exactly where an uninterrupted one
would (same seed, same data, same settings; exact on CPU).

A checkpoint is the folder ``<out_dir>.checkpoint`` beside the model folder, written every ``checkpoint_every``
optimiser steps (an int) or at the end of every epoch ("epoch", the default; "none" or 0: never), through a
temporary folder renamed into place (the previous checkpoint is replaced only once the new one is complete):

* ``model.safetensors`` — the network's weights; ``best.safetensors`` — the best validated weights so far;
* ``optimizer.pt`` — the optimiser state (`torch.save`; read back only with ``torch.load(weights_only=True)``);
* ``state.json`` — where the loop stands (epoch, step in it, total steps, this epoch's losses and shuffle,
  last metrics, best score and metrics, seconds so far), every rank's random-generator states (numpy generator,
  numpy/python/torch global states) and the ``fingerprint`` of the training: architecture, input preparation, a
  SHA-256 of the prepared training and validation cases, world size and every hyper-parameter that changes the
  result.

``resume=True`` continues from the checkpoint when there is one (and starts afresh when there is none); a
checkpoint whose fingerprint differs is refused with the differences named. Without ``resume`` the training
starts afresh and says so through ``progress`` (the old checkpoint stays until the new run writes its first
one, so stopping at once keeps it; callers that re-run interrupted jobs keep working). The folder is removed
once the model folder is written. Under ``torchrun`` only rank 0 writes (the others' generator states are gathered to it),
and every rank reads the checkpoint at the start, so it must lie on a filesystem all ranks see.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..core.errors import InputError
from ..core.progress import Progress
from .distributed import DistContext, all_gather_text, all_reduce_mean

SUFFIX = ".checkpoint"
STATE_FILE, MODEL_FILE, BEST_FILE, OPTIMIZER_FILE = ("state.json", "model.safetensors", "best.safetensors",
                                                     "optimizer.pt")
FORMAT = 1
#: Hyper-parameters that may differ on resume (they do not change the weights).
HARMLESS = ("checkpoint_every", "time_budget_s", "data_description", "name", "version")


def checkpoint_dir(out_dir: str | Path) -> Path:
    """``<out_dir>.checkpoint``, beside the model folder."""
    out = Path(out_dir).absolute()
    return out.with_name(out.name + SUFFIX)


def interval(value: Any) -> tuple[str, int]:
    """``checkpoint_every`` → ("epoch", 1) | ("steps", N) | ("off", 0)."""
    if value is None or value == "epoch":
        return "epoch", 1
    if value in (False, 0, "none", "off"):
        return "off", 0
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = -1
    if n < 1 or isinstance(value, float) and value != n:
        raise InputError(f"checkpoint_every must be 'epoch', 'none' or a whole number of steps, not {value!r}")
    return "steps", n


def digest_cases(cases: Sequence[Any]) -> str:
    """SHA-256 of prepared cases (every dataclass field: arrays by shape, dtype and bytes; others by repr)."""
    h = hashlib.sha256()
    for c in cases:
        for f in dataclasses.fields(c):
            v = getattr(c, f.name)
            h.update(f.name.encode())
            if isinstance(v, np.ndarray):
                a = np.ascontiguousarray(v)
                h.update(f"{a.shape}{a.dtype.str}".encode())
                h.update(a.reshape(-1).view(np.uint8))
            else:
                h.update(repr(v).encode())
    return h.hexdigest()


def _plain(x: Any) -> Any:
    """JSON-normal form (tuples → lists, numpy scalars → numbers) for comparisons."""
    return json.loads(json.dumps(x, sort_keys=True, default=str))


def fingerprint(kind: str, architecture: dict[str, Any], input_cfg: dict[str, Any], hp: dict[str, Any],
                train_cases: Sequence[Any], val_cases: Sequence[Any], world_size: int) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed."""
    return _plain({"trainer": kind, "architecture": architecture, "input": input_cfg,
                   "training_data": digest_cases(train_cases), "validation_data": digest_cases(val_cases),
                   "world_size": world_size,
                   "hyperparameters": {k: v for k, v in hp.items() if k not in HARMLESS}})


def differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Names of the fingerprint entries that differ (hyper-parameters one by one)."""
    out = [k for k in sorted(set(saved) | set(now)) if k != "hyperparameters" and saved.get(k) != now.get(k)]
    a, b = saved.get("hyperparameters", {}), now.get("hyperparameters", {})
    out += [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return out


# ----------------------------------------------------------------------------------------------- random states
def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _unb64(text: str) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(text), dtype=np.uint8).copy())


def capture_rng(rng: np.random.Generator, device: torch.device) -> dict[str, Any]:
    """Every random state this process draws from, as JSON."""
    name, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    version, internal, gauss = random.getstate()
    state = {"generator": rng.bit_generator.state, "numpy": [name, keys.tolist(), pos, has_gauss, cached],
             "python": [version, list(internal), gauss], "torch": _b64(torch.get_rng_state())}
    if device.type == "cuda":
        state["cuda"] = _b64(torch.cuda.get_rng_state(device))
    return state


def restore_rng(state: dict[str, Any], rng: np.random.Generator, device: torch.device) -> None:
    """Put back the states of `capture_rng` (``rng`` in place)."""
    rng.bit_generator.state = state["generator"]
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(_unb64(state["torch"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(_unb64(state["cuda"]), device)


# ---------------------------------------------------------------------------------------------- before a run
def _existing(path: Path) -> Path | None:
    for p in (path, path.with_name(path.name + ".previous")):  # .previous: after a crash between two renames
        if (p / STATE_FILE).is_file():
            return p
    return None


def _where(loop: dict[str, Any]) -> str:
    return f"epoch {int(loop.get('epoch', 0)) + 1}, step {loop.get('step', 0)}"


def _describe(found: Path) -> str:
    try:
        return _where(json.loads((found / STATE_FILE).read_text()).get("loop", {}))
    except (OSError, ValueError):
        return "unreadable state"


# ------------------------------------------------------------------------------------------------- loop state
@dataclass
class LoopState:
    """Where a training loop stands: ``epoch`` in progress (0-based) with ``step_in_epoch`` steps of it done."""

    epoch: int = 0
    step_in_epoch: int = 0
    step: int = 0
    losses: list[float] = field(default_factory=list)
    order: list[int] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    best_key: list[float] | None = None
    best_metrics: dict[str, Any] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    elapsed_s: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "best_state"}


@dataclass
class Resumed:
    loop: LoopState
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: dict[str, Any]


def _cpu_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


class Checkpointer:
    """Writes, finds and removes the checkpoint of one training (see the module docstring)."""

    def __init__(self, out_dir: str | Path, ctx: DistContext, every: Any, fingerprint: dict[str, Any],
                 config: dict[str, Any]):
        self.path = checkpoint_dir(out_dir)
        self.ctx = ctx
        self.mode, self.every = interval(every)
        self.fingerprint = fingerprint
        self.config = _plain(config)

    # -- reading
    def _existing(self) -> Path | None:
        return _existing(self.path)

    def start(self, resume: bool, progress: Progress) -> Resumed | None:
        """The saved state to continue from (``resume`` and a checkpoint), else None; refuses (``resume``) a
        checkpoint that does not belong to this training."""
        found = self._existing()
        if found is not None and not resume:
            progress("train", 0.0, f"starting afresh: the checkpoint of an interrupted training at {found} "
                                   f"({_describe(found)}) will be replaced; resume the training to continue "
                                   "it instead")
            found = None
        seen_by_all = all_reduce_mean(1.0 if found else 0.0)
        if seen_by_all not in (0.0, 1.0):
            raise InputError(f"only some training processes see the checkpoint {self.path}; put the output folder "
                             "on a filesystem every node shares")
        if found is None:
            if resume:
                progress("train", 0.0, f"no checkpoint at {self.path}; training from the start")
            return None
        state = json.loads((found / STATE_FILE).read_text())
        loop = state.get("loop", {})
        where = _where(loop)
        if state.get("format") != FORMAT:
            raise InputError(f"the checkpoint {self.path} has format {state.get('format')}, this IACSeg reads "
                             f"{FORMAT}; delete it to start again")
        diff = differences(state.get("fingerprint", {}), self.fingerprint)
        if diff:
            raise InputError(f"the checkpoint {self.path} belongs to a different training ({', '.join(diff)} "
                             "differ); resume with the same data and settings, or delete that folder to start "
                             "again")
        ranks = state["rng"]
        if len(ranks) != self.ctx.world_size:
            raise InputError(f"the checkpoint {self.path} was written by {len(ranks)} processes, not "
                             f"{self.ctx.world_size}")
        from safetensors.torch import load_file

        best = load_file(str(found / BEST_FILE), device="cpu") if (found / BEST_FILE).is_file() else None
        resumed = Resumed(LoopState(**{**loop, "best_state": best}), load_file(str(found / MODEL_FILE), device="cpu"),
                          torch.load(found / OPTIMIZER_FILE, map_location="cpu", weights_only=True),
                          ranks[self.ctx.rank])
        progress("train", 0.0, f"resuming from {self.path} at {where}")
        return resumed

    # -- writing
    def due_after_step(self, loop: LoopState) -> bool:
        return self.mode == "steps" and loop.step % self.every == 0

    def due_after_epoch(self) -> bool:
        return self.mode == "epoch"

    def save(self, loop: LoopState, net: torch.nn.Module, opt: torch.optim.Optimizer, rng: np.random.Generator,
             t0: float) -> None:
        """Write the checkpoint (every rank must call it: their generator states are gathered; rank 0 writes)."""
        loop.elapsed_s = time.time() - t0
        ranks = [json.loads(t) for t in all_gather_text(json.dumps(capture_rng(rng, self.ctx.device)))]
        if not self.ctx.is_main:
            return
        from safetensors.torch import save_file

        state = {"format": FORMAT, "fingerprint": self.fingerprint, "loop": loop.as_json(), "rng": ranks,
                 "config": self.config}
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            save_file(_cpu_state(net.state_dict()), str(tmp / MODEL_FILE), metadata={"format": "pt"})
            if loop.best_state is not None:
                save_file(_cpu_state(loop.best_state), str(tmp / BEST_FILE), metadata={"format": "pt"})
            torch.save(opt.state_dict(), tmp / OPTIMIZER_FILE)
            (tmp / STATE_FILE).write_text(json.dumps(state, default=str))
            self._swap_in(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _swap_in(self, tmp: Path) -> None:
        from ..core.files import fsync_dir

        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        previous = self.path.with_name(self.path.name + ".previous")
        shutil.rmtree(previous, ignore_errors=True)
        if self.path.exists():
            os.replace(self.path, previous)
        os.replace(tmp, self.path)
        shutil.rmtree(previous, ignore_errors=True)
        fsync_dir(self.path.parent)

    def remove(self) -> None:
        """Delete the checkpoint (rank 0; call after the model folder is written)."""
        if not self.ctx.is_main:
            return
        for p in (self.path, self.path.with_name(self.path.name + ".previous"),
                  *self.path.parent.glob(f".{self.path.name}.tmp-*")):
            shutil.rmtree(p, ignore_errors=True)
