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
import errno
import hashlib
import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # Windows (Slicer): byte-range lock of the lock file instead
    fcntl = None  # type: ignore[assignment]
    import msvcrt

from ..errors import InputError
from ..outputs.atomic import fsync_dir, write_bytes_atomic
from .layout import LOCK_FILE, PARTIAL_PREFIX, check_case_id, reader_slug

__all__ = ["atomic_write_bytes", "atomic_write_text", "check_case_id", "fsync_dir", "host_tag", "make_dirs",
           "partial_folder", "publish_folder", "reader_slug", "sha256_bytes", "sha256_of", "store_lock"]

_CHUNK = 1 << 20


def make_dirs(folder: str | os.PathLike) -> Path:
    """Create ``folder`` and missing parents, fsyncing each parent whose entries changed. Returns the folder."""
    folder = Path(folder)
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir()
        fsync_dir(d.parent)
    return folder


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path``: temporary file in the same folder, fsync, ``os.replace``, fsync the folder
    (the engine's `write_bytes_atomic`, after creating missing folders with their parents fsynced)."""
    make_dirs(Path(path).parent)
    return write_bytes_atomic(path, data)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _try_lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


@contextlib.contextmanager
def store_lock(root: str | os.PathLike, timeout_s: float = 60.0, poll_s: float = 0.02) -> Iterator[None]:
    """Hold the exclusive write lock of the store at ``root`` (``fcntl.flock`` on ``root/.lock``; on Windows
    ``msvcrt.locking`` of its first byte). The kernel releases it when the holder dies.

    Waits up to ``timeout_s`` seconds, then raises `InputError`. Not re-entrant: do not nest it for the same
    store, even in one process (each call opens its own file description and would wait for itself).
    """
    path = Path(root) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + float(timeout_s)
        while True:
            try:
                _try_lock(fd)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES, errno.EDEADLK):
                    raise
                if time.monotonic() >= deadline:
                    raise InputError(f"another process has held the lock of store {Path(root)} for more than "
                                     f"{timeout_s:g} s; wait for its save to finish and try again") from None
                time.sleep(poll_s)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


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
