"""``iacseg store verify``: every file the ledger names is present with the recorded sha256, the ledger's hash
chain is intact and matches the anchor in ``store.json``, and nothing in the store is a symbolic link.

Problems are damage (a changed or missing file, a broken chain, a ledger that no longer matches its anchor:
rewritten, or cut short by whole lines). Warnings are the harmless traces of an interrupted save — files not in
the ledger, leftover temporary folders, a torn last ledger line — and a store made before anchors.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .anchor import ANCHOR_KEY, anchor_findings, store_file_matches
from .layout import CASES_DIR, LEDGER_FILE, PARTIAL_PREFIX, STORE_FILE, STORE_FORMAT
from .ledger import read_ledger
from ..core.files import sha256_of


@dataclass
class VerifyReport:
    """Result of `verify_store`: ``ok`` when there is no problem (warnings allowed)."""

    ok: bool
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files_checked: int = 0
    entries: int = 0
    anchored_entries: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form (as ``iacseg store verify --json`` prints it)."""
        return {"ok": self.ok, "problems": list(self.problems), "warnings": list(self.warnings),
                "files_checked": self.files_checked, "entries": self.entries,
                "anchored_entries": self.anchored_entries}


def _recorded_files(entries: list[dict[str, Any]], problems: list[str]) -> dict[str, str]:
    recorded: dict[str, str] = {}
    for e in entries:
        for rel, digest in (e.get("files") or {}).items():
            if rel in recorded and recorded[rel] != digest:
                problems.append(f"{rel} is recorded twice in the ledger with different contents (it was overwritten)")
            recorded[rel] = digest
    return recorded


def _check_recorded(root: Path, recorded: dict[str, str], problems: list[str]) -> int:
    checked = 0
    for rel, digest in sorted(recorded.items()):
        parts = PurePosixPath(rel).parts
        if PurePosixPath(rel).is_absolute() or ".." in parts:
            problems.append(f"the ledger names a file outside the store: {rel}")
            continue
        path = root.joinpath(*parts)
        if path.is_symlink():
            problems.append(f"{rel} is a symbolic link, not the file the ledger recorded")
        elif not path.is_file():
            problems.append(f"missing: {rel} (recorded in the ledger)")
        elif not (store_file_matches(path, digest) if rel == STORE_FILE else sha256_of(path) == digest):
            problems.append(f"changed: {rel} (its sha256 differs from the ledger's)")
        else:
            checked += 1
    return checked


def _walk_cases(root: Path, recorded: dict[str, str], problems: list[str], warnings: list[str]) -> None:
    cases = root / CASES_DIR
    if cases.is_symlink():
        problems.append(f"{CASES_DIR} is a symbolic link; the store only holds real folders")
        return
    for dirpath, dirnames, filenames in os.walk(cases):
        here = Path(dirpath)
        for name in sorted(dirnames):
            rel = (here / name).relative_to(root).as_posix()
            if (here / name).is_symlink():
                problems.append(f"{rel} is a symbolic link; the store only holds real folders")
            elif name.startswith(PARTIAL_PREFIX):
                warnings.append(f"leftover temporary folder of an interrupted save: {rel} (safe to delete; the "
                                "next save removes it once stale)")
        dirnames[:] = sorted(d for d in dirnames
                             if not d.startswith(PARTIAL_PREFIX) and not (here / d).is_symlink())
        for name in sorted(filenames):
            rel = (here / name).relative_to(root).as_posix()
            if (here / name).is_symlink():
                problems.append(f"{rel} is a symbolic link; the store only holds real files")
            elif rel not in recorded:
                warnings.append(f"not in the ledger: {rel} (from an interrupted save; kept, not used)")


def verify_store(root: str | os.PathLike) -> VerifyReport:
    """Check the store at ``root`` against its ledger (reads every file once; nothing is changed)."""
    root = Path(root)
    contents = read_ledger(root / LEDGER_FILE)
    problems, warnings = list(contents.problems), list(contents.warnings)
    info: dict[str, Any] = {}
    try:
        info = json.loads((root / STORE_FILE).read_text())
        if info.get("format") != STORE_FORMAT:
            problems.append(f"{STORE_FILE} does not describe an IACSeg corrections store")
    except (OSError, ValueError, AttributeError):
        problems.append(f"{STORE_FILE} is missing or not JSON")
    entries = contents.entries
    if isinstance(info, dict) and info:
        anchor_problems, anchor_warnings = anchor_findings(root, info, len(entries))
        problems += anchor_problems
        warnings += anchor_warnings
    if entries and entries[0].get("kind") != "store_created":
        problems.append("the ledger does not start with the store's creation")
    recorded = _recorded_files(entries, problems)
    checked = _check_recorded(root, recorded, problems)
    _walk_cases(root, recorded, problems, warnings)
    raw = info.get(ANCHOR_KEY) if isinstance(info, dict) else None
    anchored = raw.get("entries") if isinstance(raw, dict) else None
    return VerifyReport(not problems, problems, warnings, checked, len(entries),
                        anchored if isinstance(anchored, int) else None)
