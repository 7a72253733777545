"""Data-parallel training (PyTorch DDP) when launched by ``torchrun``; a no-op in a single process.

``torchrun --nproc_per_node N -m iacseg train …`` starts N copies of the command and sets ``WORLD_SIZE``,
``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in each. `start` reads them, joins the process
group (NCCL on CUDA, one GPU per local rank; gloo on CPU) and returns a `DistContext`; the trainers wrap their
network in `DistributedDataParallel`, so each optimiser step averages the gradients of all ranks and every rank
holds the same weights. Rank 0 alone validates, saves and reports progress; the others wait at a barrier.

Nothing is rescaled: each rank runs the same steps with ``batch`` samples of its own (its own random stream,
seed + rank), so the effective batch is ``batch × WORLD_SIZE`` and an epoch sees ``WORLD_SIZE`` times as many
samples. Divide the epochs (or steps per epoch) by the world size for the same number of samples in less time.
"""

from __future__ import annotations

import datetime as _dt
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn

from ..core.errors import InputError

#: How long a rank waits for the others (e.g. while rank 0 validates) before the run fails.
TIMEOUT = _dt.timedelta(minutes=60)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly one-process) training run."""

    world_size: int
    rank: int
    local_rank: int
    device: torch.device
    backend: str | None = None
    owns_group: bool = False  # this context joined the process group, so `stop` leaves it

    @property
    def enabled(self) -> bool:
        """True when several processes train together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that validates, saves and reports."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise InputError(f"environment variable {name}={text!r} is not a whole number; launch training with "
                         "torchrun or unset it") from None


def env_ranks() -> tuple[int, int, int]:
    """``(WORLD_SIZE, RANK, LOCAL_RANK)`` from the environment torchrun sets; ``(1, 0, 0)`` when unset."""
    world, rank, local = _env_int("WORLD_SIZE", 1), _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if world < 1 or not 0 <= rank < world or local < 0:
        raise InputError(f"WORLD_SIZE={world}, RANK={rank}, LOCAL_RANK={local} do not describe a valid training "
                         "group; launch training with torchrun")
    return world, rank, local


def is_main() -> bool:
    """True on rank 0 of a running process group, or when this process was not launched as one of several."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return env_ranks()[1] == 0


def device_for_rank(device: str | torch.device | None, local_rank: int, world_size: int) -> torch.device:
    """The training device of one rank: ``"auto"``/``"cuda"``/``"cuda:N"`` → ``cuda:LOCAL_RANK`` (one GPU per
    process) when several processes train together; ``"cpu"`` (and None) → CPU."""
    from ..core.device import resolve_device

    dev = resolve_device(device)
    if dev.type != "cuda" or world_size == 1:
        return dev
    if local_rank >= torch.cuda.device_count():
        raise InputError(f"torchrun started more processes on this node than it has GPUs "
                         f"({torch.cuda.device_count()}); start at most one process per GPU, or train on the "
                         "cpu device", parameter="device")
    return torch.device("cuda", local_rank)


def start(device: str | torch.device | None = "auto") -> DistContext:
    """Join the process group described by the environment (or reuse one already joined) → `DistContext`.

    Single process (no ``WORLD_SIZE`` > 1): only resolves ``device``; nothing else changes."""
    if dist.is_available() and dist.is_initialized():
        world, rank = dist.get_world_size(), dist.get_rank()
        local = _env_int("LOCAL_RANK", rank)
        dev = device_for_rank(device, local, world)
        return DistContext(world, rank, local, dev, dist.get_backend(), owns_group=False)
    world, rank, local = env_ranks()
    dev = device_for_rank(device, local, world)
    if world == 1:
        return DistContext(1, 0, 0, dev)
    if not dist.is_available():
        raise InputError("this PyTorch build has no torch.distributed; train in a single process")
    if not os.environ.get("MASTER_ADDR") or not os.environ.get("MASTER_PORT"):
        raise InputError("WORLD_SIZE is set but MASTER_ADDR/MASTER_PORT are not; launch training with torchrun")
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend, timeout=TIMEOUT)
    return DistContext(world, rank, local, dev, backend, owns_group=True)


def stop(ctx: DistContext) -> None:
    """Leave the process group if `start` joined it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def session(device: str | torch.device | None = "auto") -> Iterator[DistContext]:
    """`start` … `stop` as a context manager."""
    ctx = start(device)
    try:
        yield ctx
    finally:
        stop(ctx)


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _comm_device() -> torch.device:
    """Tensors for collectives live on the current GPU under NCCL, on the CPU under gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    """Wait until every rank gets here (no-op in a single process)."""
    if _active():
        dist.barrier()


def all_reduce_mean(value: float) -> float:
    """Mean of ``value`` over the ranks (``value`` itself in a single process)."""
    if not _active():
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / dist.get_world_size()


def broadcast_flag(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank, so that all ranks take the same branch (e.g. stop early)."""
    if not _active():
        return bool(flag)
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=_comm_device())
    dist.broadcast(t, src=0)
    return bool(t.item())


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """``DistributedDataParallel(model)`` when several processes train together (rank 0's weights are copied to
    all ranks here); the model itself otherwise."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, output_device=ids[0] if ids else None)


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a `DistributedDataParallel` wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def max_parameter_difference(model: nn.Module) -> float:
    """Largest absolute difference between this rank's parameters and rank 0's, over all ranks (0.0 in a
    single process). Every rank must call it."""
    params = [p.detach().reshape(-1).to(torch.float64) for p in unwrap(model).parameters()]
    if not _active() or not params:
        return 0.0
    mine = torch.cat(params).to(_comm_device())
    ref = mine.clone()
    dist.broadcast(ref, src=0)
    diff = (mine - ref).abs().max().reshape(1)
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff.item())


def parameters_in_sync(model: nn.Module, atol: float = 0.0) -> bool:
    """True when every rank holds the same parameters as rank 0 (within ``atol``). Every rank must call it."""
    return max_parameter_difference(model) <= atol


def all_gather_text(text: str) -> list[str]:
    """Every rank's ``text``, in rank order, on every rank (``[text]`` in a single process). Every rank must call
    it. Used to collect each rank's random-generator state into rank 0's checkpoint."""
    if not _active():
        return [text]
    data = torch.tensor(list(text.encode("utf-8")), dtype=torch.uint8, device=_comm_device())
    sizes = [torch.zeros(1, dtype=torch.int64, device=_comm_device()) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([data.numel()], dtype=torch.int64, device=_comm_device()))
    longest = max(int(s.item()) for s in sizes)
    padded = torch.zeros(longest, dtype=torch.uint8, device=_comm_device())
    padded[:data.numel()] = data
    parts = [torch.zeros(longest, dtype=torch.uint8, device=_comm_device()) for _ in sizes]
    dist.all_gather(parts, padded)
    return [bytes(p[:int(s.item())].cpu().tolist()).decode("utf-8") for p, s in zip(parts, sizes)]
