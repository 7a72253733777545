"""Output-folder safety: checks run *before* any computation so that no user data is ever replaced.

Every writer of a result folder (`iacseg segment`, `batch`, `relabel`, the Slicer module through the CLI) calls
`check_output_folder` first. It refuses (`InputError`, exit 2, one line) an output folder that

* is empty text, the current folder, the home folder, ``/``, or a folder above the current or home folder;
* is, contains, or lies inside an input (a CT file's folder may hold a *new subfolder* for the result, but may
  not itself be the output; a DICOM or batch input folder may neither be nor hold the output);
* already exists and is not empty, unless ``overwrite`` — and even then only when it holds a previous IACSeg
  result (`result_folder_problem`) and nothing else;
* is a symbolic link, a file, or has a name longer than the file system allows (NAME_MAX per component, with
  room for the temporary sibling names of the atomic write; PATH_MAX overall);
* lies where the user cannot write (permission, read-only file system) or where free space is short of a
  generous estimate of the output size.

`iacseg phantom -o OUT` calls `check_phantom_output`: OUT as a batch output folder, and a case folder it would
replace must be absent, empty or a previous phantom.

Every result folder IACSeg writes carries `RESULT_MARKER`. Folders written by older versions have no marker:
they count as ours when they hold the five contract files, optionally ``overview.png`` and the Slicer module's
``slicer_*`` files, nothing else, and their ``report.json`` is an IACSeg report.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .. import __version__
from .contracts import (LABELS_FILE, LANDMARKS_FILE, PHANTOM_CT_FILE, PHANTOM_DICOM_DIR, REPORT_CSV,
    REPORT_JSON, SEGMENTATION_FILE, TRUTH_JSON, TRUTH_LABELS_FILE, TRUTH_LANDMARKS_FILE)
from .errors import InputError

#: Hidden file written into every result folder IACSeg creates; overwriting replaces only such folders.
RESULT_MARKER = ".iacseg-result"
MARKER_KIND = "iacseg-result"
#: The contract files every result holds.
CONTRACT_FILES = (LABELS_FILE, SEGMENTATION_FILE, LANDMARKS_FILE, REPORT_JSON, REPORT_CSV)
#: Files IACSeg or its Slicer module may add to a result folder.
OPTIONAL_RESULT_FILES = ("overview.png", "slicer_calcifications.seg.nrrd", "slicer_landmarks.mrk.json")
KNOWN_RESULT_FILES = frozenset((RESULT_MARKER, *CONTRACT_FILES, *OPTIONAL_RESULT_FILES))

#: Bytes the atomic write adds to the output folder's name: ``.NAME.XXXXXXXX.partial`` (and ``.NAME.old-PID``).
TEMP_NAME_EXTRA = 18
#: Room for the longest file name written inside the temporary folder (temporary files included).
INNER_NAME_ROOM = 48
MIB = 1 << 20
#: Fixed part of the output size estimate: reports, markups, overview PNG, file-system slack.
FIXED_OUTPUT_BYTES = 16 * MIB
_MAX_SCANNED_FILES = 100_000


def marker_text() -> str:
    """Content of `RESULT_MARKER`: a small JSON naming the writer."""
    return json.dumps({"kind": MARKER_KIND, "written_by": "iacseg", "iacseg_version": __version__}) + "\n"


def write_result_marker(folder: str | os.PathLike) -> Path:
    """Write the marker into ``folder`` (the temporary folder of an atomic write)."""
    path = Path(folder) / RESULT_MARKER
    path.write_text(marker_text())
    return path


def _has_marker(folder: Path) -> bool:
    marker = folder / RESULT_MARKER
    if marker.is_symlink() or not marker.is_file():
        return False
    try:
        with open(marker, "rb") as f:
            data = json.loads(f.read(4096).decode("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("kind") == MARKER_KIND


def _is_iacseg_report(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    try:
        if path.stat().st_size > 64 * MIB:
            return False
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(report, dict) and isinstance(report.get("versions"), dict)
            and "iacseg" in report["versions"] and isinstance(report.get("segments"), dict)
            and isinstance(report.get("total"), dict))


def _short_list(names: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(sorted(names)[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def result_folder_problem(folder: str | os.PathLike) -> str | None:
    """None when ``folder`` holds a previous IACSeg result and nothing else (so it may be replaced); otherwise
    a short reason (for messages)."""
    folder = Path(folder)
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    foreign = [e.name for e in entries
               if e.name not in KNOWN_RESULT_FILES or e.is_symlink() or not e.is_file(follow_symlinks=False)]
    if foreign:
        return f"it holds files IACSeg did not write ({_short_list(foreign)})"
    if _has_marker(folder):
        return None
    names = {e.name for e in entries}
    if set(CONTRACT_FILES) <= names and _is_iacseg_report(folder / REPORT_JSON):
        return None  # a result of an older version (no marker yet)
    return "it holds no IACSeg result"


def is_result_folder(folder: str | os.PathLike) -> bool:
    """True for an existing folder holding a previous IACSeg result (marker, or an older version's five files)."""
    folder = Path(folder)
    return folder.is_dir() and not folder.is_symlink() and result_folder_problem(folder) is None


def _nonempty_dir(path: Path) -> bool:
    try:
        with os.scandir(path) as it:
            return any(True for _ in it)
    except OSError:
        return True  # unreadable: treat as holding something


def check_replaceable(out_dir: str | os.PathLike, overwrite: bool,
                      problem_of: Callable[[Path], str | None] | None = None, noun: str = "output folder",
                      ours: str = "a previous IACSeg result", ours_plural: str = "IACSeg results") -> None:
    """Refuse to write ``out_dir`` when it exists and is not an empty folder or (with ``overwrite``) one of ours.

    ``problem_of(folder)`` says why a folder is not ours (None: it is; default `result_folder_problem`);
    ``noun``/``ours``/``ours_plural`` name the kind in messages (model folders use the same rule). The last line of
    defence, repeated just before the atomic rename; the full checks are in `check_output_folder`."""
    out = Path(out_dir)
    if out.is_symlink():
        raise InputError(f"{noun} {out} is a symbolic link; give the real folder's path or a new folder",
                         parameter="output")
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"output path {out} exists and is not a folder; choose another {noun}", parameter="output")
    if not _nonempty_dir(out):
        return
    problem = (problem_of or result_folder_problem)(out)
    if not overwrite:
        if problem is None:
            raise InputError(f"{noun} {out} already exists and is not empty (it holds {ours}); allow overwriting "
                             f"to replace it, or choose another {noun}", parameter="overwrite")
        raise InputError(f"{noun} {out} already exists and is not empty ({problem}); choose another {noun} — "
                         f"overwriting replaces only {ours_plural}", parameter="output")
    if problem is not None:
        raise InputError(f"{noun} {out} is not {ours}: {problem}; overwriting replaces only {ours_plural}, so "
                         f"choose a new {noun} — nothing was changed", parameter="output")


