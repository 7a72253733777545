"""Saving a reader's correction as image-free files, each save in a new version folder, never overwriting.

Layout: ``FOLDER/<case>/v001/`` (then ``v002`` …) holding ``original_calcifications.nii.gz``,
``corrected_calcifications.nii.gz`` (label maps 0..8, ``[k, j, i]`` on the CT grid, LPS), ``original_landmarks.mrk.json``,
``corrected_landmarks.mrk.json``, ``edits.jsonl`` (one `Edit` per line) and ``correction.json`` (who, when,
source, models, counts). The CT itself is not copied. A version folder appears whole or not at all: it is
filled under a temporary name and renamed; if another save took the name meanwhile, the next number is used.
The corrections store of issue 5 will replace this folder layout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from iacseg.contracts import SEGMENTS
from iacseg.errors import InputError
from iacseg.outputs.markups import write_landmarks

from .results import ordered_landmarks

if TYPE_CHECKING:
    from .review import ReviewSession

ORIGINAL_LABELS = "original_calcifications.nii.gz"
CORRECTED_LABELS = "corrected_calcifications.nii.gz"
ORIGINAL_LANDMARKS = "original_landmarks.mrk.json"
CORRECTED_LANDMARKS = "corrected_landmarks.mrk.json"
EDITS_FILE = "edits.jsonl"
CORRECTION_FILE = "correction.json"
_VERSION = re.compile(r"^v(\d{3,})$")
_SAFE_CASE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_case_id(case_id: str) -> str:
    """A folder name for a case id (no path separators or spaces)."""
    cleaned = _SAFE_CASE.sub("_", case_id.strip()).strip("._")
    if not cleaned:
        raise InputError(f"the case name {case_id!r} has no usable characters; give the volume a name")
    return cleaned


def versions(case_folder: Path) -> list[int]:
    """Existing version numbers in a case folder, ascending."""
    if not case_folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in case_folder.iterdir() if (m := _VERSION.match(p.name)) and p.is_dir())


def _label_counts(labels: np.ndarray) -> dict[str, int]:
    counts = np.bincount(np.asarray(labels).reshape(-1), minlength=max(SEGMENTS) + 1)
    return {name: int(counts[value]) for value, name in sorted(SEGMENTS.items())}


def save_correction(folder: str | Path, session: "ReviewSession", case_id: str, *,
                    source: str | Path | None = None, models: list[Mapping[str, Any]] | None = None,
                    extra: Mapping[str, Any] | None = None) -> Path:
    """Write the correction of ``session`` into a new ``folder/<case_id>/vNNN/``; returns that folder.

    ``source``: the engine output folder corrected; ``models``: the report's model records (name, version,
    sha256) so the correction says which model it corrects. Never overwrites an earlier version.
    """
    from iacseg.io.writers import write_image

    if not session.edits:
        raise InputError("there is nothing to save: move a landmark or edit a lesion first")
    case_folder = Path(folder) / safe_case_id(case_id)
    case_folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".correction.", suffix=".partial", dir=case_folder))
    try:
        write_image(tmp / ORIGINAL_LABELS, session.original_labels, session.grid)
        write_image(tmp / CORRECTED_LABELS, session.labels, session.grid)
        write_landmarks(tmp / ORIGINAL_LANDMARKS, ordered_landmarks(session.original_landmarks),
                        "IACSeg landmarks (engine)")
        write_landmarks(tmp / CORRECTED_LANDMARKS, ordered_landmarks(session.landmarks), "IACSeg landmarks (reader)")
        (tmp / EDITS_FILE).write_text("".join(json.dumps(e.to_dict()) + "\n" for e in session.edits))
        record = {"case": case_id, "reader": session.reader, "saved": session.clock(),
                  "source": None if source is None else str(source), "models": list(models or []),
                  "edit_count": len(session.edits), "grid": session.grid.to_dict(),
                  "voxels_by_segment": {"original": _label_counts(session.original_labels),
                                        "corrected": _label_counts(session.labels)},
                  "landmarks_z_mm": {"original": {n: lm.z_mm for n, lm in session.original_landmarks.items()},
                                     "corrected": {n: lm.z_mm for n, lm in session.landmarks.items()}},
                  **dict(extra or {})}
        (tmp / CORRECTION_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n")
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        return _publish(tmp, case_folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _publish(tmp: Path, case_folder: Path, attempts: int = 100) -> Path:
    """Rename ``tmp`` to the next free ``vNNN``; a name taken meanwhile by another save is skipped."""
    number = (versions(case_folder) or [0])[-1] + 1
    for _ in range(attempts):
        target = case_folder / f"v{number:03d}"
        if not target.exists():
            try:
                os.rename(tmp, target)  # fails if another save created a non-empty target meanwhile
                return target
            except OSError:
                pass
        number += 1
    raise OSError(f"could not find a free version folder in {case_folder}")
