"""The truth layout (docs/DESIGN.md, "Truth layout"): one case folder with its CT and the exact answer.

``ct.nii.gz`` (or a ``dicom/`` series), ``truth_calcifications.nii.gz`` (labels 0..8 on the CT grid),
``truth_landmarks.mrk.json`` (the six landmarks) and ``truth.json`` (the generator's record) — the output names
with a ``truth_`` prefix. Written by `iacseg.phantom` (`write_truth_files`), found and read here for training,
threshold calibration, evaluation and the nnU-Net export. Torch-free; SimpleITK and the CT reader are imported
only when a case is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np

from ..core.contracts import (LANDMARKS, PHANTOM_CT_FILE, PHANTOM_DICOM_DIR, TRUTH_JSON, TRUTH_LABELS_FILE,
    TRUTH_LANDMARKS_FILE)
from ..core.errors import InputError
from ..core.grid import Grid
from ..core.landmarks import Landmark
from .result_folder import folders_holding, read_label_image, read_label_map

if TYPE_CHECKING:  # type hints only
    from ..io.volume import CTVolume

CT_FILE = PHANTOM_CT_FILE
DICOM_DIR = PHANTOM_DICOM_DIR
LABELS_FILE = TRUTH_LABELS_FILE
LANDMARKS_FILE = TRUTH_LANDMARKS_FILE
TRUTH_FILE = TRUTH_JSON

#: What each use of a set of case folders needs besides the CT (named in the refusal when there is none).
NEEDED_FILES: dict[str, tuple[str, ...]] = {"training": (LABELS_FILE, LANDMARKS_FILE), "development": (LABELS_FILE,)}


def ct_path(folder: str | Path) -> Path:
    """The CT of a case folder: ``ct.nii.gz`` when it is there, else the ``dicom/`` series."""
    folder = Path(folder)
    return folder / CT_FILE if (folder / CT_FILE).is_file() else folder / DICOM_DIR


def is_case_folder(path: str | Path) -> bool:
    """True when ``path`` holds a truth label map and a CT (``ct.nii.gz`` or ``dicom/``)."""
    path = Path(path)
    return (path / LABELS_FILE).is_file() and ((path / CT_FILE).is_file() or (path / DICOM_DIR).is_dir())


def case_folders(root: str | Path, purpose: str = "training") -> list[Path]:
    """The case folders under ``root`` (or ``[root]`` when it is one); `InputError` naming what a case folder
    needs for ``purpose`` ("training" or "development") when there are none."""
    root = Path(root)
    if is_case_folder(root):
        return [root]
    found = sorted(p for p in root.iterdir() if p.is_dir() and is_case_folder(p)) if root.is_dir() else []
    if not found:
        needed = NEEDED_FILES.get(purpose, NEEDED_FILES["training"])
        listed = f"{', '.join(needed[:-1])} and {needed[-1]}" if len(needed) > 1 else needed[0]
        joint = ", " if len(needed) > 1 else " and "
        raise InputError(f"{root} holds no {purpose} cases; each case folder needs {CT_FILE} (or "
                         f"{DICOM_DIR}/){joint}{listed}")
    return found


def truth_folders(root: str | Path) -> dict[str, Path]:
    """``{case name: folder}`` of the folders holding a truth label map (``root`` itself or its subfolders);
    evaluation needs no CT."""
    return folders_holding(root, LABELS_FILE)


@dataclass(frozen=True)
class TruthFolder:
    """One truth-layout case folder; its files are read on demand."""

    folder: Path

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def ct_path(self) -> Path:
        return ct_path(self.folder)

    @property
    def labels_path(self) -> Path:
        return self.folder / LABELS_FILE

    @property
    def landmarks_path(self) -> Path:
        return self.folder / LANDMARKS_FILE

    @property
    def truth_path(self) -> Path:
        return self.folder / TRUTH_FILE

    def read_ct(self, allow_gaps: bool = False) -> "CTVolume":
        """The CT as `iacseg segment` reads it."""
        from ..io import read_ct

        return read_ct(self.ct_path, allow_gaps=allow_gaps)

    def read_label_image(self) -> Any:
        """The truth label map as a SimpleITK image; `InputError` when it is not a readable 3D image."""
        return read_label_image(self.labels_path, what="The truth label map", expected=LABELS_FILE)

    def read_labels(self) -> tuple[np.ndarray, Grid]:
        """The truth label map → ``(uint8 [k, j, i], Grid)``."""
        return read_label_map(self.labels_path, what="The truth label map", expected=LABELS_FILE)

    def has_landmarks(self) -> bool:
        return self.landmarks_path.is_file()

    def read_landmarks(self, required: Iterable[str] = LANDMARKS) -> dict[str, Landmark]:
        """The truth landmarks (``required`` must all be placed)."""
        from .markups import read_landmarks

        return read_landmarks(self.landmarks_path, required=required)

    def read_truth(self) -> dict[str, Any] | None:
        """``truth.json`` (None when absent or not a JSON object)."""
        try:
            doc = json.loads(self.truth_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None


def write_truth_files(folder: str | Path, labels: np.ndarray, grid: Grid, landmarks: Mapping[str, Landmark],
                      truth: Mapping[str, Any], description: str = "IACSeg truth landmarks") -> None:
    """Write ``truth_calcifications.nii.gz``, ``truth_landmarks.mrk.json`` (in contract order) and ``truth.json``
    into ``folder`` (the caller writes the CT and makes the folder appear atomically)."""
    from ..io.writers import write_image
    from .markups import write_landmarks

    folder = Path(folder)
    write_image(folder / LABELS_FILE, labels.astype(np.uint8), grid)
    write_landmarks(folder / LANDMARKS_FILE, [landmarks[n] for n in LANDMARKS], description=description)
    (folder / TRUTH_FILE).write_text(json.dumps(dict(truth), indent=2))
