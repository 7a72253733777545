"""Crash- and concurrency-safe writing for the corrections store.

* Files are written to a temporary file in the same folder, fsynced, renamed over the target
  (``os.replace``) and the folder is fsynced: after a crash a file is either the old or the new one.
* Folders are filled under a temporary name and renamed into place (`publish_folder`), so a correction's
  folder appears complete or not at all.
* `store_lock` serialises every write of every process (``fcntl.flock`` on ``STORE/.lock``); the lock is
  released by the kernel when its holder dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
from pathlib import Path
from typing import Iterator

from ..core.files import exclusive_lock, fsync_dir, make_dirs
from .layout import LOCK_FILE, PARTIAL_PREFIX, check_case_id, reader_slug

__all__ = ["check_case_id", "discard_folder", "host_tag", "partial_folder", "publish_folder", "reader_slug",
           "store_lock"]


@contextlib.contextmanager
def store_lock(root: str | os.PathLike, timeout_s: float = 60.0, poll_s: float = 0.02) -> Iterator[None]:
    """Hold the exclusive write lock of the store at ``root`` (`iacseg.core.files.exclusive_lock` on
    ``root/.lock``). The kernel releases it when the holder dies.

    Waits up to ``timeout_s`` seconds, then raises `InputError`. Not re-entrant: do not nest it for the same
    store, even in one process (each call opens its own file description and would wait for itself).
    """
    busy = (f"another process has held the lock of store {Path(root)} for more than {timeout_s:g} s; "
            "wait for its save to finish and try again")
    with exclusive_lock(Path(root) / LOCK_FILE, busy, timeout_s=timeout_s, poll_s=poll_s):
        yield


def host_tag() -> str:
    """This machine's name as temporary folders carry it: lowercase letters and digits, at most 16."""
    return re.sub(r"[^a-z0-9]", "", socket.gethostname().lower())[:16] or "host"


def partial_folder(parent: str | os.PathLike) -> Path:
    """A new empty temporary folder ``parent/.partial-<pid>-<host>-<8 hex digits>`` to fill before
    `publish_folder` renames it; the pid and host let a later save tell a crashed save's folder from a running
    one (see `iacseg.store.leftovers`)."""
    parent = make_dirs(parent)
    while True:
        path = parent / f"{PARTIAL_PREFIX}{os.getpid()}-{host_tag()}-{secrets.token_hex(4)}"
        try:
            path.mkdir(mode=0o700)
            return path
        except FileExistsError:
            continue


def publish_folder(tmp: Path, final: Path) -> Path:
    """Fsync every file of the filled folder ``tmp`` and rename it to ``final`` (which must not exist).

    Call under `store_lock` after choosing a free ``final``; `FileExistsError` if it exists after all.
    """
    for dirpath, _, files in os.walk(tmp):
        for name in files:
            with open(os.path.join(dirpath, name), "r+b") as f:  # Windows flushes only writable handles
                os.fsync(f.fileno())
        fsync_dir(dirpath)
    if final.exists() or final.is_symlink():
        raise FileExistsError(f"{final} already exists")
    make_dirs(final.parent)
    os.rename(tmp, final)
    fsync_dir(final.parent)
    return final


def discard_folder(tmp: Path) -> None:
    """Remove a temporary folder of a save that failed (never used on published folders)."""
    if tmp.name.startswith(PARTIAL_PREFIX):
        shutil.rmtree(tmp, ignore_errors=True)
