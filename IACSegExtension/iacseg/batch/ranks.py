"""A batch over several processes, GPUs and nodes with ``torchrun``: each rank segments every n-th case (rank i of
n: shard i/n) with its own models on its own GPU (``cuda:LOCAL_RANK``; the CPU when there is none), writes its
``summary_shard{i}of{n}.csv``, and after all ranks have finished rank 0 merges them into ``summary.csv``.

Resumable like any batch: running the same command again skips the cases that finished. A failed case is
recorded in its shard's summary and the run goes on. torch.distributed (gloo) is used only to wait for every rank
and to add up the counts; the cases themselves never cross ranks.

Two nodes, 8 GPUs each (run on both, ``--node_rank`` 0 and 1)::

    torchrun --nnodes 2 --nproc_per_node 8 --node_rank 0 --master_addr HOST0 --master_port 29500 \\
        -m iacseg batch /cohort -o /results --progress jsonl

SLURM (one task per node; torchrun starts the ranks)::

    srun --nodes 2 --ntasks-per-node 1 --gpus-per-node 8 bash -c 'torchrun --nnodes $SLURM_NNODES \\
        --nproc_per_node 8 --node_rank $SLURM_NODEID --master_addr $(scontrol show hostnames | head -1) \\
        --master_port 29500 -m iacseg batch /cohort -o /results'
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterable

from ..core.errors import InputError
from ..pipeline import SegmentOptions
from .run import run_batch
from .summary import merge_summaries

#: How long a rank waits for the others at the end (a whole shard of a large cohort may take hours).
FINISH_TIMEOUT = timedelta(hours=48)


def torchrun_world() -> tuple[int, int] | None:
    """``(rank, world size)`` when this process is one of several started by ``torchrun``, else None."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
    except ValueError:
        raise InputError("RANK and WORLD_SIZE must be whole numbers (as torchrun sets them)",
                         parameter="shard") from None
    if world <= 1:
        return None
    if not 0 <= rank < world:
        raise InputError(f"RANK {rank} is outside 0..{world - 1}", parameter="shard")
    return rank, world


def rank_device(options: SegmentOptions) -> SegmentOptions:
    """``options`` with this rank's GPU (``cuda:LOCAL_RANK``) when the device is auto/cuda and GPUs exist."""
    import torch

    if str(options.device).lower() in ("auto", "cuda") and torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()
        return replace(options, device=f"cuda:{local}")
    return options


def run_ranked(inputs: Iterable[str | Path], out_dir: str | Path, options: SegmentOptions | None = None,
               **batch: Any) -> dict[str, int]:
    """This rank's share of the batch (`run_batch` with shard rank/world), then wait for every rank; rank 0
    merges the shard summaries into ``summary.csv``. Returns the counts of all ranks together."""
    import torch
    import torch.distributed as dist

    world = torchrun_world()
    if world is None:
        raise InputError("not started by torchrun with more than one process; use iacseg batch directly",
                         parameter="shard")
    rank, size = world
    options = rank_device(options or SegmentOptions())
    dist.init_process_group("gloo", timeout=FINISH_TIMEOUT)
    counts = {"done": 0, "skipped": 0, "failed": 0}
    error: BaseException | None = None
    try:
        counts = run_batch(list(inputs), out_dir, options, shard=(rank, size), **batch)
    except BaseException as exc:  # every rank must still reach the barrier below, or the others wait forever
        error = exc
    try:
        totals = torch.tensor([counts["done"], counts["skipped"], counts["failed"], int(error is not None)])
        dist.all_reduce(totals)
        if error is not None:
            raise error
        if int(totals[3]):
            raise InputError(f"{int(totals[3])} rank(s) stopped before finishing their cases; see their messages "
                             "and run the same command again (finished cases are skipped)", parameter="shard")
        if rank == 0:
            merge_summaries(out_dir, size)
        dist.barrier()  # summary.csv is complete before any rank reports
    finally:
        dist.destroy_process_group()
    return {"done": int(totals[0]), "skipped": int(totals[1]), "failed": int(totals[2])}
