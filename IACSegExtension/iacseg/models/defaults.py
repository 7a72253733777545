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
from ..core.files import exclusive_lock, make_dirs
from ..core.locations import iacseg_home
from .folders import CONFIG_FILE, DEFAULT_MODELS, KINDS, WEIGHTS_FILE, find_folder, search_path

DEFAULTS_FILE = "defaults.json"
FORMAT = "iacseg-model-defaults"


def defaults_path() -> Path:
    """The pointer file ``$IACSEG_HOME/defaults.json``."""
    return iacseg_home() / DEFAULTS_FILE


def read_defaults() -> dict[str, Any]:
    """The pointer file's content, ``{kind: {"current": path | None, "history": [...], "changed": ISO}}`` (empty
    entries when there is no file); `ModelError` when the file is damaged."""
    path = defaults_path()
    data: dict[str, Any] = {"format": FORMAT, "format_version": 1}
    if path.is_file():
        try:
            loaded = json.loads(path.read_text())
            if not isinstance(loaded, dict) or any(not isinstance(loaded.get(k, {}), dict) for k in KINDS):
                raise ValueError
        except ValueError:
            raise ModelError(f"{path} is damaged (not the IACSeg defaults file); delete it to go back to the "
                             "shipped demo models, then promote again") from None
        data.update(loaded)
    for kind in KINDS:
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
    """Exclusive lock on ``$IACSEG_HOME/.defaults.lock`` so two promotes or rollbacks do not interleave."""
    home = make_dirs(iacseg_home())
    with exclusive_lock(home / ".defaults.lock", f"another process has held {home / '.defaults.lock'} for more "
                        "than a minute; wait for its promote or rollback to finish and try again"):
        yield


def current_default(kind: str) -> Path | None:
    """The promoted default model folder of ``kind``, or None when the shipped demo model is the default.

    The folder is returned as recorded, even if it has since vanished (see `promoted_model_dir`)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    current = read_defaults()[kind]["current"]
    return Path(current) if current else None


def _usable(folder: Path) -> bool:
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


def rollback(kind: str) -> dict[str, Any]:
    """Go back to the default before the current one (None = the shipped demo model). Returns
    ``{"kind", "current", "previous"}``; `ModelError` when nothing was promoted before."""
    if kind not in KINDS:
        raise ModelError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
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


def default_model_dir(kind: str) -> Path:
    """Folder of the default model of ``kind``: the one set by ``iacseg models promote`` (`iacseg.models.defaults`),
    else the shipped demo model ("segmenter" → unet-demo, "landmarks" → dst-demo)."""
    if kind not in DEFAULT_MODELS:
        raise ValueError(f"kind must be one of {KINDS}")
    return resolve_model(None, kind)


def resolve_model(name_or_path: str | Path | None, kind: str) -> Path:
    """A model folder from a path or a model name looked up on the search path; None or "" → the default model
    of ``kind`` (promoted one, else the shipped demo)."""
    if name_or_path is None or str(name_or_path) == "":
        from .defaults import promoted_model_dir

        promoted = promoted_model_dir(kind) if kind in DEFAULT_MODELS else None
        if promoted is not None:
            return promoted
        name_or_path = DEFAULT_MODELS[kind]
    found = find_folder(name_or_path)
    if found is not None:
        return found
    where = ", ".join(str(p) for p in search_path())
    raise ModelError(f"no {kind} model {str(name_or_path)!r} found (looked in {where}); give a model folder path, "
                     f"set IACSEG_MODEL_PATH, or train one with `iacseg train`")

