"""The store's append-only, hash-chained ledger (``ledger.jsonl``): one JSON object per line.

Each entry has ``seq`` (0, 1, 2 …), ``time`` (ISO 8601 UTC), ``kind``, ``case_id``, ``reader``,
``engine_version``, ``models``, ``details``, ``files`` (store-relative path → sha256 of the file published just
before the entry), ``prev`` (sha256 of the previous line's text, ``""`` for seq 0) and ``hash`` (sha256 of the
entry serialised canonically without ``hash``). A line is canonical JSON: sorted keys, no spaces, ASCII only.

Only the last line can be torn (a crash or full disk during an append): readers ignore it with a warning and the
next append, which runs under the store lock, truncates it first.

The chain is anchored: after every append the store records a `LedgerAnchor` (entries, byte length, last hash,
sha256 of those bytes) in ``store.json``. Before every append `check_ledger` checks the ledger against it —
hashing the anchored bytes, parsing only the lines after them — and refuses a damaged ledger.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, NoReturn, Sequence

from ..core.errors import InputError
from ..outputs.report import to_jsonable
from ..core.files import fsync_dir, sha256_bytes

EDIT_KINDS: tuple[str, ...] = ("landmark_moved", "lesion_reassigned", "lesion_deleted", "lesion_added")
LEDGER_KINDS: tuple[str, ...] = ("store_created", "case_added", "correction_saved", *EDIT_KINDS, "status_changed")
_TAIL_CHUNK = 1 << 16
_HASH_CHUNK = 1 << 20


def utc_now() -> str:
    """Current time, ISO 8601 UTC with milliseconds (e.g. ``2025-01-31T12:00:00.123+00:00``)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def canonical_text(obj: Mapping[str, Any]) -> str:
    """Canonical one-line JSON of ``obj`` (sorted keys, no spaces, ASCII, no NaN) — what is hashed and written."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def entry_hash(entry: Mapping[str, Any]) -> str:
    """sha256 of ``entry`` serialised canonically without its ``hash`` field."""
    return sha256_bytes(canonical_text({k: v for k, v in entry.items() if k != "hash"}).encode("ascii"))


def draft_entry(kind: str, *, case_id: str | None, reader: str | None, engine_version: str,
                models: Sequence[Mapping[str, Any]] = (), details: Mapping[str, Any] | None = None,
                files: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An entry without ``seq``/``time``/``prev``/``hash`` (filled in by `append_entries`)."""
    if kind not in LEDGER_KINDS:
        raise ValueError(f"unknown ledger kind {kind!r}")
    return {"kind": kind, "case_id": case_id, "reader": reader, "engine_version": engine_version,
            "models": to_jsonable(list(models)), "details": to_jsonable(dict(details or {})),
            "files": dict(files or {})}


@dataclass(frozen=True)
class LedgerAnchor:
    """What ``store.json`` records of the ledger after every save (the chain's anchor): the number of entries,
    the byte length, the last entry's ``hash`` and the sha256 of those bytes."""

    entries: int
    size: int
    head: str
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """The form kept in ``store.json`` (``bytes`` is `size`)."""
        return {"entries": self.entries, "bytes": self.size, "head": self.head, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: Any) -> "LedgerAnchor":
        """The anchor `to_dict` wrote; `ValueError` when ``data`` is not one."""
        try:
            anchor = cls(int(data["entries"]), int(data["bytes"]), str(data["head"]), str(data["sha256"]))
        except (KeyError, TypeError, ValueError):
            raise ValueError("malformed ledger anchor") from None
        if anchor.entries < 1 or anchor.size < 1 or len(anchor.head) != 64 or len(anchor.sha256) != 64:
            raise ValueError("malformed ledger anchor")
        return anchor


