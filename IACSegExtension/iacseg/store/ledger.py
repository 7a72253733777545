"""The store's append-only, hash-chained ledger (``ledger.jsonl``): one JSON object per line.

Each entry has ``seq`` (0, 1, 2 …), ``time`` (ISO 8601 UTC), ``kind``, ``case_id``, ``reader``,
``engine_version``, ``models``, ``details``, ``files`` (store-relative path → sha256 of the file published just
before the entry), ``prev`` (sha256 of the previous line's text, ``""`` for seq 0) and ``hash`` (sha256 of the
entry serialised canonically without ``hash``). A line is canonical JSON: sorted keys, no spaces, ASCII only.

Only the last line can be torn (a crash or full disk during an append): readers ignore it with a warning and the
next append, which runs under the store lock, truncates it first.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import InputError
from ..outputs.report import to_jsonable
from .safety import fsync_dir, sha256_bytes

EDIT_KINDS: tuple[str, ...] = ("landmark_moved", "lesion_reassigned", "lesion_deleted", "lesion_added")
LEDGER_KINDS: tuple[str, ...] = ("store_created", "case_added", "correction_saved", *EDIT_KINDS, "status_changed")
_TAIL_CHUNK = 1 << 16


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


@dataclass
class LedgerContents:
    """What `read_ledger` found: the entries in order, problems (damage), warnings (a torn last line)."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


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
    lines = data.split(b"\n")
    remainder = lines.pop()  # bytes after the last newline ('' when the file ends with one)
    if remainder:
        out.warnings.append(f"the ledger's last line is torn (an interrupted save, {len(remainder)} bytes); "
                            "it is ignored and will be removed by the next save")
    if not remainder and lines and _parse(lines[-1]) is None:
        lines.pop()
        out.warnings.append("the ledger's last line is not complete JSON (an interrupted save); it is ignored and "
                            "will be removed by the next save")
    prev_text = b""
    for n, line in enumerate(lines):
        entry = _parse(line)
        if entry is None:
            out.problems.append(f"ledger line {n + 1} is damaged (not JSON)")
            prev_text = line
            continue
        if entry.get("seq") != n:
            out.problems.append(f"ledger line {n + 1} has seq {entry.get('seq')!r}, expected {n}")
        expected_prev = sha256_bytes(prev_text) if n else ""
        if entry.get("prev") != expected_prev:
            out.problems.append(f"ledger line {n + 1} does not chain to the line before it (a line was changed, "
                                "removed or inserted)")
        if entry.get("hash") != entry_hash(entry):
            out.problems.append(f"ledger line {n + 1} was modified (its hash does not match its content)")
        out.entries.append(entry)
        prev_text = line
    return out


def _last_complete_line(f: Any, size: int) -> tuple[bytes | None, int]:
    """``(text of the last newline-terminated line or None, offset just after its newline)``."""
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


def append_entries(path: str | os.PathLike, drafts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Append ``drafts`` (from `draft_entry`) as chained entries in one write, fsync, and return them complete.

    Must run under `iacseg.store.safety.store_lock`. A torn last line is truncated first; a failed write is
    rolled back to the previous size.
    """
    path = Path(path)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    with os.fdopen(fd, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        last, end = _last_complete_line(f, size)
        if end == size and last is not None and _parse(last) is None:  # unparsable last line: a torn append
            last, end = _last_complete_line(f, end - len(last) - 1)
        if last is not None and _parse(last) is None:
            raise InputError(f"the ledger {path} is damaged at its end; run 'iacseg store verify' on the store and "
                             "restore the ledger from a backup")
        if end < size:
            f.truncate(end)
        prev_entry = _parse(last) if last is not None else None
        seq = int(prev_entry["seq"]) + 1 if prev_entry is not None else 0
        prev_text = last if last is not None else None
        entries, chunks = [], []
        for draft in drafts:
            entry = {**draft, "seq": seq, "time": utc_now(),
                     "prev": sha256_bytes(prev_text) if prev_text is not None else ""}
            entry["hash"] = entry_hash(entry)
            text = canonical_text(entry).encode("ascii")
            entries.append(entry)
            chunks.append(text + b"\n")
            prev_text, seq = text, seq + 1
        f.seek(end)
        try:
            f.write(b"".join(chunks))
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            f.truncate(end)
            raise
    if created:
        fsync_dir(path.parent)
    return entries
