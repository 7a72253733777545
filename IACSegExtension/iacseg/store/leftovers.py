"""Removing the temporary folders that crashed saves leave behind (``.partial-…``, see `partial_folder`).

Only the store's own folders are removed: in ``cases/`` (case adds) or ``cases/<id>/corrections/<reader>/``
(corrections), named as the store names them, holding nothing but files a save writes, and stale — their process
(same machine, POSIX) is gone, or nothing in them changed for `STALE_AFTER_S`. Anything else is left alone.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

from ..core.contracts import LABELS_FILE, LANDMARKS_FILE, REPORT_JSON
from .layout import (CASE_FILE, CASES_DIR, CORRECTION_FILE, CORRECTIONS_DIR, EDITS_FILE, IMAGE_FILE, ORIGINAL_DIR,
                     PARTIAL_PREFIX)
from .safety import host_tag

#: A temporary folder untouched for this long belongs to no running save.
STALE_AFTER_S = 3600.0
_NAMED = re.compile(re.escape(PARTIAL_PREFIX) + r"(\d{1,10})-([a-z0-9]{1,16})-[0-9a-f]{8}")
_OLDER = re.compile(re.escape(PARTIAL_PREFIX) + r"[a-z0-9_]{8}")  # tempfile names of IACSeg before pids
_SAVED = {IMAGE_FILE, CASE_FILE, ORIGINAL_DIR, LABELS_FILE, LANDMARKS_FILE, REPORT_JSON, EDITS_FILE, CORRECTION_FILE}
_STEMS = {name.split(".")[0] for name in _SAVED}  # atomic writes' temporaries: ".<stem>.XXXX…"


def _save_file(name: str) -> bool:
    return name in _SAVED or (name.startswith(".") and name[1:].split(".")[0] in _STEMS)


def _process_gone(pid: int) -> bool:
    if os.name != "posix" or pid == os.getpid():  # on Windows os.kill(pid, 0) would end the process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _contents(folder: Path) -> tuple[bool, float]:
    """``(only files a save writes, newest modification time)`` of ``folder`` and everything in it."""
    newest = folder.lstat().st_mtime
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path.is_symlink() or not _save_file(name):
                return False, newest
            newest = max(newest, path.lstat().st_mtime)
    return True, newest


def is_stale_partial(folder: Path, now: float | None = None) -> bool:
    """Whether ``folder`` is a temporary folder of a crashed save of this store (see the module docstring)."""
    named = _NAMED.fullmatch(folder.name)
    if (named is None and _OLDER.fullmatch(folder.name) is None) or folder.is_symlink() or not folder.is_dir():
        return False
    ours, newest = _contents(folder)
    if not ours:
        return False
    if named is not None and named.group(2) == host_tag() and _process_gone(int(named.group(1))):
        return True
    return (time.time() if now is None else now) - newest > STALE_AFTER_S


def _save_parents(root: Path) -> list[Path]:
    """``cases/`` and every ``cases/<id>/corrections/<reader>/`` (real folders only)."""
    cases = root / CASES_DIR
    parents = [cases]
    for case in _subfolders(cases):
        for reader in _subfolders(case / CORRECTIONS_DIR):
            parents.append(reader)
    return parents


def _subfolders(folder: Path) -> list[Path]:
    if folder.is_symlink() or not folder.is_dir():
        return []
    with os.scandir(folder) as it:
        return [Path(e.path) for e in it if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]


def remove_stale_partials(root: Path) -> list[str]:
    """Remove the store's stale temporary folders (call under the store lock); their store-relative paths."""
    removed = []
    for parent in _save_parents(Path(root)):
        if parent.is_symlink() or not parent.is_dir():
            continue
        with os.scandir(parent) as it:
            candidates = [Path(e.path) for e in it if e.name.startswith(PARTIAL_PREFIX)]
        for folder in sorted(candidates):
            if is_stale_partial(folder):
                shutil.rmtree(folder, ignore_errors=True)
                if not folder.exists():
                    removed.append(folder.relative_to(root).as_posix())
    return removed
