"""Reading an engine output folder (DESIGN.md, "Contracts") into what the module shows.

Label map → segment names, descriptions and colours; landmarks; a measures table (one row per segment and
a total row); a lesion table whose rows carry the lesion centroid (LPS and RAS mm) for jump-to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from iacseg.anatomy import MidsagittalPlane
from iacseg.contracts import (LABELS_FILE, LANDMARKS, LANDMARKS_FILE, REPORT_JSON, SEGMENT_COLORS, SEGMENTATION_FILE,
                              SEGMENTS)
from iacseg.errors import InputError
from iacseg.io.volume import Grid
from iacseg.outputs.markups import Landmark, read_landmarks

REQUIRED_FILES = (LABELS_FILE, LANDMARKS_FILE, REPORT_JSON)
_SIDE_WORD = {"L": "left", "R": "right"}


@dataclass(frozen=True)
class SegmentInfo:
    """One ICA segment: label ``value`` (1..8), contract ``name``, readable ``description``, ``color`` RGB 0..1."""

    value: int
    name: str
    description: str
    color: tuple[float, float, float]


def segment_infos() -> list[SegmentInfo]:
    """The 8 segments in label order, named and coloured by the contract (left reds, right blues)."""
    infos = []
    for value, name in sorted(SEGMENTS.items()):
        side, part = name.split("_", 1)
        infos.append(SegmentInfo(value, name, f"{_SIDE_WORD[side]} {part} ICA calcification",
                                 tuple(float(c) for c in SEGMENT_COLORS[value])))  # type: ignore[arg-type]
    return infos


def lps_to_ras(point: Any) -> tuple[float, float, float]:
    """LPS mm → RAS mm (Slicer's world): x and y change sign."""
    x, y, z = (float(v) for v in point)
    return (-x, -y, z)


@dataclass(frozen=True)
class MeasureRow:
    """A row of the measures table: volume mm³, Agatston-style score, mass mg, lesion count, peak HU."""

    segment: str
    volume_mm3: float
    agatston: float
    mass_mg: float
    lesion_count: int
    peak_hu: float | None

    def cells(self) -> list[str]:
        peak = "" if self.peak_hu is None else f"{self.peak_hu:.0f}"
        return [self.segment, f"{self.volume_mm3:.1f}", f"{self.agatston:.1f}", f"{self.mass_mg:.2f}",
                str(self.lesion_count), peak]


MEASURE_HEADERS = ("Segment", "Volume (mm³)", "Agatston", "Mass (mg)", "Lesions", "Peak HU")
LESION_HEADERS = ("Lesion", "Segment", "Volume (mm³)", "Peak HU")


def _measure_row(name: str, values: Mapping[str, Any]) -> MeasureRow:
    return MeasureRow(name, float(values.get("volume_mm3") or 0.0), float(values.get("agatston") or 0.0),
                      float(values.get("mass_mg") or 0.0), int(values.get("lesion_count") or 0),
                      None if values.get("peak_hu") is None else float(values["peak_hu"]))


def measure_rows(report: Mapping[str, Any]) -> list[MeasureRow]:
    """Rows for the 8 segments in label order, then ``total``."""
    segments = report.get("segments", {})
    rows = [_measure_row(name, segments.get(name, {})) for _, name in sorted(SEGMENTS.items())]
    rows.append(_measure_row("total", report.get("total", {})))
    return rows


@dataclass(frozen=True)
class LesionRow:
    """A row of the lesion table; ``centroid_lps`` / ``centroid_ras`` in mm for jumping the views."""

    lesion_id: int
    segment: str
    volume_mm3: float
    peak_hu: float
    centroid_lps: tuple[float, float, float]

    @property
    def centroid_ras(self) -> tuple[float, float, float]:
        return lps_to_ras(self.centroid_lps)

    def cells(self) -> list[str]:
        return [str(self.lesion_id), self.segment, f"{self.volume_mm3:.1f}", f"{self.peak_hu:.0f}"]


def lesion_rows(report: Mapping[str, Any]) -> list[LesionRow]:
    """One row per lesion of ``report["lesions"]``, largest first."""
    rows = [LesionRow(int(r["id"]), str(r.get("segment", "")), float(r.get("volume_mm3") or 0.0),
                      float(r.get("peak_hu") or 0.0), tuple(float(v) for v in r["centroid_lps_mm"]))  # type: ignore[arg-type]
            for r in report.get("lesions", [])]
    return sorted(rows, key=lambda r: (-r.volume_mm3, r.lesion_id))


@dataclass
class CaseResult:
    """An engine output folder loaded: labels ``[k, j, i]`` uint8 0..8 on ``grid`` (LPS), landmarks, report."""

    folder: Path
    labels: np.ndarray
    grid: Grid
    landmarks: dict[str, Landmark]
    report: dict[str, Any]
    plane: MidsagittalPlane
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def segmentation_file(self) -> Path:
        return self.folder / SEGMENTATION_FILE

    @property
    def labels_file(self) -> Path:
        return self.folder / LABELS_FILE

    @property
    def landmarks_file(self) -> Path:
        return self.folder / LANDMARKS_FILE


def check_output_folder(folder: str | Path) -> Path:
    """Raise `InputError` unless ``folder`` holds the engine's contract files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"the result folder {folder} does not exist; run Segment first")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise InputError(f"the result folder {folder} lacks {', '.join(missing)}; run Segment again")
    return folder


def load_report(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / REPORT_JSON
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise InputError(f"{path} is not valid JSON; run Segment again") from None


def load_case_result(folder: str | Path) -> CaseResult:
    """Read labels (SimpleITK), landmarks and report of an engine output folder."""
    from iacseg.relabel import read_label_map

    folder = check_output_folder(folder)
    report = load_report(folder)
    labels, grid = read_label_map(folder / LABELS_FILE)
    landmarks = read_landmarks(folder / LANDMARKS_FILE)
    for name, record in report.get("landmarks", {}).items():  # keep slice and confidence from the report
        if name in landmarks:
            landmarks[name].slice = record.get("slice")
            landmarks[name].confidence = float(record.get("confidence", 1.0) or 1.0)
    plane_dict = report.get("midsagittal_plane")
    if not isinstance(plane_dict, Mapping):
        raise InputError(f"{folder / REPORT_JSON} has no midsagittal plane; run Segment again with this IACSeg")
    plane = MidsagittalPlane.from_dict(dict(plane_dict))
    files = {name: folder / name for name in (LABELS_FILE, SEGMENTATION_FILE, LANDMARKS_FILE, REPORT_JSON)}
    return CaseResult(folder, labels, grid, landmarks, report, plane, files)


def landmark_slice(grid: Grid, landmark: Landmark) -> int:
    """Nearest slice index k of ``grid`` to the landmark's point (LPS mm)."""
    k = grid.world_to_index(np.asarray(landmark.position, dtype=float))[2]
    return int(np.clip(np.rint(k), 0, grid.shape[0] - 1))


def ordered_landmarks(landmarks: Mapping[str, Landmark]) -> list[Landmark]:
    """Landmarks in contract order (the 6 names first)."""
    return [landmarks[n] for n in LANDMARKS if n in landmarks] + [lm for n, lm in landmarks.items()
                                                                  if n not in LANDMARKS]
