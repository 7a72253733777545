"""Safe access to a user's input paths: regular files only, symlink loops detected, any file name.

* `check_input_path` says in one sentence what is wrong with a path that is missing, a dangling symlink, a
  symlink loop, a named pipe (FIFO), a device or a socket, or unreadable — before anything opens it (opening a
  FIFO for reading blocks until someone writes to it, so such a file must never be opened).
* `open_regular` opens a file without blocking (``O_NONBLOCK``) and checks *the opened file* is regular, so a
  file swapped for a FIFO after the check still cannot hang the reader.
* `walk_regular_files` lists the regular files of a folder tree, following symlinked folders once each
  (loop-safe) and reporting what it skipped (pipes, devices, sockets, loops, dangling links).
* `itk_path` gives SimpleITK a path it can take: SimpleITK aborts the whole process (C++ ``std::logic_error``)
  on a file name that is not valid UTF-8, so such a file is reached through a symlink with a plain name.
* `shown` turns a path into text that can always be printed and written to JSON (undecodable bytes as ``\\xff``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..core.errors import InputError


def shown(path: str | os.PathLike) -> str:
    """``path`` as printable text: bytes that are not UTF-8 appear as ``\\xNN`` instead of lone surrogates."""
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")


def is_utf8(path: str | os.PathLike) -> bool:
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def kind_of(mode: int) -> str | None:
    """What a non-regular, non-folder file is ("a named pipe (FIFO)", …), or None for files and folders."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_input_path(path: str | Path, what: str = "The input") -> Path:
    """``path`` if it is a readable regular file or folder (symlinks followed); else one-sentence InputError."""
    path = Path(path).expanduser()
    name = shown(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{what} {name} is a symlink loop (symbolic links that point back to each other); "
                             "point to the real file or folder instead.") from None
        if exc.errno == errno.ENAMETOOLONG:
            raise InputError(f"{what} {name} has a name too long for the file system; shorten or move it.") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise InputError(f"{what} {name} cannot be reached with your permissions; make its folders "
                             "readable (e.g. chmod u+rx) or copy it somewhere you can read.") from None
        if exc.errno == errno.ENOTDIR:
            raise InputError(f"{what} {name} does not exist (a part of the path is a file, not a folder); "
                             "check the path and try again.") from None
        if os.path.islink(path):
            raise InputError(f"{what} {name} is a symbolic link to {shown(os.readlink(path))}, which does not "
                             "exist; point to the real file or folder.") from None
        raise InputError(f"{what} {name} does not exist; check the path and try again.") from None
    kind = kind_of(st.st_mode)
    if kind is not None:
        raise InputError(f"{what} {name} is {kind}, not a file or folder; give the CT's file or DICOM folder "
                         "itself.")
    mode = os.R_OK | os.X_OK if stat.S_ISDIR(st.st_mode) else os.R_OK
    if not os.access(path, mode):
        raise InputError(f"{what} {name} cannot be read with your permissions; "
                         "make it readable (e.g. chmod u+r) or copy it somewhere you can read.")
    return path.resolve()


def open_regular(path: str | Path):
    """A binary file object for ``path``, which must be a regular file (never blocks on a FIFO)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        st = os.fstat(fd)
        kind = kind_of(st.st_mode) or ("a folder" if stat.S_ISDIR(st.st_mode) else None)
        if kind is not None:
            raise InputError(f"{shown(path)} is {kind}, not a regular file; remove it or give the file itself.")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def walk_regular_files(folder: Path, recursive: bool = True) -> tuple[list[Path], list[tuple[Path, str]]]:
    """``(regular files, [(skipped path, why)])`` under ``folder``, sorted; hidden entries are ignored.

    Symlinks are followed; a folder reached twice (a symlink loop, or two links to one folder) is read once.
    """
    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    seen: set[tuple[int, int]] = set()
    try:
        st = os.stat(folder)
        seen.add((st.st_dev, st.st_ino))
    except OSError:
        pass
    pending = [Path(folder)]
    while pending:
        current = pending.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as exc:
            skipped.append((current, f"folder cannot be listed ({exc.strerror or type(exc).__name__})"))
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                st = os.stat(path)
            except OSError as exc:
                why = ("symlink loop" if exc.errno == errno.ELOOP else
                       "dangling symlink" if entry.is_symlink() else (exc.strerror or "cannot be read"))
                skipped.append((path, why))
                continue
            if stat.S_ISDIR(st.st_mode):
                if recursive and (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    subfolders.append(path)
                elif recursive:
                    skipped.append((path, "symlink loop (folder already read)"))
                continue
            kind = kind_of(st.st_mode)
            if kind is not None:
                skipped.append((path, kind))
                continue
            files.append(path)
        pending.extend(reversed(subfolders))
    return sorted(files), skipped


def describe_skipped(skipped: list[tuple[Path, str]], limit: int = 5) -> str:
    """``"a (named pipe), b (symlink loop) and 3 more"`` — file names only."""
    parts = [f"{shown(p.name)} ({why})" for p, why in skipped[:limit]]
    more = len(skipped) - limit
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


@contextlib.contextmanager
def itk_path(path: Path) -> Iterator[str]:
    """A name for ``path`` that SimpleITK can take (a temporary symlink when the name is not UTF-8).

    A detached header (``.mhd``, ``.nhdr``) names its data file relative to its own folder, so for those the
    folder is linked, and the header's own name must then be UTF-8.
    """
    path = Path(path)
    if is_utf8(os.path.abspath(path)):
        yield str(path)
        return
    with tempfile.TemporaryDirectory(prefix="iacseg-name-") as tmp:
        suffix = "".join(s for s in Path(shown(path.name)).suffixes if s.isascii())[-8:] or ".img"
        if is_utf8(path.name):
            os.symlink(os.path.abspath(path.parent), os.path.join(tmp, "d"))
            yield os.path.join(tmp, "d", path.name)
        elif suffix.lower() in (".mhd", ".nhdr"):
            raise InputError(f"{shown(path)} has a name that is not valid UTF-8, and its data file is named "
                             "inside it; rename the header and its data file to plain names.")
        else:
            target = os.path.join(tmp, "input" + suffix)
            os.symlink(os.path.abspath(path), target)
            yield target