# --- where the output may not be -------------------------------------------------------------------------------


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.fspath(path)))


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def _same(a: os.stat_result | None, b: os.stat_result | None) -> bool:
    return a is not None and b is not None and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _is_or_contains(out_real: Path, out_stat: os.stat_result | None, folder: Path) -> str | None:
    """``"is"`` when the output is ``folder``, ``"contains"`` when it is a folder above it, else None."""
    folder_real = _real(folder)
    if out_real == folder_real or _same(out_stat, _stat(folder_real)):
        return "is"
    if out_real in folder_real.parents or (out_stat is not None
                                           and any(_same(out_stat, _stat(p)) for p in folder_real.parents)):
        return "contains"
    return None


def _lies_inside(out_real: Path, folder: Path) -> bool:
    """True when the output would be created inside ``folder`` (at any depth)."""
    folder_real = _real(folder)
    if folder_real in out_real.parents:
        return True
    folder_stat = _stat(folder_real)
    if folder_stat is None:
        return False
    return any(_same(folder_stat, _stat(p)) for p in out_real.parents if p.exists())


def _protected_places() -> list[tuple[Path, str]]:
    places: list[tuple[Path, str]] = []
    try:
        places.append((Path(os.getcwd()), "the current folder"))
    except OSError:
        pass
    try:
        home = Path.home()
        if str(home) not in ("", "/"):
            places.append((home, "your home folder"))
    except (RuntimeError, KeyError, OSError):
        pass
    return places


