"""Making a model the default of its kind (`promote`): the folder must load before the pointer file changes.
`rollback` and the pointer file itself are `iacseg.models.defaults` (torch-free)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from ..core.errors import ModelError
from .defaults import _locked, _write, read_defaults
from .folders import KINDS, check_weights, find_folder, read_config
from .loading import load_model


def _find_model(model: str | Path) -> Path:
    """A model folder from a path or a name on the model search path (`ModelError` when there is none)."""

    found = find_folder(model)
    if found is not None:
        return found.resolve()
    raise ModelError(f"no model folder or model name {str(model)!r} found; give the folder written by "
                     "`iacseg train` (see `iacseg models`)")


def validate_model_dir(model: str | Path) -> tuple[Path, dict[str, Any]]:
    """``(absolute folder, config)`` of a complete, loadable model folder; `ModelError` saying what is wrong."""

    folder = _find_model(model)
    config = read_config(folder)
    check_weights(folder)
    if config.get("kind") not in KINDS:
        raise ModelError(f"{folder}/config.json has kind {config.get('kind')!r}; a default model must be one of "
                         f"{', '.join(KINDS)}")
    load_model(folder, "cpu", kind=config["kind"])  # the weights must really fit the architecture
    return folder, config


def promote(model: str | Path) -> dict[str, Any]:
    """Make ``model`` (folder or name) the default of its kind (from its config.json); the previous default is
    pushed on the history stack. Returns ``{"kind", "current", "previous", "changed"}`` (paths as strings;
    previous None = the shipped demo model). Promoting the current default again changes nothing."""
    folder, config = validate_model_dir(model)
    kind = config["kind"]
    with _locked():
        data = read_defaults()
        entry = data[kind]
        previous = entry["current"]
        if previous != str(folder):
            entry["history"].append(previous)
            entry["current"] = str(folder)
            entry["changed"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            _write(data)
    return {"kind": kind, "current": str(folder), "previous": previous, "changed": previous != str(folder)}
