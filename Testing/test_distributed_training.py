"""Training under torchrun / DDP on CPU (gloo): one model folder, written once, by ranks that stayed in sync."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from iacseg.models.loading import load_model
from iacseg.train.distributed import (DistContext, all_reduce_mean, broadcast_flag, max_parameter_difference,
                                      parameters_in_sync, start, wrap_model)

WORLD = 2
PORT_RACES = ("EADDRINUSE", "Address already in use", "DistNetworkError")


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def _batches(rank: int, steps: int = 3) -> list[torch.Tensor]:
    """Each rank's own data (different on every rank), 16 samples per step."""
    gen = torch.Generator().manual_seed(100 + rank)
    return [torch.randn(16, 4, generator=gen) for _ in range(steps)]


def _sgd_steps(model: torch.nn.Module, batches: list[torch.Tensor]) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x in batches:
        loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def _worker(rank: int, init_file: str, out: str) -> None:
    """One of two gloo ranks: a few DDP steps (and, as a control, plain steps) on rank-specific data, then the
    tiny landmark trainer under the same process group."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        ctx = DistContext(WORLD, rank, rank, torch.device("cpu"), "gloo")
        ddp = wrap_model(_mlp(), ctx)
        _sgd_steps(ddp, _batches(rank))
        plain = _mlp()
        _sgd_steps(plain, _batches(rank))
        result = {"ddp_diff": max_parameter_difference(ddp), "ddp_in_sync": parameters_in_sync(ddp),
                  "plain_diff": max_parameter_difference(plain), "plain_in_sync": parameters_in_sync(plain),
                  "mean_rank": all_reduce_mean(float(rank)), "flag": broadcast_flag(rank == 0),
                  "reused_group": not start("cpu").owns_group,
                  "ddp_params": [p.detach().reshape(-1).tolist() for p in ddp.module.parameters()]}
        sys.path.insert(0, str(Path(__file__).parent))
        from test_train_models import toy_case

        from iacseg.train.landmarks import train_landmarks

        path = train_landmarks([toy_case(s) for s in range(3)], Path(out) / "dst", epochs=2, batch=1, lr=1e-3,
                               device="cpu", seed=0, val_fraction=0.34, val_every=1, encoder_features=(4, 8),
                               dim=16, depth=1, heads=2, max_slices=32, fov_mm=48.0, size=16)
        result["returned"] = str(path)
        result["model_exists_on_return"] = (path / "config.json").is_file()
        (Path(out) / f"rank{rank}.json").write_text(json.dumps(result))
        dist.barrier()  # both ranks leave together: gloo can abort a rank whose peer tears down mid-exchange
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # ~12 s: two spawned processes import torch
def test_ddp_ranks_train_one_model_in_sync(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=WORLD, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    for r in results:
        assert r["ddp_diff"] == 0.0 and r["ddp_in_sync"]  # identical weights on every rank after DDP steps
        assert r["plain_diff"] > 1e-4 and not r["plain_in_sync"]  # without DDP the same steps diverge
        assert r["mean_rank"] == 0.5 and r["flag"] is True and r["reused_group"]
        assert r["returned"] == str(tmp_path / "dst") and r["model_exists_on_return"]
    # the DDP update is the one-process update on both ranks' data together (gradients averaged)
    reference = _mlp()
    _sgd_steps(reference, [torch.cat(pair) for pair in zip(_batches(0), _batches(1))])
    for got, want in zip(results[0]["ddp_params"], reference.parameters()):
        assert torch.allclose(torch.tensor(got), want.detach().reshape(-1), atol=1e-5)
    _, cfg = load_model(tmp_path / "dst", kind="landmarks")
    assert cfg["training"]["world_size"] == WORLD and cfg["training"]["effective_batch"] == WORLD
    assert {p.name for p in tmp_path.iterdir()} - {"rendezvous"} == {"dst", "rank0.json", "rank1.json"}


@pytest.mark.slow  # ~20 s on 2 CPU cores: torchrun, two ranks each making two small phantoms
def test_torchrun_two_cpu_processes_write_one_segmenter(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", IACSEG_HOME=str(tmp_path / "home"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(WORLD), "--standalone",
           "-m", "iacseg", "train", "segmenter", "--phantoms", "2", "--phantom-slice-mm", "5", "--phantom-matrix",
           "256", "--epochs", "2", "--steps-per-epoch", "2", "--patch", "16", "32", "32", "--batch", "1",
           "--device", "cpu", "--progress", "jsonl", "-o", "model"]
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    if run.returncode != 0 and any(s in run.stderr for s in PORT_RACES):  # another program took the free port
        shutil.rmtree(tmp_path / "model", ignore_errors=True)
        run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    errors = [line for line in run.stderr.splitlines() if "rror" in line or "raise" in line]
    assert run.returncode == 0, "\n".join(errors[-30:]) + "\n" + run.stderr[-3000:]
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    epochs = [e["message"] for e in events if e["stage"] == "train"]
    assert len(epochs) == 2 and epochs[0].startswith("epoch 1/2") and "val Dice" in epochs[1]  # rank 0 only
    assert run.stderr.count("model written to") == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == ["model"]  # no second copy, no temp
    module, cfg = load_model(tmp_path / "model", kind="segmenter")
    assert cfg["training"]["world_size"] == WORLD and cfg["training"]["effective_batch"] == WORLD
    assert cfg["version"] == "1.0" and cfg["training"]["n_train"] == 1 and cfg["training"]["n_val"] == 1
