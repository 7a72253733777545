"""The one map from the library's parameter names to this command line's flags, per command.

The library never names a flag: an `IACSegError` says what is wrong in words and names the parameter it is about
(``exc.parameter``: ``"threshold"``, ``"output"``, …). Only here does a parameter become a flag, so the CLI can
print ``iacseg: error (--threshold): threshold 1.5 is outside 0–1; …`` while the Slicer module shows the same
sentence as it is. An error about a parameter the command has no flag for (e.g. ``overwrite`` in ``iacseg demo``)
is printed without one.
"""

from __future__ import annotations

import argparse
from typing import Mapping

_OUTPUT = ("-o", "--output")

#: What ``iacseg segment`` and ``iacseg batch`` share (`commands_segment.add_model_options`).
_SEGMENT = {
    "output": _OUTPUT, "overwrite": ("--overwrite",), "overview": ("--overview",),
    "model": ("--model",), "landmark_model": ("--landmark-model",), "device": ("--device",),
    "threshold": ("--threshold",), "series": ("--series",), "risk_cutpoints": ("--risk-cutpoints",),
    "progress": ("--progress",), "allow_gaps": ("--allow-gaps",),
}

#: What ``iacseg train`` and ``iacseg pretrain mae|desd`` share: the training data and the new model folder.
_TRAINING = {
    "data": ("--data",), "phantoms": ("--phantoms",), "phantom_seed": ("--phantom-seed",),
    "phantom_slice_mm": ("--phantom-slice-mm",), "phantom_matrix": ("--phantom-matrix",),
    "output": _OUTPUT, "overwrite": ("--overwrite",), "name": ("--name",), "epochs": ("--epochs",),
    "steps_per_epoch": ("--steps-per-epoch",), "batch": ("--batch",), "lr": ("--lr",), "device": ("--device",),
    "seed": ("--seed",), "progress": ("--progress",),
}

#: command (``"segment"``, ``"store add"``, ``"pretrain mae"``, …) → library parameter → its flag(s).
FLAGS: dict[str, dict[str, tuple[str, ...]]] = {
    "segment": dict(_SEGMENT),
    "batch": {**_SEGMENT, "shard": ("--shard",)},
    "relabel": {"mask": ("--mask",), "landmarks": ("--landmarks",), "ct": ("--ct",), "report": ("--report",),
                "output": _OUTPUT, "overwrite": ("--overwrite",)},
    "demo": {"output": _OUTPUT, "seed": ("--seed",), "device": ("--device",), "progress": ("--progress",)},
    "phantom": {"output": _OUTPUT, "seed": ("--seed",), "count": ("--count",), "slice_mm": ("--slice-mm",),
                "tilt": ("--tilt",), "dicom": ("--dicom",), "matrix": ("--matrix",), "family": ("--family",),
                "truncate": ("--truncate",), "head_rest": ("--head-rest", "--no-head-rest"),
                "progress": ("--progress",)},
    "evaluate": {"pred": ("--pred",), "truth": ("--truth",), "output": _OUTPUT, "plots": ("--plots",),
                 "bootstrap": ("--bootstrap",), "seed": ("--seed",), "risk_cutpoints": ("--risk-cutpoints",),
                 "progress": ("--progress",)},
    "calibrate": {"model": ("--model",), "data": ("--data",), "landmark_model": ("--landmark-model",),
                  "device": ("--device",), "thresholds": ("--thresholds",), "output": _OUTPUT, "png": ("--png",),
                  "write": ("--write",), "progress": ("--progress",)},
    "train": {**_TRAINING, "from_store": ("--from-store",), "init": ("--init",), "arch": ("--arch",),
              "decoder": ("--decoder",), "vit_config": ("--vit-config",), "vit_patch": ("--vit-patch",),
              "version": ("--version",), "patch": ("--patch",), "augment": ("--augment",),
              "checkpoint_every": ("--checkpoint-every",), "resume": ("--resume",)},
    "pretrain mae": {**_TRAINING, "config": ("--config",), "patch": ("--patch",), "roi": ("--roi",),
                     "mask_ratio": ("--mask-ratio",)},
    "pretrain desd": {**_TRAINING, "patch": ("--patch",)},
    "export-nnunet": {"data": ("--data",), "output": _OUTPUT, "dataset_id": ("--dataset-id",),
                      "dataset_name": ("--dataset-name",), "val_fraction": ("--val-fraction",),
                      "keep_names": ("--keep-names",), "progress": ("--progress",)},
    "store add": {"image": ("--image",), "engine_output": ("--engine-output",), "case_id": ("--case-id",),
                  "subject": ("--subject",), "keep_identifiers": ("--keep-identifiers",), "reader": ("--reader",),
                  "allow_gaps": ("--allow-gaps",)},
    "store status": {"reader": ("--reader",), "approve": ("--approve",)},
    "store export": {"output": _OUTPUT, "dataset_id": ("--dataset-id",), "dataset_name": ("--dataset-name",),
                     "status": ("--status",)},
    "store agreement": {"output": _OUTPUT},
}

#: top-level command → the argparse ``dest`` of its sub-command (``iacseg store add`` → ``store_command``).
SUBCOMMAND_DEST = {"models": "action", "pretrain": "what", "store": "store_command"}


def command_of(args: argparse.Namespace) -> str:
    """The command ``args`` were parsed for, as `FLAGS` names it: ``"segment"``, ``"store add"``, …"""
    command = str(getattr(args, "command", "") or "")
    sub = getattr(args, SUBCOMMAND_DEST.get(command, ""), None) if command in SUBCOMMAND_DEST else None
    return f"{command} {sub}" if sub else command


def flags_for(command: str, parameter: str | None, table: Mapping[str, Mapping[str, tuple[str, ...]]] = FLAGS,
              ) -> tuple[str, ...]:
    """The flag(s) of library ``parameter`` on ``command``; empty when the command has none (or no parameter)."""
    if not parameter:
        return ()
    return tuple(table.get(command, {}).get(parameter, ()))


def error_line(message: str, command: str, parameter: str | None) -> str:
    """The one line the CLI prints for a library error: ``iacseg: error (--flag): message``, or without the flag
    when the error names no parameter or the command has no flag for it."""
    flags = flags_for(command, parameter)
    return f"iacseg: error ({'/'.join(flags)}): {message}" if flags else f"iacseg: error: {message}"