_SUGGESTION = "a new folder such as iacseg-results/case1"


def check_location(out_dir: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse an output folder that is ``/``, the current or home folder (or above them), or overlaps an input.

    ``inputs``: the CT files or folders the run reads (and for a batch its input folders). A file's folder
    may hold the output as a new subfolder but may not be (or lie below) the output; a folder input may
    neither be nor contain nor hold the output."""
    out = Path(out_dir)
    out_real = _real(out)
    out_stat = _stat(out_real) if out.exists() else None
    if out_real == Path(out_real.anchor):
        raise InputError(f"output folder {out} is the root folder {out_real.anchor}; give {_SUGGESTION}",
                         parameter="output")
    for place, what in _protected_places():
        overlap = _is_or_contains(out_real, out_stat, place)
        if overlap:
            where = what if overlap == "is" else f"a folder above {what} ({place})"
            raise InputError(f"output folder {out} is {where}; IACSeg writes its result as a folder of its own — "
                             f"give {_SUGGESTION}", parameter="output")
    for raw in inputs:
        if raw is None or str(raw) == "":
            continue
        source = Path(raw)
        if not (source.exists() or source.is_symlink()):
            continue  # the reader says what is wrong with a missing input
        if source.is_dir():
            overlap = _is_or_contains(out_real, out_stat, source)
            if overlap:
                raise InputError(f"output folder {out} {overlap} the input {source}; choose an output folder "
                                 f"outside the input (e.g. beside it) — nothing was changed", parameter="output")
            if _lies_inside(out_real, source):
                raise InputError(f"output folder {out} lies inside the input folder {source}; choose an output "
                                 f"folder outside the input (e.g. beside it)", parameter="output")
        else:  # a file: its folder (and the folder of the file a link points to) may not be replaced
            for folder in dict.fromkeys((source.parent, _real(source).parent)):
                overlap = _is_or_contains(out_real, out_stat, folder)
                if overlap:
                    raise InputError(f"output folder {out} {overlap} the folder of the input {source}; give a new "
                                     f"folder for the result, e.g. {folder / 'iacseg-result'} — nothing was "
                                     f"changed", parameter="output")


# --- name length, writability, free space ----------------------------------------------------------------------


def _existing_ancestor(path: Path) -> Path:
    for p in (path, *path.parents):
        try:
            os.stat(p)
        except (OSError, ValueError):  # missing, or a name too long to look up
            continue
        return p
    return Path(path.anchor or "/")


def _abbreviated(path: Path, keep: int = 100) -> str:
    text = str(path)
    return text if len(text) <= keep else f"{text[:keep // 2]}…{text[-keep // 2:]}"


def _pathconf(path: Path, name: str, default: int) -> int:
    try:
        value = os.pathconf(path, name)
    except (OSError, ValueError, AttributeError):
        return default
    return value if value and value > 0 else default


def check_name_length(out_dir: str | os.PathLike) -> None:
    """Refuse names longer than the file system allows (bytes, with room for the temporary names)."""
    out = Path(os.path.abspath(os.fspath(out_dir)))
    base = _existing_ancestor(out.parent)
    name_max = _pathconf(base, "PC_NAME_MAX", 255)
    path_max = _pathconf(base, "PC_PATH_MAX", 4096)
    for part in out.parts[1:]:
        limit = name_max - TEMP_NAME_EXTRA if part == out.name else name_max
        size = len(os.fsencode(part))
        if size > limit:
            shown = part if len(part) <= 40 else part[:37] + "…"
            raise InputError(f"output folder name {shown!r} is {size} bytes long; this file system allows "
                             f"{name_max} bytes per name and IACSeg needs {TEMP_NAME_EXTRA} for temporary names — "
                             f"choose a shorter output folder", parameter="output")
    size = len(os.fsencode(str(out))) + TEMP_NAME_EXTRA + 1 + INNER_NAME_ROOM
    if size >= path_max:
        allowed = path_max - TEMP_NAME_EXTRA - INNER_NAME_ROOM - 2
        raise InputError(f"output path {_abbreviated(out)} is too long ({len(os.fsencode(str(out)))} bytes; at most "
                         f"{allowed} here) — choose a shorter output folder", parameter="output")


def check_writable(out_dir: str | os.PathLike) -> Path:
    """Refuse when the folder that will receive the output cannot be written; returns that folder."""
    out = Path(os.path.abspath(os.fspath(out_dir)))
    base = _existing_ancestor(out.parent)
    reason = None
    if not base.is_dir():
        raise InputError(f"cannot create output folder {out}: {base} is a file, not a folder; "
                         f"choose another output folder", parameter="output")
    if not os.access(base, os.W_OK | os.X_OK):
        reason = "permission denied"
    else:
        try:  # the real test: permissions can lie (ACLs, read-only mounts, root squash)
            probe = tempfile.mkdtemp(prefix=".iacseg-write-test-", dir=base)
            os.rmdir(probe)
        except OSError as exc:
            reason = "read-only file system" if exc.errno == errno.EROFS else (exc.strerror or str(exc)).lower()
    if reason is not None:
        raise InputError(f"cannot write the output folder {out}: {base} is not writable ({reason}); choose an "
                         f"output folder where you can write", parameter="output")
    return base


def _tree_bytes(path: Path) -> int:
    """Total size of the regular files under ``path`` (no links followed, at most `_MAX_SCANNED_FILES`)."""
    total, seen, stack = 0, 0, [path]
    while stack and seen < _MAX_SCANNED_FILES:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    seen += 1
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(Path(entry.path))
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def estimate_output_bytes(ct_path: str | os.PathLike | None) -> int:
    """A generous estimate of one result folder's size from the CT's size on disk.

    Voxels ≈ bytes of an uncompressed CT (int16: 2 bytes each, so this is already double) or 2 × bytes of a gzip
    file; the two label files (gzip uint8, mostly zeros) take well under a quarter byte per voxel; plus
    `FIXED_OUTPUT_BYTES` for reports, markups and the overview PNG."""
    if ct_path is None:
        return FIXED_OUTPUT_BYTES
    path = Path(ct_path)
    try:
        if path.is_dir():
            size = _tree_bytes(path)
        elif path.is_file():
            size = path.stat().st_size
        else:
            size = 0
    except OSError:
        size = 0
    voxels = size * 2 if path.name.lower().endswith((".gz", ".zip", ".bz2", ".xz")) else size
    return voxels // 4 + FIXED_OUTPUT_BYTES


def check_free_space(base: str | os.PathLike, needed_bytes: int, out_dir: str | os.PathLike) -> None:
    try:
        free = shutil.disk_usage(base).free
    except OSError:
        return
    if free < needed_bytes:
        raise InputError(f"not enough free space for the output folder {out_dir}: {free / MIB:.0f} MB free on its "
                         f"drive, about {needed_bytes / MIB:.0f} MB needed; free some space or choose another "
                         f"output folder", parameter="output")


def check_output_folder(out_dir: str | os.PathLike | None, *, inputs: Iterable[str | os.PathLike | None] = (),
                        overwrite: bool = False, expected_bytes: int | None = None) -> Path:
    """Every check on a result folder that must pass before anything is computed; returns ``Path(out_dir)``.

    ``inputs``: what the run reads (refused overlaps: see `check_location`); ``expected_bytes``: the output size
    estimate (default: from the first input, `estimate_output_bytes`). Raises `InputError` with one line naming
    the folder and what to do; nothing is created or changed."""
    if out_dir is None or not str(out_dir).strip():
        raise InputError("the output folder is empty; give the name of a new folder, e.g. iacseg-results/case1",
                         parameter="output")
    inputs = [p for p in inputs if p is not None and str(p) != ""]
    out = Path(out_dir)
    check_name_length(out)  # first: the file system refuses even to look up a name that is too long
    check_location(out, inputs)
    check_replaceable(out, overwrite)
    base = check_writable(out)
    if expected_bytes is None:
        expected_bytes = estimate_output_bytes(inputs[0] if inputs else None)
    check_free_space(base, expected_bytes, out)
    return out


def check_batch_output(out_dir: str | os.PathLike | None, inputs: Iterable[str | os.PathLike]) -> Path:
    """Checks on a batch's output folder (which holds one result folder per case and ``summary.csv``): the
    location rules of `check_location` against every batch input, name length and writability."""
    if out_dir is None or not str(out_dir).strip():
        raise InputError("the batch output folder is empty; give the name of a folder, e.g. iacseg-results",
                         parameter="output")
    out = Path(out_dir)
    check_name_length(out / ("x" * 8))  # room for the case folders and summary.csv's temporary name
    check_location(out, list(inputs))
    if out.is_symlink() and not out.is_dir():
        raise InputError(f"batch output folder {out} is a broken symbolic link; give a folder", parameter="output")
    if out.exists() and not out.is_dir():
        raise InputError(f"batch output {out} is a file; give a folder", parameter="output")
    check_writable(out / "x")  # into OUT when it exists, else where OUT will be created
    return out


#: What `iacseg phantom` writes into a case folder (``phantom_NNNNN``); only such a folder may be replaced.
PHANTOM_CASE_FILES = frozenset((PHANTOM_CT_FILE, PHANTOM_DICOM_DIR, TRUTH_LABELS_FILE, TRUTH_LANDMARKS_FILE,
                                TRUTH_JSON))
PHANTOM_GENERATOR = "iacseg.phantom"  # ``truth.json``'s "generator"


def phantom_folder_problem(folder: str | os.PathLike) -> str | None:
    """None when ``folder`` holds a previous IACSeg phantom case and nothing else (the same seed and options give
    the same phantom, so it may be replaced); otherwise a short reason (for messages)."""
    folder = Path(folder)
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    foreign = [e.name for e in entries if e.name not in PHANTOM_CASE_FILES or e.is_symlink()]
    if foreign:
        return f"it holds files IACSeg did not write ({_short_list(foreign)})"
    truth = folder / TRUTH_JSON
    try:
        doc = json.loads(truth.read_text(encoding="utf-8")) if truth.stat().st_size <= 64 * MIB else None
    except (OSError, ValueError):
        doc = None
    if not (isinstance(doc, dict) and doc.get("generator") == PHANTOM_GENERATOR):
        return "it holds no IACSeg phantom"
    return None


def check_phantom_output(out_dir: str | os.PathLike | None, case_names: Iterable[str]) -> Path:
    """Checks on `iacseg phantom -o OUT` before anything is generated; returns ``Path(out_dir)``.

    OUT holds one folder per case, ``OUT/<case name>``, which the generator replaces when it exists. OUT gets the
    batch checks (`check_batch_output`: not ``/``, the current or home folder or a folder above them; a folder;
    name length; writable), and each case folder must be absent, empty or a previous phantom
    (`phantom_folder_problem`) — never a user's folder."""
    if out_dir is None or not str(out_dir).strip():
        raise InputError("the phantom output folder is empty; give the name of a folder, e.g. phantoms",
                         parameter="output")
    out = check_batch_output(out_dir, ())
    for name in case_names:
        case = check_case_name(name, out)
        if case.is_symlink():
            raise InputError(f"{case} is a symbolic link; choose another output folder — nothing was changed",
                             parameter="output")
        if not case.exists():
            continue
        if not case.is_dir():
            raise InputError(f"{case} exists and is not a folder; choose another output folder or another "
                             "seed — nothing was changed", parameter="output")
        problem = phantom_folder_problem(case) if _nonempty_dir(case) else None
        if problem is not None:
            raise InputError(f"{case} already exists and {problem}; IACSeg replaces only its own phantoms — choose "
                             "another output folder or another seed; nothing was changed", parameter="output")
    return out


def check_case_name(name: str, out_dir: Path) -> Path:
    """The result folder of a batch case: ``out_dir/name``; a name that is not one plain folder name is refused."""
    if not name or name in (".", "..") or "/" in name or os.sep in name or (os.altsep and os.altsep in name) \
            or "\0" in name:
        raise InputError(f"case name {name!r} cannot be a folder name; rename the input file or folder")
    return out_dir / name
