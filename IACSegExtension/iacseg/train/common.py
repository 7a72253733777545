"""Training plumbing shared by the segmenter and landmark trainers: seeds, splits, schedules, model cards."""

from __future__ import annotations

import hashlib
import json
import math
import platform
import random
import time
from typing import Any, Sequence

import numpy as np
import torch

import iacseg


def seed_everything(seed: int) -> np.random.Generator:
    """Seed python, numpy and torch; returns a numpy generator for the trainer's own sampling."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def split_cases(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, validation); at least one of each when ``n ≥ 2`` and ``val_fraction > 0``."""
    order = np.random.default_rng(seed + 7919).permutation(n).tolist()
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    else:
        n_val = 0
    return sorted(order[n_val:]), sorted(order[:n_val])


def lr_at(step: int, total: int, base_lr: float, warmup_fraction: float = 0.03) -> float:
    """Learning rate: linear warm-up then cosine decay to 1 % of ``base_lr``."""
    warm = max(1, int(total * warmup_fraction))
    if step < warm:
        return base_lr * (step + 1) / warm
    t = min(1.0, (step - warm) / max(1, total - warm))
    return base_lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * t)))


def next_version(version: str | None) -> str:
    """The version of a fine-tuned child: the parent's last number + 1 ("1.0" → "1.1", "1.9" → "1.10",
    "2" → "3"); ".1" is appended when the last part is not a number ("1.0-rc" → "1.0-rc.1")."""
    text = str(version or "1.0").strip() or "1.0"
    head, _, last = text.rpartition(".")
    if last.isdigit():
        return f"{head}.{int(last) + 1}" if head else str(int(last) + 1)
    return f"{text}.1"


def model_identity(defaults: dict[str, Any], parent: dict[str, Any] | None, name: str | None,
                   version: str | None) -> tuple[str, str]:
    """``(name, version)`` of a new model: the given ones, else for a fine-tune the parent's name and
    `next_version` of its version, else the trainer's defaults (fresh training: "1.0")."""
    if parent is not None:
        return (name or str(parent.get("name") or defaults["name"]),
                version or next_version(parent.get("version")))
    return name or str(defaults["name"]), version or str(defaults["version"])


def data_hash(case_names: Sequence[str], extra: dict[str, Any] | None = None) -> str:
    """Short SHA-256 of the training case names and data options (identifies the training set)."""
    payload = json.dumps({"cases": list(case_names), "extra": extra or {}}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def environment() -> dict[str, str]:
    return {"iacseg": iacseg.__version__, "torch": torch.__version__, "python": platform.python_version()}


def model_card(title: str, config: dict[str, Any], intended: str, method: str) -> str:
    """Markdown model card: what it is, how it was trained, on what, its validation metrics and limits."""
    metrics = config.get("metrics", {})
    hp = config.get("training", {}).get("hyperparameters", {})
    lines = [
        f"# {title} — `{config.get('name')}` v{config.get('version')}", "",
        f"**{config.get('disclaimer', 'synthetic data — not for clinical use')}.**", "",
        "## Intended use", "", intended, "",
        "## Method", "", method, "",
        "## Architecture", "", f"`{config['architecture']['name']}` with parameters:", "",
        "```json", json.dumps(config["architecture"]["params"], indent=2), "```", "",
        f"Parameters: {config.get('n_parameters', '?')}.", "",
        "## Input preparation", "", "```json", json.dumps(config.get("input", {}), indent=2), "```", "",
        "## Training data", "", str(config.get("training", {}).get("data", "")), "",
        f"Data hash: `{config.get('training', {}).get('data_hash', '')}`.", "",
        "## Hyper-parameters", "", "```json", json.dumps(hp, indent=2, default=str), "```", "",
    ]
    lines += _augmentation_lines(config.get("training", {}).get("augmentation"))
    lines += ["## Validation metrics (held-out cases)", ""]
    lines += [f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}" for k, v in metrics.items()] or ["- none"]
    lines += ["", "## Limitations", "",
              "Trained only on synthetic phantoms; real scanners, pathology, motion and metal are not "
              "represented. Retrain on reviewed local data (`iacseg train`) before any research use.", ""]
    return "\n".join(lines)


def _augmentation_lines(aug: dict[str, Any] | None) -> list[str]:
    """The model card's augmentation section (empty when the config records none)."""
    if not aug:
        return []
    lines = ["## Augmentation", "", f"Mode `{aug.get('mode')}`" + (":" if aug.get("transforms") else "."), ""]
    lines += [f"- {t['name']} (p = {t['p']:g}): {t['what']}" for t in aug.get("transforms", [])]
    if aug.get("labels"):
        lines += ["", f"Labels: {aug['labels']}."]
    return lines + [""]


def training_record(cfg: dict[str, Any], data: Any, phantom_options: dict[str, Any] | None, cases: Sequence[Any],
                    n_train: int, n_val: int, t0: float, device: Any) -> dict[str, Any]:
    """The ``training`` block of a model's config: data description and hash, split sizes, hyper-parameters,
    duration, device, environment. Consumes ``cfg["data_description"]`` when given."""
    from .data import describe_data

    description = cfg.pop("data_description", None) or describe_data(data, phantom_options)
    return {"data": description, "n_train": n_train, "n_val": n_val,
            "data_hash": data_hash([c.name for c in cases], phantom_options),
            "hyperparameters": {k: v for k, v in cfg.items() if k not in ("name", "version")},
            "seconds": round(time.time() - t0, 1), "device": str(device), "environment": environment()}