@dataclass
class LedgerContents:
    """What `read_ledger` found: the entries in order, problems (damage), warnings (a torn last line)."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class LedgerTail:
    """Where a checked ledger ends (a torn last line lies beyond ``end``), its last line, the next ``seq`` and
    the sha256 object of its first ``end`` bytes: what `append_entries` continues."""

    end: int = 0
    last: bytes | None = None
    seq: int = 0
    digest: Any = field(default_factory=hashlib.sha256)


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _complete_lines(data: bytes, warnings: list[str]) -> list[bytes]:
    """The lines of ``data`` without a torn last one (no newline, or not JSON), which is named in ``warnings``."""
    lines = data.split(b"\n")
    remainder = lines.pop()  # bytes after the last newline ('' when the data ends with one)
    if remainder:
        warnings.append(f"the ledger's last line is torn (an interrupted save, {len(remainder)} bytes); "
                        "it is ignored and will be removed by the next save")
    elif lines and _parse(lines[-1]) is None:
        lines.pop()
        warnings.append("the ledger's last line is not complete JSON (an interrupted save); it is ignored and "
                        "will be removed by the next save")
    return lines


def _line_problems(line: bytes, n: int, prev_text: bytes) -> tuple[dict[str, Any] | None, list[str]]:
    """``(entry or None, problems)`` of ledger line ``n`` (0-based) following the line ``prev_text``."""
    entry = _parse(line)
    if entry is None:
        return None, [f"ledger line {n + 1} is damaged (not JSON)"]
    problems = []
    if entry.get("seq") != n:
        problems.append(f"ledger line {n + 1} has seq {entry.get('seq')!r}, expected {n}")
    if entry.get("prev") != (sha256_bytes(prev_text) if n else ""):
        problems.append(f"ledger line {n + 1} does not chain to the line before it (a line was changed, removed or "
                        "inserted)")
    if entry.get("hash") != entry_hash(entry):
        problems.append(f"ledger line {n + 1} was modified (its hash does not match its content)")
    return entry, problems


def read_ledger(path: str | os.PathLike) -> LedgerContents:
    """Read and check the whole ledger: JSON of every line, ``seq`` order, the ``prev`` chain, each ``hash``.

    A last line without its newline, or an unparsable last line, is a torn append: a warning, not an entry.
    A missing ledger file is a problem.
    """
    out = LedgerContents()
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        out.problems.append(f"the ledger {Path(path).name} is missing")
        return out
    prev_text = b""
    for n, line in enumerate(_complete_lines(data, out.warnings)):
        entry, problems = _line_problems(line, n, prev_text)
        out.problems += problems
        if entry is not None:
            out.entries.append(entry)
        prev_text = line
    return out


def _last_complete_line(f: Any, size: int) -> tuple[bytes | None, int]:
    """``(text of the last newline-terminated line before offset ``size`` or None, offset just after it)``."""
    pos, buf = size, b""
    while True:
        start = max(0, pos - _TAIL_CHUNK)
        f.seek(start)
        buf = f.read(pos - start) + buf
        pos = start
        last_nl = buf.rfind(b"\n")
        if last_nl == -1:
            if pos == 0:
                return None, 0
            continue
        prev_nl = buf.rfind(b"\n", 0, last_nl)
        if prev_nl == -1 and pos > 0:
            continue
        return buf[prev_nl + 1:last_nl], pos + last_nl + 1


def _damaged(path: Path, reason: str) -> NoReturn:
    raise InputError(f"the ledger {path} is damaged ({reason}); nothing was saved: run "
                     f"'iacseg store verify {path.parent}'")


def check_ledger(path: str | os.PathLike, anchor: LedgerAnchor | None) -> LedgerTail:
    """Check the ledger before an append, cheaply: its first ``anchor.size`` bytes must still hash to the
    anchor's sha256 (one pass, nothing parsed), and only the lines after them are parsed and chained. Without
    an anchor (a store made before anchors) every line is checked.

    `InputError` when the ledger is damaged or missing, so nothing is ever appended to it. A torn last line is
    not damage: it lies beyond the returned ``end`` and `append_entries` cuts it off.
    """
    path = Path(path)
    tail = LedgerTail()
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        _damaged(path, "it is missing")
    with f:
        if anchor is not None:
            if os.fstat(f.fileno()).st_size < anchor.size:
                _damaged(path, f"it is shorter than the {anchor.entries} entries anchored in store.json: entries "
                               "were removed")
            for chunk in iter(lambda: f.read(min(_HASH_CHUNK, anchor.size - f.tell())), b""):
                tail.digest.update(chunk)
            last, end = _last_complete_line(f, anchor.size)
            head = _parse(last) if last is not None else None
            if tail.digest.hexdigest() != anchor.sha256 or end != anchor.size or head is None \
                    or head.get("hash") != anchor.head:
                _damaged(path, f"its first {anchor.entries} entries no longer match the anchor in store.json: a "
                               "line was changed, removed or rewritten")
            tail.end, tail.last, tail.seq = anchor.size, last, anchor.entries
        f.seek(tail.end)
        rest = f.read()
    lines = _complete_lines(rest, [])
    prev_text = tail.last or b""
    for n, line in enumerate(lines, start=tail.seq):
        problems = _line_problems(line, n, prev_text)[1]
        if problems:
            _damaged(path, problems[0])
        prev_text = line
    checked = rest[:sum(len(line) + 1 for line in lines)]
    tail.digest.update(checked)
    tail.end, tail.seq = tail.end + len(checked), tail.seq + len(lines)
    tail.last = lines[-1] if lines else tail.last
    return tail


def append_entries(path: str | os.PathLike, drafts: Sequence[Mapping[str, Any]],
                   tail: LedgerTail) -> tuple[list[dict[str, Any]], LedgerAnchor]:
    """Append ``drafts`` (from `draft_entry`) as chained entries in one write after the ledger ``tail`` that
    `check_ledger` returned (``LedgerTail()`` for a new ledger), fsync; return the complete entries and the
    ledger's new anchor.

    Must run under `iacseg.store.safety.store_lock`, in the same hold as `check_ledger`. A torn last line is
    truncated first; a failed write is rolled back to the previous size.
    """
    if not drafts:
        raise ValueError("nothing to append")
    path = Path(path)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    with os.fdopen(fd, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        if size < tail.end:
            _damaged(path, "it shrank while it was being saved to")
        if tail.end < size:
            f.truncate(tail.end)
        seq, prev_text = tail.seq, tail.last
        entries, chunks = [], []
        for draft in drafts:
            entry = {**draft, "seq": seq, "time": utc_now(),
                     "prev": sha256_bytes(prev_text) if prev_text is not None else ""}
            entry["hash"] = entry_hash(entry)
            text = canonical_text(entry).encode("ascii")
            entries.append(entry)
            chunks.append(text + b"\n")
            prev_text, seq = text, seq + 1
        data = b"".join(chunks)
        f.seek(tail.end)
        try:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            f.truncate(tail.end)
            raise
    if created:
        fsync_dir(path.parent)
    digest = tail.digest.copy()
    digest.update(data)
    return entries, LedgerAnchor(seq, tail.end + len(data), entries[-1]["hash"], digest.hexdigest())
