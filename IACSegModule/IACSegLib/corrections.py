"""Saving a reader's correction into the corrections store (`iacseg.store`), the same store the CLI uses.

The first save of a reviewed case adds it to the store — the de-identified CT the engine read and the engine's
own output folder (original labels, landmarks, report) — under an opaque case id; that save and every later one
is a new correction version of the reader (``corrections/<reader>/vNNN``), never overwriting an earlier one,
with the session's edits appended to the store's ledger. The store is created on the first save.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from iacseg.core.errors import InputError
from iacseg.store import CorrectionStore
from iacseg.store.layout import STORE_FILE

if TYPE_CHECKING:
    from .review import ReviewSession


@dataclass(frozen=True)
class SavedCorrection:
    """Where a save went: the store, the case id in it, the reader and the new version number."""

    store: Path
    case_id: str
    reader: str
    version: int

    def describe(self) -> str:
        return f"case {self.case_id}, {self.reader} version {self.version} in {self.store}"


def open_or_create_store(root: str | Path) -> CorrectionStore:
    """The store at ``root``; a new one when ``root`` does not exist or is an empty folder."""
    root = Path(root).expanduser()
    if (root / STORE_FILE).is_file():
        return CorrectionStore.open(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise InputError(f"{root} is not an IACSeg corrections store and is not empty; choose another folder "
                         "for corrections in the module settings")
    return CorrectionStore.init(root)


def save_correction(store_root: str | Path, session: "ReviewSession", *, image: str | Path,
                    engine_output: str | Path, case_id: str | None = None,
                    models: Sequence[Mapping[str, Any]] | None = None, note: str = "") -> SavedCorrection:
    """Save ``session``'s labels, landmarks and edits as the reader's next version of the case.

    ``image``: the CT file the engine read; ``engine_output``: the folder ``iacseg segment`` wrote for it;
    ``case_id``: the store id from an earlier save of this case (None → the case is added first). ``models``:
    the report's model records (name, version, sha256) of the output that was corrected."""
    edits = session.unsaved_edits
    if not edits:
        raise InputError("there is nothing new to save: move a landmark or edit a lesion first")
    if not (session.reader or "").strip():
        raise InputError("enter your reader name before saving, so the correction says who made it")
    store = open_or_create_store(store_root)
    if case_id is None:
        case_id = store.add_case(image, engine_output)
    version = store.add_correction(case_id, session.reader, session.labels, session.landmarks,
                                   [e.to_dict() for e in edits], models=models, note=note)
    session.saved_edits = len(session.edits)
    return SavedCorrection(store.root, case_id, session.reader, version)
