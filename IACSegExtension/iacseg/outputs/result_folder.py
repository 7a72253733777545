"""Reading an engine output folder (docs/DESIGN.md, "Output folder"): the one reader of what
`iacseg.outputs.writer.write_case_outputs` writes.

`ResultFolder` names a folder's contract files and reads them on demand: ``report.json`` (cached), the label map
``calcifications.nii.gz`` (checked to hold 0..8 only), ``landmarks.mrk.json`` (with the report's slice and
confidence) and the midsagittal plane. `ResultFolder.load` reads them all into a `LoadedResult`. Every missing
or damaged file is one `InputError` naming it; ``hint`` is what the message tells the user to do (each front end
says it in its own words). Used by ``iacseg relabel``, the corrections store's intake, ``iacseg evaluate`` and
the Slicer module, which imports it in-process: nothing here imports torch (SimpleITK only when a label map is
read).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..core.contracts import (LABELS_FILE, LANDMARKS, LANDMARKS_FILE, REPORT_CSV, REPORT_JSON, SEGMENTATION_FILE,
    SEGMENTS)
from ..core.errors import InputError
from ..core.grid import Grid
from ..core.landmarks import Landmark
from ..core.plane import MidsagittalPlane

#: The files a result must hold to be read (``calcifications.seg.nrrd`` and ``report.csv`` are for people).
REQUIRED_FILES: tuple[str, ...] = (LABELS_FILE, LANDMARKS_FILE, REPORT_JSON)
#: What a refusal tells the user to do unless the caller says it otherwise.
SEGMENT_HINT = "give the folder written by iacseg segment"


def read_label_image(path: str | Path, *, what: str = "The mask", expected: str = LABELS_FILE) -> Any:
    """A 3D label-map file as a SimpleITK image. `InputError` when it is missing, a folder, not a readable image
    or not 3D; ``what`` names the file in messages, ``expected`` is the file name the user should give."""
    import SimpleITK as sitk

    from ..io.paths import check_input_path, itk_path, shown

    path = check_input_path(Path(path), f"{what} file")
    if path.is_dir():
        raise InputError(f"{what} {shown(path)} is a folder; give the {expected} file inside it")
    try:
        with itk_path(path) as name:
            image = sitk.ReadImage(name)
    except RuntimeError:
        raise InputError(f"{path} is not a readable image (expected e.g. {expected})") from None
    if image.GetDimension() != 3:
        raise InputError(f"{path} is not a 3D label map")
    return image


def read_label_map(path: str | Path, *, what: str = "The mask", expected: str = LABELS_FILE
                   ) -> tuple[np.ndarray, Grid]:
    """A label map / mask file → ``(uint8 array [k, j, i], Grid)`` (see `read_label_image` for the refusals)."""
    import SimpleITK as sitk

    from ..io.volume import grid_from_sitk

    image = read_label_image(path, what=what, expected=expected)
    return sitk.GetArrayFromImage(image).astype(np.uint8), grid_from_sitk(image)


def check_segment_labels(labels: np.ndarray, path: str | Path) -> np.ndarray:
    """``labels`` unless it holds values above the last segment label (then `InputError` naming ``path``)."""
    if labels.size and int(labels.max()) > max(SEGMENTS):
        raise InputError(f"{path} holds values above {max(SEGMENTS)}; it is not an IACSeg label map")
    return labels


def read_report(path: str | Path, hint: str = SEGMENT_HINT) -> dict[str, Any]:
    """``report.json`` as a dict; `InputError` when it is missing, unreadable or not a JSON object."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"the report {path} does not exist; {hint}", parameter="report")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        report = None
    if not isinstance(report, dict):
        raise InputError(f"{path} is not a JSON report; {hint}", parameter="report")
    return report


def report_plane(report: Mapping[str, Any], path: str | Path, hint: str = SEGMENT_HINT) -> MidsagittalPlane:
    """The report's ``midsagittal_plane``; `InputError` naming ``path`` when it has none (or a damaged one)."""
    try:
        plane = report["midsagittal_plane"]
        if not isinstance(plane, Mapping):
            raise TypeError
        return MidsagittalPlane.from_dict(dict(plane))
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{path} has no midsagittal plane; {hint}", parameter="report") from None


def with_report_landmarks(landmarks: dict[str, Landmark], report: Mapping[str, Any]) -> dict[str, Landmark]:
    """``landmarks`` (changed in place) with the slice index and confidence the report records for each."""
    recorded = report.get("landmarks")
    recorded = recorded if isinstance(recorded, Mapping) else {}
    for name, lm in landmarks.items():
        info = recorded.get(name)
        if not isinstance(info, Mapping):
            continue
        if info.get("slice") is not None:
            lm.slice = float(info["slice"])
        if info.get("confidence") is not None:
            lm.confidence = float(info["confidence"])
    return landmarks


