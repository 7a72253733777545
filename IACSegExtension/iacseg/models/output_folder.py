"""Where a new model folder may be written (`iacseg train`, `iacseg pretrain`, `save_model`): the output safety of
``iacseg segment`` (`iacseg.core.folder_guard`) applied to model folders.

`check_model_output` runs before any training starts. It refuses (`InputError`, exit 2, one line) a model folder
that is empty text, ``/``, the current or home folder (or above them), or overlaps an input (the training data,
the init model); whose name is too long or whose place cannot be written; or that already exists and is
not empty — unless ``overwrite`` is given and the folder holds an earlier IACSeg model folder and nothing else
(`model_folder_problem`). `check_model_replaceable` repeats the last rule just before the atomic write.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from ..core.errors import InputError
from ..core.folder_guard import (MIB, check_free_space, check_location, check_name_length, check_replaceable,
    check_writable)
from .folders import CARD_FILE, CONFIG_FILE, KINDS, PRETRAINED_KINDS, WEIGHTS_FILE

#: The files of a model folder; a folder holding only these (config.json an IACSeg config) may be replaced.
MODEL_FILES = frozenset((WEIGHTS_FILE, CONFIG_FILE, CARD_FILE))
#: Free space asked for a new model folder (the weights of IACSeg's networks are a few MB to a few hundred).
MODEL_OUTPUT_BYTES = 64 * MIB


def _is_model_config(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    try:
        if path.stat().st_size > 16 * MIB:
            return False
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return (isinstance(config, dict) and config.get("kind") in KINDS + PRETRAINED_KINDS
            and isinstance(config.get("architecture"), dict))


def model_folder_problem(folder: str | os.PathLike) -> str | None:
    """None when ``folder`` holds an IACSeg model folder (its config.json names a model kind and an architecture)
    and nothing else, so it may be replaced with ``overwrite``; otherwise a short reason (for messages)."""
    folder = Path(folder)
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    foreign = sorted(e.name for e in entries
                     if e.name not in MODEL_FILES or e.is_symlink() or not e.is_file(follow_symlinks=False))
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        return f"it holds files that are not part of an IACSeg model ({shown})"
    if not _is_model_config(folder / CONFIG_FILE):
        return f"it holds no IACSeg model ({CONFIG_FILE} missing or not an IACSeg model configuration)"
    return None


def check_model_replaceable(out_dir: str | os.PathLike, overwrite: bool) -> None:
    """Refuse to write the model folder ``out_dir`` when it exists and is not an empty folder or (with
    ``overwrite``) an earlier IACSeg model folder."""
    check_replaceable(out_dir, overwrite, model_folder_problem, noun="model folder", ours="an earlier IACSeg model",
                      ours_plural="IACSeg model folders")


def _paths(inputs: Iterable[Any]) -> list[Path]:
    """The inputs that are paths (training data may also be phantom seeds or in-memory cases)."""
    return [Path(p) for p in inputs if isinstance(p, (str, os.PathLike)) and str(p) != ""]


def check_model_output(out_dir: str | os.PathLike | None, *, inputs: Iterable[Any] = (),
                       overwrite: bool = False) -> Path:
    """Every check on a new model folder that must pass before training starts; returns ``Path(out_dir)``.

    ``inputs``: what the run reads (training data folder, init model folder, store…; values that are not
    paths are ignored). Raises `InputError` with one line naming the folder and what to do; nothing is created."""
    if out_dir is None or not str(out_dir).strip():
        raise InputError("the model folder is empty; give the name of a new folder, e.g. models/my-unet",
                         parameter="output")
    out = Path(out_dir)
    check_name_length(out)
    check_location(out, _paths(inputs))
    check_model_replaceable(out, overwrite)
    base = check_writable(out)
    check_free_space(base, MODEL_OUTPUT_BYTES, out)
    return out
