"""The state of each case, derived purely from the ledger: subject, split, status, corrections, approval.

Nothing here touches the disk. Status rules (docs/STORE.md, "Case state, statuses and splits"): ``todo`` when
added; ``corrected`` whenever a correction is saved; ``in_review`` / ``approved`` / ``todo`` / ``corrected`` when set
by a reader — the latest status entry wins, and an approval names the (reader, version) it approves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..core.errors import InputError
from .layout import split_of_subject

STATUSES: tuple[str, ...] = ("todo", "in_review", "corrected", "approved")


@dataclass
class CaseInfo:
    """One case of the store as a list shows it.

    ``subject``: salted hash of the patient key (16 hex); ``split``: "train" | "val" | "test" (fixed by the
    subject); ``status``: one of `STATUSES`; ``created``: ISO 8601 UTC time it was added; ``corrections``:
    reader's full name → saved versions (1, 2, …); ``approved``: the approved (reader, version) or None.
    """

    case_id: str
    subject: str
    split: str
    status: str
    created: str
    corrections: dict[str, list[int]] = field(default_factory=dict)
    approved: tuple[str, int] | None = None


@dataclass(frozen=True)
class CorrectionRecord:
    """One saved correction as the ledger records it: who, which version, when, and its files' sha256."""

    reader: str
    slug: str
    version: int
    saved: str
    seq: int
    files: dict[str, str]
    note: str = ""
    edit_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form (as ``iacseg store show --json`` prints it)."""
        return {"reader": self.reader, "slug": self.slug, "version": self.version, "saved": self.saved,
                "seq": self.seq, "note": self.note, "edit_count": self.edit_count, "files": dict(self.files)}


@dataclass
class CaseState:
    """A case's `CaseInfo` plus its correction records (oldest first) and ledger entries."""

    info: CaseInfo
    records: list[CorrectionRecord] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)

    def find(self, which: str | tuple[str, int]) -> CorrectionRecord:
        """The correction ``which`` names: "latest" (newest saved), "approved", or (reader, version) where
        reader is the full name or its folder slug. `InputError` when there is none."""
        cid = self.info.case_id
        if which == "latest":
            if not self.records:
                raise InputError(f"case {cid} has no correction yet; save one first")
            return self.records[-1]
        if which == "approved":
            if self.info.approved is None:
                raise InputError(f"case {cid} is not approved (status {self.info.status}); approve a correction first")
            which = self.info.approved
        if not (isinstance(which, (tuple, list)) and len(which) == 2):
            raise InputError(f"{which!r} names no correction; use 'original', 'latest', 'approved' or "
                             "(reader, version)")
        reader, version = which
        for rec in self.records:
            if (rec.reader == reader or rec.slug == reader) and rec.version == int(version):
                return rec
        raise InputError(f"case {cid} has no correction version {version} by reader {reader!r}; "
                         f"saved: {describe_corrections(self.info.corrections) or 'none'}")


def describe_corrections(corrections: Mapping[str, list[int]]) -> str:
    """``"Dr A: v1, v2; Dr B: v1"`` (empty when there is none)."""
    return "; ".join(f"{r}: " + ", ".join(f"v{v}" for v in vs) for r, vs in corrections.items())


def case_states(entries: Iterable[Mapping[str, Any]], salt: str,
                fractions: Mapping[str, float]) -> dict[str, CaseState]:
    """Each case's state (in the order cases were added) from the ledger ``entries`` (oldest first)."""
    states: dict[str, CaseState] = {}
    for e in entries:
        cid, kind, details = e.get("case_id"), e.get("kind"), e.get("details") or {}
        if kind == "case_added":
            subject = str(details.get("subject", ""))
            info = CaseInfo(cid, subject, split_of_subject(salt, subject, fractions), "todo", str(e.get("time")))
            states[cid] = CaseState(info, models=list(e.get("models") or []))
        state = states.get(cid)
        if state is None:
            continue
        state.entries.append(dict(e))
        if kind == "correction_saved":
            rec = CorrectionRecord(str(e.get("reader")), str(details.get("slug")), int(details.get("version", 0)),
                                   str(e.get("time")), int(e.get("seq", -1)), dict(e.get("files") or {}),
                                   str(details.get("note", "")), int(details.get("edit_count", 0)))
            state.records.append(rec)
            state.info.corrections.setdefault(rec.reader, []).append(rec.version)
            state.info.status, state.info.approved = "corrected", None
        elif kind == "status_changed":
            state.info.status = str(details.get("to"))
            approved = details.get("approved")
            state.info.approved = (str(approved["reader"]), int(approved["version"])) if approved else None
    return states