def folders_holding(root: str | Path, marker: str) -> dict[str, Path]:
    """``{case name: folder}``: ``root`` itself when it holds the file ``marker``, else its subfolders that do."""
    root = Path(root)
    if (root / marker).is_file():
        return {root.name: root}
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and (p / marker).is_file()}


def result_folders(root: str | Path) -> dict[str, Path]:
    """The output folders in ``root`` (``root`` itself when it is one; else its subfolders, e.g. a batch)."""
    return folders_holding(root, LABELS_FILE)


@dataclass(frozen=True)
class ResultFolder:
    """An engine output folder: the paths of its contract files and their content read on demand.

    ``hint`` ends every refusal (what the user should do). Build with `ResultFolder.open` to check the folder
    and its required files first.
    """

    folder: Path
    hint: str = SEGMENT_HINT

    @classmethod
    def open(cls, folder: str | Path, hint: str = SEGMENT_HINT, absent_hint: str | None = None) -> "ResultFolder":
        """`InputError` unless ``folder`` exists (else ending with ``absent_hint``, default ``hint``) and holds
        every required file (`REQUIRED_FILES`)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"the result folder {folder} does not exist; {absent_hint or hint}")
        missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
        if missing:
            raise InputError(f"the result folder {folder} lacks {', '.join(missing)}; {hint}")
        return cls(folder, hint)

    @property
    def labels_path(self) -> Path:
        return self.folder / LABELS_FILE

    @property
    def segmentation_path(self) -> Path:
        return self.folder / SEGMENTATION_FILE

    @property
    def landmarks_path(self) -> Path:
        return self.folder / LANDMARKS_FILE

    @property
    def report_path(self) -> Path:
        return self.folder / REPORT_JSON

    @property
    def report_csv_path(self) -> Path:
        return self.folder / REPORT_CSV

    @property
    def files(self) -> dict[str, Path]:
        """``{contract file name: path}`` of the files Slicer and people open (not ``report.csv``)."""
        return {name: self.folder / name for name in (LABELS_FILE, SEGMENTATION_FILE, LANDMARKS_FILE, REPORT_JSON)}

    @cached_property
    def report(self) -> dict[str, Any]:
        """``report.json`` (read once)."""
        return read_report(self.report_path, self.hint)

    def read_label_image(self) -> Any:
        """``calcifications.nii.gz`` as a SimpleITK image (for resampling)."""
        return read_label_image(self.labels_path)

    def read_labels(self) -> tuple[np.ndarray, Grid]:
        """``calcifications.nii.gz`` → ``(uint8 [k, j, i] 0..8, Grid)``; `InputError` for values above 8."""
        labels, grid = read_label_map(self.labels_path)
        return check_segment_labels(labels, self.labels_path), grid

    def read_landmarks(self, required: Iterable[str] = LANDMARKS) -> dict[str, Landmark]:
        """``landmarks.mrk.json`` with the slice index and confidence recorded in the report."""
        from .markups import read_landmarks

        return with_report_landmarks(read_landmarks(self.landmarks_path, required=required), self.report)

    def plane(self) -> MidsagittalPlane:
        """The report's midsagittal plane (`InputError` when the report has none)."""
        return report_plane(self.report, self.report_path, self.hint)

    def load(self, need_plane: bool = False) -> "LoadedResult":
        """Report, label map, landmarks and, with ``need_plane``, the midsagittal plane (else None)."""
        report = self.report
        labels, grid = self.read_labels()
        landmarks = self.read_landmarks()
        plane = self.plane() if need_plane else None
        return LoadedResult(self, labels, grid, landmarks, report, plane)


@dataclass
class LoadedResult:
    """What an output folder holds, read: labels ``[k, j, i]`` uint8 0..8 on ``grid`` (LPS), the six landmarks
    (LPS mm), the report and its midsagittal plane (None unless it was asked for)."""

    source: ResultFolder
    labels: np.ndarray
    grid: Grid
    landmarks: dict[str, Landmark]
    report: dict[str, Any]
    plane: MidsagittalPlane | None = None

    @property
    def folder(self) -> Path:
        return self.source.folder

    @property
    def files(self) -> dict[str, Path]:
        return self.source.files


def load_result_folder(folder: str | Path, hint: str = SEGMENT_HINT, need_plane: bool = False) -> LoadedResult:
    """`ResultFolder.open` then `ResultFolder.load`: everything an output folder holds, checked."""
    return ResultFolder.open(folder, hint).load(need_plane)
