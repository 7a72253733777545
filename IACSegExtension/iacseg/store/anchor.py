"""The ledger's anchor in ``store.json`` (key ``ledger_anchor``), rewritten atomically under the store lock after
every append: ``{"entries", "bytes", "head", "sha256"}`` of the ledger as that save left it (see `LedgerAnchor`).

``store.json``'s own sha256, recorded in the ledger's first line, covers the file as `init` wrote it, i.e.
everything but the anchor, which changes with every save. The anchor is not signed: whoever can rewrite both
``ledger.jsonl`` and ``store.json`` consistently is not detected.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

from ..core.errors import InputError
from .layout import LEDGER_FILE, STORE_FILE
from .ledger import LedgerAnchor
from ..core.files import write_text_atomic, sha256_bytes, sha256_of

ANCHOR_KEY = "ledger_anchor"
_HASH_CHUNK = 1 << 20


def store_file_text(info: Mapping[str, Any]) -> str:
    """``store.json``'s text for ``info`` (the form `init` writes and anchors rewrite)."""
    return json.dumps(dict(info), indent=2) + "\n"


def store_file_matches(path: str | os.PathLike, digest: str) -> bool:
    """Whether ``store.json`` at ``path`` is the file whose sha256 the ledger recorded, its anchor aside."""
    if sha256_of(path) == digest:
        return True
    try:
        info = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    fixed = {k: v for k, v in info.items() if k != ANCHOR_KEY} if isinstance(info, dict) else None
    return fixed is not None and sha256_bytes(store_file_text(fixed).encode("utf-8")) == digest


def read_anchor(root: Path) -> LedgerAnchor | None:
    """The anchor ``store.json`` records, ``None`` for a store made before anchors; `InputError` when the
    anchor (or ``store.json``) is damaged."""
    try:
        info = json.loads((root / STORE_FILE).read_text())
        raw = info.get(ANCHOR_KEY)
        return None if raw is None else LedgerAnchor.from_dict(raw)
    except (OSError, ValueError, AttributeError):
        raise InputError(f"the ledger anchor in {root / STORE_FILE} is damaged; nothing was saved: run "
                         f"'iacseg store verify {root}'") from None


def write_anchor(root: Path, anchor: LedgerAnchor) -> None:
    """Record ``anchor`` in ``store.json`` (atomic rewrite; call under the store lock, after the append)."""
    info = json.loads((root / STORE_FILE).read_text())
    info[ANCHOR_KEY] = anchor.to_dict()
    write_text_atomic(root / STORE_FILE, store_file_text(info))


def anchor_findings(root: Path, info: Mapping[str, Any], entries: int) -> tuple[list[str], list[str]]:
    """``(problems, warnings)`` of the ledger (``entries`` intact entries read) against ``store.json``'s anchor:
    a ledger shorter than its anchor (entries removed) or whose anchored bytes differ (a line
    changed, or the chain rewritten with every later hash recomputed). Entries after the anchor (a save
    interrupted between its ledger line and ``store.json``) are fine: they are chained and checked as usual."""
    raw = info.get(ANCHOR_KEY)
    if raw is None:
        return [], ["no ledger anchor recorded in store.json (an older store); the next save anchors it"]
    try:
        anchor = LedgerAnchor.from_dict(raw)
    except ValueError:
        return [f"the ledger anchor in {STORE_FILE} is damaged"], []
    path = root / LEDGER_FILE
    try:
        size = path.stat().st_size
        digest = _prefix_sha256(path, anchor.size) if size >= anchor.size else ""
    except OSError:
        return [], []  # a missing ledger is reported by read_ledger
    if size < anchor.size:
        return [f"the ledger has {entries} entries ({size} bytes) but {STORE_FILE} anchors {anchor.entries} "
                f"({anchor.size} bytes): entries were removed"], []
    if digest != anchor.sha256:
        return [f"the ledger's first {anchor.entries} entries do not match the anchor in {STORE_FILE}: a line was "
                "changed, or the chain was rewritten"], []
    return [], []


def _prefix_sha256(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while size > 0:
            chunk = f.read(min(_HASH_CHUNK, size))
            if not chunk:
                break
            h.update(chunk)
            size -= len(chunk)
    return h.hexdigest()
