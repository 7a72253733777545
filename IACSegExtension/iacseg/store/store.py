"""`CorrectionStore`: a local, server-free folder of readers' corrections with an append-only ledger.

Layout and rules: docs/STORE.md. Every write fills a temporary folder, then — under the store's file lock — checks
the ledger against its anchor in ``store.json`` (a damaged ledger is never appended to), takes the next free
name, renames the folder into place, appends the ledger line with the sha256 of each file and re-anchors.
Nothing is ever overwritten or deleted: a new correction is a new version. Images and label maps are
``[k, j, i]`` arrays on the case's `Grid` (LPS mm); landmarks are LPS mm. No Qt, no global state: the Slicer
module uses this class directly.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .. import __version__
from ..core.contracts import LABELS_FILE, LANDMARKS, LANDMARKS_FILE
from ..core.errors import InputError
from ..io.volume import CTVolume
from ..core.grid import Grid
from ..core.landmarks import Landmark
from .cases import STATUSES, CaseInfo, CaseState, case_states
from .layout import (CASE_FILE, CASES_DIR, CORRECTION_FILE, EDITS_FILE, IMAGE_FILE, LEDGER_FILE,
                     ORIGINAL_DIR, STORE_FILE, STORE_FORMAT, STORE_FORMAT_VERSION, case_dir, check_case_id,
                     check_reader, check_split, correction_dir, new_case_id, parse_version_dir, reader_dir,
                     reader_slug, relative, split_of_subject, subject_hash)
from .anchor import read_anchor, store_file_text, write_anchor
from .leftovers import remove_stale_partials
from .ledger import (EDIT_KINDS, LedgerContents, LedgerTail, append_entries, check_ledger, draft_entry, read_ledger,
                     utc_now)
from ..core.files import write_text_atomic, make_dirs, sha256_of
from .safety import discard_folder, partial_folder, publish_folder, store_lock
from .verify import VerifyReport, verify_store


class CorrectionStore:
    """A corrections store at ``root`` (create with `init`, open with `open`)."""

    def __init__(self, root: Path, info: Mapping[str, Any], lock_timeout_s: float = 60.0) -> None:
        self.root = Path(root)
        self._salt = str(info["salt"])
        self._split = check_split(info.get("split"))
        self.lock_timeout_s = float(lock_timeout_s)
        self._cached: tuple[tuple[int, int, int], LedgerContents] | None = None
        #: Notes for the user from writes (e.g. removed leftovers of crashed saves); the CLI prints them.
        self.warnings: list[str] = []
        self._tidied = False

    # -- creating / opening ------------------------------------------------------------------------------
    @classmethod
    def init(cls, root: str | Path, *, split: dict[str, float] | None = None) -> "CorrectionStore":
        """Create an empty store in ``root`` (a new or empty folder). ``split``: train/val/test fractions of
        subjects (default 0.7/0.15/0.15), fixed for the store's life. `InputError` if ``root`` is not empty."""
        root = Path(root).absolute()
        fractions = check_split(split)
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            what = "a store already" if (root / STORE_FILE).exists() else "not an empty folder"
            raise InputError(f"{root} is {what}; give a new or empty folder to create a store in")
        make_dirs(root / CASES_DIR)
        info = {"format": STORE_FORMAT, "format_version": STORE_FORMAT_VERSION, "created": utc_now(),
                "salt": secrets.token_hex(16), "split": fractions}
        with store_lock(root):
            if (root / STORE_FILE).exists() or (root / LEDGER_FILE).exists():  # another init won the race
                raise InputError(f"{root} is a store already; give a new or empty folder to create a store in")
            write_text_atomic(root / STORE_FILE, store_file_text(info))
            anchor = append_entries(root / LEDGER_FILE, [draft_entry(
                "store_created", case_id=None, reader=None, engine_version=__version__,
                details={"format": STORE_FORMAT, "format_version": STORE_FORMAT_VERSION, "split": fractions},
                files={STORE_FILE: sha256_of(root / STORE_FILE)})], LedgerTail())[1]
            write_anchor(root, anchor)
        return cls(root, info)

    @classmethod
    def open(cls, root: str | Path) -> "CorrectionStore":
        """Open the store in ``root``; `InputError` when ``root`` is not one (or is a newer format)."""
        root = Path(root).absolute()
        try:
            info = json.loads((root / STORE_FILE).read_text())
            ok = isinstance(info, dict) and info.get("format") == STORE_FORMAT and "salt" in info
        except (OSError, ValueError):
            ok = False
        if not ok:
            raise InputError(f"{root} is not an IACSeg corrections store; create one with 'iacseg store init {root}'")
        if int(info.get("format_version", 0)) > STORE_FORMAT_VERSION:
            raise InputError(f"the store {root} was made by a newer IACSeg (format {info['format_version']}); "
                             "update iacseg to open it")
        return cls(root, info)

    # -- writing -------------------------------------------------------------------------------------------
    def add_case(self, image: str | Path | CTVolume, engine_output: str | Path, *, case_id: str | None = None,
                 subject: str | None = None, keep_identifiers: bool = False, reader: str = "engine",
                 allow_gaps: bool = False) -> str:
        """Add a case: the CT (path or `CTVolume`, HU) and the folder ``iacseg segment`` wrote for it.

        Stores the CT as int16 HU NIfTI, the engine's labels, landmarks and a scrubbed report. ``case_id``:
        default an opaque random id. ``subject``: patient key for the split (default: the DICOM PatientID,
        else the case id), stored only as a salted hash. DICOM identifiers are kept in ``case.json`` only with
        ``keep_identifiers``. ``allow_gaps``: fill missing DICOM slices by interpolation (refused otherwise).
        Returns the case id; `InputError` for a bad id, a taken id, mismatched inputs or a damaged ledger.
        """
        from .intake import case_document, check_same_grid, fill_case_folder, load_image, read_engine_output

        case_id = check_case_id(case_id) if case_id is not None else new_case_id()
        reader = check_reader(reader)
        target = case_dir(self.root, case_id)
        if target.exists():
            raise InputError(f"case {case_id} already exists in {self.root}; choose another case id",
                             parameter="case_id")
        check_ledger(self.root / LEDGER_FILE, read_anchor(self.root))  # refuse before reading the CT
        loaded = load_image(image, allow_gaps=allow_gaps)
        engine = read_engine_output(engine_output)
        check_same_grid(loaded, engine, engine_output)
        key = subject if subject is not None else loaded.identifiers.get("PatientID") or case_id
        stored_subject = subject_hash(self._salt, str(key))
        doc = case_document(case_id, stored_subject, loaded, engine, keep_identifiers)
        tmp = partial_folder(self.root / CASES_DIR)
        try:
            digests = fill_case_folder(tmp, doc, loaded, engine)
            with store_lock(self.root, self.lock_timeout_s):
                tail = self._writable()
                if target.exists() or case_id in self._states():
                    raise InputError(f"case {case_id} already exists in {self.root}; choose another case id",
                                     parameter="case_id")
                publish_folder(tmp, target)
                files = {relative(self.root, target / name): digest for name, digest in digests.items()}
                self._append(tail, [draft_entry(
                    "case_added", case_id=case_id, reader=reader, engine_version=__version__, models=doc["models"],
                    details={"subject": stored_subject, "source_kind": doc["source_kind"],
                             "split": split_of_subject(self._salt, stored_subject, self._split),
                             "case_engine_version": doc["engine_version"],
                             "identifiers_kept": bool(keep_identifiers)},
                    files=files)])
        finally:
            discard_folder(tmp)
        return case_id

    def add_correction(self, case_id: str, reader: str, labels: np.ndarray, landmarks: Mapping[str, Landmark],
                       edits: Sequence[Mapping[str, Any]], *, models: Sequence[Mapping[str, Any]] | None = None,
                       note: str = "") -> int:
        """Save a reader's corrected label map (0..8, ``[k, j, i]`` on the case grid) and six landmarks (LPS mm)
        as that reader's next version, with the ``edits`` of this save (``Edit.to_dict()`` records: landmark
        moved from/to z mm and slice, lesion reassigned/deleted/added). ``models``: the models whose output was
        corrected (default: the case's). Returns the new version number (1, 2, …)."""
        reader = check_reader(reader)
        slug = reader_slug(reader)
        state = self._state(case_id)
        grid = self.grid(case_id)
        labels = _checked_labels(labels, grid, case_id)
        marks = _checked_landmarks(landmarks)
        edit_list = _checked_edits(edits)
        models = [dict(m) for m in models] if models is not None else list(state.models)
        folder = reader_dir(self.root, case_id, slug)
        tmp = partial_folder(folder)
        try:
            _write_correction_files(tmp, labels, grid, marks, edit_list, reader)
            with store_lock(self.root, self.lock_timeout_s):
                tail = self._writable()
                entries = read_ledger(self.root / LEDGER_FILE).entries
                version = self._next_version(entries, case_id, reader, slug, folder)
                record = {"case_id": case_id, "reader": reader, "version": version, "saved": utc_now(),
                          "models": models, "note": str(note), "edit_count": len(edit_list)}
                write_text_atomic(tmp / CORRECTION_FILE, json.dumps(record, indent=2) + "\n")
                final = correction_dir(self.root, case_id, slug, version)
                digests = {relative(self.root, final / p.name): sha256_of(p) for p in sorted(tmp.iterdir())}
                publish_folder(tmp, final)
                common = {"case_id": case_id, "reader": reader, "engine_version": __version__, "models": models}
                drafts = [draft_entry("correction_saved", **common, files=digests, details={
                    "version": version, "slug": slug, "note": str(note), "edit_count": len(edit_list),
                    "status": "corrected"})]
                drafts += [draft_entry(str(e["kind"]), **common,
                                       details={**{k: v for k, v in e.items() if k != "kind"}, "version": version})
                           for e in edit_list]
                self._append(tail, drafts)
        finally:
            discard_folder(tmp)
        return version

    def set_status(self, case_id: str, status: str, reader: str, *, approved: tuple[str, int] | None = None) -> None:
        """Set a case's status (`STATUSES`). "approved" and "corrected" need a saved correction; "approved"
        records which (reader, version) — default the newest correction."""
        if status not in STATUSES:
            raise InputError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        reader = check_reader(reader)
        if approved is not None and status != "approved":
            raise InputError("a correction to approve can only be given with status 'approved'")
        with store_lock(self.root, self.lock_timeout_s):
            tail = self._writable()
            state = self._state(case_id)
            if status in ("approved", "corrected") and not state.records:
                raise InputError(f"case {case_id} has no saved correction, so it cannot be {status}; save one first")
            chosen = None
            if status == "approved":
                rec = state.find((str(approved[0]), int(approved[1])) if approved else "latest")
                chosen = {"reader": rec.reader, "version": rec.version}
            self._append(tail, [draft_entry(
                "status_changed", case_id=case_id, reader=reader, engine_version=__version__, models=state.models,
                details={"from": state.info.status, "to": status, "approved": chosen})])

    # -- reading -------------------------------------------------------------------------------------------
    def ledger(self) -> list[dict[str, Any]]:
        """All ledger entries, oldest first (a torn last line is left out)."""
        return copy.deepcopy(self._entries())

    def cases(self) -> list[CaseInfo]:
        """Every case, in the order added."""
        return [s.info for s in self._states().values()]

    def case(self, case_id: str) -> CaseInfo:
        """One case's `CaseInfo`; `InputError` for an unknown or invalid id."""
        return self._state(case_id).info

    def split_of(self, case_id: str) -> str:
        """The case's fixed split: "train", "val" or "test"."""
        return self.case(case_id).split

    def grid(self, case_id: str) -> Grid:
        """The case's voxel grid (image and every label map share it)."""
        return Grid.from_dict(self._case_document(case_id)["grid"])

    def show(self, case_id: str) -> dict[str, Any]:
        """``case.json`` plus split, status, approved correction, corrections (oldest first) and the case's
        ledger entries."""
        state = self._state(case_id)
        doc = self._case_document(case_id)
        info = state.info
        return {**doc, "split": info.split, "status": info.status,
                "approved": list(info.approved) if info.approved else None,
                "corrections": [r.to_dict() for r in state.records], "ledger": copy.deepcopy(state.entries)}

    def image_path(self, case_id: str) -> Path:
        """The stored CT (int16 HU NIfTI on the case grid)."""
        self._state(case_id)
        return case_dir(self.root, case_id) / IMAGE_FILE

    def labels_path(self, case_id: str, which: str | tuple[str, int] = "original") -> Path:
        """A label map (0..8) of the case: "original" (engine), "approved", "latest" (newest correction) or
        (reader, version). `InputError` when there is no such correction."""
        return self._file(case_id, which, LABELS_FILE)

    def landmarks_path(self, case_id: str, which: str | tuple[str, int] = "original") -> Path:
        """A landmarks file (``.mrk.json``, LPS mm) of the case; ``which`` as in `labels_path`."""
        return self._file(case_id, which, LANDMARKS_FILE)

    def verify(self) -> VerifyReport:
        """Check every file against the ledger's sha256 and the ledger's hash chain (see `verify_store`)."""
        return verify_store(self.root)

    # -- internals -----------------------------------------------------------------------------------------
    def _writable(self) -> LedgerTail:
        """Under the store lock, before any write: remove stale leftovers of crashed saves (once per opened
        store, named in `warnings`) and check the ledger against its anchor; `InputError` when it is damaged."""
        if not self._tidied:
            self._tidied = True
            removed = remove_stale_partials(self.root)
            if removed:
                self.warnings.append(f"removed {len(removed)} leftover temporary folder(s) of interrupted saves: "
                                     + ", ".join(removed))
        return check_ledger(self.root / LEDGER_FILE, read_anchor(self.root))

    def _append(self, tail: LedgerTail, drafts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Append ``drafts`` after the checked ``tail`` and record the new anchor in ``store.json``."""
        entries, anchor = append_entries(self.root / LEDGER_FILE, drafts, tail)
        write_anchor(self.root, anchor)
        return entries

    def _entries(self) -> list[dict[str, Any]]:
        """The ledger's entries, re-read only when the file changed (it only grows, so size and mtime tell)."""
        path = self.root / LEDGER_FILE
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise InputError(f"the store {self.root} has lost its ledger; run 'iacseg store verify'") from None
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, read_ledger(path))
        return self._cached[1].entries

    def _states(self) -> dict[str, CaseState]:
        return case_states(self._entries(), self._salt, self._split)

    def _state(self, case_id: str) -> CaseState:
        check_case_id(case_id)
        state = self._states().get(case_id)
        if state is None:
            raise InputError(f"there is no case {case_id} in the store {self.root}; see 'iacseg store list'")
        case_dir(self.root, case_id)  # refuses a case folder that resolves outside the store
        return state

    def _case_document(self, case_id: str) -> dict[str, Any]:
        try:
            return json.loads((case_dir(self.root, case_id) / CASE_FILE).read_text())
        except (OSError, ValueError):
            raise InputError(f"the case.json of case {case_id} is missing or damaged; run 'iacseg store verify "
                             f"{self.root}'") from None

    def _file(self, case_id: str, which: str | tuple[str, int], name: str) -> Path:
        state = self._state(case_id)
        if which == "original":
            return case_dir(self.root, case_id) / ORIGINAL_DIR / name
        rec = state.find(which)
        return correction_dir(self.root, case_id, rec.slug, rec.version) / name

    def _next_version(self, entries: list[dict[str, Any]], case_id: str, reader: str, slug: str,
                      reader_dir: Path) -> int:
        """Next free version of ``slug`` in the case: above every folder on disk and every ledger record."""
        used = [parse_version_dir(p.name) for p in reader_dir.iterdir()] if reader_dir.is_dir() else []
        for rec in case_states(entries, self._salt, self._split)[case_id].records:
            if rec.slug == slug and rec.reader != reader:
                raise InputError(f"reader name {reader!r} maps to the folder {slug!r} already used by reader "
                                 f"{rec.reader!r}; use a more distinct name")
            if rec.slug == slug:
                used.append(rec.version)
        return max([v for v in used if v is not None], default=0) + 1


