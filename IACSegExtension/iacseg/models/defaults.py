"""Which model the engine uses when none is named: a pointer file ``$IACSEG_HOME/defaults.json``.

``IACSEG_HOME`` defaults to ``~/.iacseg``. The file holds, per kind ("segmenter", "landmarks"), the current
default model folder (absolute path, or null for the shipped demo model) and a history stack of the earlier
defaults, so `promote` can always be undone by `rollback`. Model folders are never moved or deleted here: an
old default stays loadable. The file is replaced atomically (temporary file, fsync, rename) under a lock.

Without a pointer — or when the pointed folder has vanished (then with a warning) — ``resolve_model(None, kind)``
falls back to the shipped demo models.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import warnings
from pathlib import Path
from typing import Any, Iterator

from ..core.errors import ModelError
from ..core.locations import iacseg_home

DEFAULTS_FILE = "defaults.json"
FORMAT = "iacseg-model-defaults"


def defaults_path() -> Path:
    """The pointer file ``$IACSEG_HOME/defaults.json``."""
    return iacseg_home() / DEFAULTS_FILE


def _kinds() -> tuple[str, ...]:
    from .registry import KINDS

    return KINDS


def read_defaults() -> dict[str, Any]:
    """The pointer file's content, ``{kind: {"current": path | None, "history": [...], "changed": ISO}}`` (empty
    entries when there is no file); `ModelError` when the file is damaged."""
    path = defaults_path()
    data: dict[str, Any] = {"format": FORMAT, "format_version": 1}
    if path.is_file():
        try:
            loaded = json.loads(path.read_text())
            if not isinstance(loaded, dict) or any(not isinstance(loaded.get(k, {}), dict) for k in _kinds()):
                raise ValueError
        except ValueError:
            raise ModelError(f"{path} is damaged (not the IACSeg defaults file); delete it to go back to the "
                             "shipped demo models, then promote again") from None
        data.update(loaded)
    for kind in _kinds():
        entry = dict(data.get(kind) or {})
        entry.setdefault("current", None)
        entry.setdefault("history", [])
        data[kind] = entry
    return data


def _write(data: dict[str, Any]) -> None:
    from ..core.files import write_text_atomic

    write_text_atomic(defaults_path(), json.dumps(data, indent=2) + "\n")


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Exclusive lock on ``$IACSEG_HOME/.defaults.lock`` (where fcntl exists) so two promotes do not interleave."""
    home = iacseg_home()
    home.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the atomic rename still keeps the file whole
        yield
        return
    with open(home / ".defaults.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def current_default(kind: str) -> Path | None:
    """The promoted default model folder of ``kind``, or None when the shipped demo model is the default.

    The folder is returned as recorded, even if it has since vanished (see `promoted_model_dir`)."""
    if kind not in _kinds():
        raise ValueError(f"kind must be one of {_kinds()}")
    current = read_defaults()[kind]["current"]
    return Path(current) if current else None


def _usable(folder: Path) -> bool:
    from .registry import CONFIG_FILE, WEIGHTS_FILE

    return (folder / CONFIG_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()


def promoted_model_dir(kind: str) -> Path | None:
    """The promoted default of ``kind`` when it is still a usable folder; None (with a warning when a pointer
    exists but its folder vanished or the pointer file is damaged) so the caller falls back to the demo model."""
    try:
        folder = current_default(kind)
    except ModelError as exc:
        warnings.warn(f"{exc}; using the shipped demo {kind} model", stacklevel=3)
        return None
    if folder is None:
        return None
    if not _usable(folder):
        warnings.warn(f"the default {kind} model {folder} (set by `iacseg models promote`) is gone; using the "
                      f"shipped demo model — promote another or run `iacseg models rollback {kind}`", stacklevel=3)
        return None
    return folder


def _find_model(model: str | Path) -> Path:
    """A model folder from a path or a name on the model search path (`ModelError` when there is none)."""
    from .registry import search_path

    candidate = Path(model).expanduser()
    if candidate.is_dir():
        return candidate.resolve()
    if len(candidate.parts) == 1:
        for root in search_path():
            if (root / candidate).is_dir():
                return (root / candidate).resolve()
    raise ModelError(f"no model folder or model name {str(model)!r} found; give the folder written by "
                     "`iacseg train` (see `iacseg models`)")


def validate_model_dir(model: str | Path) -> tuple[Path, dict[str, Any]]:
    """``(absolute folder, config)`` of a complete, loadable model folder; `ModelError` saying what is wrong."""
    from .registry import KINDS, check_weights, load_model, read_config

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


def rollback(kind: str) -> dict[str, Any]:
    """Go back to the default before the current one (None = the shipped demo model). Returns
    ``{"kind", "current", "previous"}``; `ModelError` when nothing was promoted before."""
    if kind not in _kinds():
        raise ModelError(f"kind must be one of {', '.join(_kinds())}, not {kind!r}")
    with _locked():
        data = read_defaults()
        entry = data[kind]
        if not entry["history"]:
            raise ModelError(f"there is no earlier default {kind} model to roll back to (the default is "
                             f"{entry['current'] or 'the shipped demo model'}); promote one with "
                             "`iacseg models promote MODEL`")
        previous = entry["current"]
        entry["current"] = entry["history"].pop()
        entry["changed"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        _write(data)
    return {"kind": kind, "current": entry["current"], "previous": previous}