def _checked_labels(labels: np.ndarray, grid: Grid, case_id: str) -> np.ndarray:
    labels = np.asarray(labels)
    if tuple(labels.shape) != tuple(grid.shape):
        raise InputError(f"the corrected label map has shape {labels.shape} but case {case_id} is {grid.shape} "
                         "[k, j, i]; save labels on the case's own grid")
    if labels.size and (labels.min() < 0 or labels.max() > 8 or not np.all(np.mod(labels, 1) == 0)):
        raise InputError("the corrected label map must hold whole values 0..8 (0 background, 1..8 segments)")
    return labels.astype(np.uint8)


def _checked_landmarks(landmarks: Mapping[str, Landmark]) -> list[Landmark]:
    missing = [n for n in LANDMARKS if n not in landmarks]
    if missing:
        raise InputError(f"the correction lacks the landmark(s) {', '.join(missing)}; all six are saved together")
    return [landmarks[n] for n in LANDMARKS]


def _checked_edits(edits: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    from ..outputs.report import to_jsonable

    out = []
    for e in edits:
        record = to_jsonable(e.to_dict() if hasattr(e, "to_dict") else dict(e))
        if record.get("kind") not in EDIT_KINDS:
            raise InputError(f"edit kind {record.get('kind')!r} is not one of {', '.join(EDIT_KINDS)}")
        out.append(record)
    return out


def _write_correction_files(folder: Path, labels: np.ndarray, grid: Grid, landmarks: list[Landmark],
                            edits: list[dict[str, Any]], reader: str) -> None:
    from ..io.writers import write_image
    from ..outputs.markups import write_landmarks

    write_image(folder / LABELS_FILE, labels, grid)
    write_landmarks(folder / LANDMARKS_FILE, landmarks, description=f"IACSeg landmarks corrected by {reader}")
    write_text_atomic(folder / EDITS_FILE, "".join(json.dumps(e, sort_keys=True) + "\n" for e in edits))
