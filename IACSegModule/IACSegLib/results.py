"""What the module shows of an engine output folder (docs/DESIGN.md, "Contracts"), read by the engine's reader
(`iacseg.outputs.result_folder`, torch-free).

Label map → segment names, descriptions and colours; landmarks; a measures table (one row per segment and
a total row); a lesion table whose rows carry the lesion centroid (LPS and RAS mm) for jump-to; the case's
quality-control status (``report["qc"]``: ok, review or unusable, with reasons). A segment outside the scanned
range is *not assessable*: its row says so instead of numbers. Reports older than QC load as status "unknown".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from iacseg.core.plane import MidsagittalPlane
from iacseg.core.contracts import SEGMENT_COLORS, SEGMENTS
from iacseg.core.grid import Grid
from iacseg.core.landmarks import Landmark
from iacseg.outputs.result_folder import LoadedResult, ResultFolder

RUN_FIRST, RUN_AGAIN = "run Segment first", "run Segment again"
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


NOT_ASSESSABLE = "not assessable"


@dataclass(frozen=True)
class MeasureRow:
    """A row of the measures table: volume mm³, Agatston-style score, mass mg, lesion count, peak HU.

    A segment outside the scanned range is not ``assessable``: no numbers (None), never 0. The total row is
    ``complete`` only when every segment is assessable.
    """

    segment: str
    volume_mm3: float | None
    agatston: float | None
    mass_mg: float | None
    lesion_count: int | None
    peak_hu: float | None
    assessable: bool = True
    complete: bool = True

    def cells(self) -> list[str]:
        name = self.segment if self.complete else f"{self.segment} (incomplete)"
        if not self.assessable:
            return [name, NOT_ASSESSABLE, "–", "–", "–", "–"]
        peak = "" if self.peak_hu is None else f"{self.peak_hu:.0f}"
        return [name, f"{self.volume_mm3:.1f}", f"{self.agatston:.1f}", f"{self.mass_mg:.2f}",
                str(self.lesion_count), peak]


MEASURE_HEADERS = ("Segment", "Volume (mm³)", "Agatston", "Mass (mg)", "Lesions", "Peak HU")
LESION_HEADERS = ("Lesion", "Segment", "Volume (mm³)", "Peak HU")


def _measure_row(name: str, values: Mapping[str, Any], assessable: bool = True) -> MeasureRow:
    complete = values.get("complete", True) is not False
    if not assessable:
        return MeasureRow(name, None, None, None, None, None, assessable=False, complete=complete)
    return MeasureRow(name, float(values.get("volume_mm3") or 0.0), float(values.get("agatston") or 0.0),
                      float(values.get("mass_mg") or 0.0), int(values.get("lesion_count") or 0),
                      None if values.get("peak_hu") is None else float(values["peak_hu"]), complete=complete)


def measure_rows(report: Mapping[str, Any]) -> list[MeasureRow]:
    """Rows for the 8 segments in label order, then ``total``; "not assessable" segments carry no numbers."""
    segments, not_assessable = report.get("segments", {}), read_qc(report).not_assessable
    rows = []
    for _, name in sorted(SEGMENTS.items()):
        values = segments.get(name, {})
        assessable = values.get("assessable", True) is not False and name not in not_assessable
        rows.append(_measure_row(name, values, assessable))
    rows.append(_measure_row("total", report.get("total", {})))
    return rows


QC_UNKNOWN = "unknown"
QC_STATUSES = ("ok", "review", "unusable", QC_UNKNOWN)  # best first; unknown: a report older than QC
QC_TEXT = {"ok": "QC ok: no problem found",
           "review": "QC review: check this case before using its measures",
           "unusable": "QC unusable: do not use these measures",
           QC_UNKNOWN: "QC not reported (a result of an older IACSeg)"}
# green, orange, red, grey: readable on Slicer's light and dark themes
QC_COLORS = {"ok": "#2e7d32", "review": "#ef6c00", "unusable": "#c62828", QC_UNKNOWN: "#757575"}
AUTOMATIC_LANDMARKS = "automatic landmarks"


@dataclass(frozen=True)
class QCReason:
    """Why a case needs review or is unusable: ``code`` (e.g. low_landmark_confidence), ``severity``, ``message``."""

    code: str
    severity: str
    message: str

    @property
    def about_landmarks(self) -> bool:
        return "landmark" in self.code


@dataclass(frozen=True)
class QualityControl:
    """The case-level QC of ``report["qc"]``: ``status`` ok | review | unusable (``unknown`` for older reports),
    ``reasons`` and the segments ``not_assessable`` (outside the scanned range)."""

    status: str = QC_UNKNOWN
    reasons: tuple[QCReason, ...] = ()
    not_assessable: tuple[str, ...] = ()

    @property
    def color(self) -> str:
        return QC_COLORS.get(self.status, QC_COLORS[QC_UNKNOWN])

    def text(self, landmarks_moved: bool = False) -> str:
        """The panel's QC line and one line per reason. After the reader moved landmarks, reasons about landmarks
        still describe the engine's result: they say "automatic landmarks"."""
        lines = [QC_TEXT.get(self.status, f"QC {self.status}")]
        for r in self.reasons:
            lines.append(f"• {AUTOMATIC_LANDMARKS}: {r.message}" if landmarks_moved and r.about_landmarks
                         else f"• {r.message}")
        return "\n".join(lines)

    def tooltip(self, landmarks_moved: bool = False) -> str:
        lines = [f"{r.severity} ({r.code}): {r.message}" for r in self.reasons] or ["no reasons given"]
        if self.not_assessable:
            lines.append(f"{NOT_ASSESSABLE} (outside the scanned range): {', '.join(self.not_assessable)}")
        if landmarks_moved and any(r.about_landmarks for r in self.reasons):
            lines.append(f"The landmark reasons are about the {AUTOMATIC_LANDMARKS}; you moved landmarks since.")
        return "\n".join(lines)


def read_qc(report: Mapping[str, Any]) -> QualityControl:
    """``report["qc"]`` as a `QualityControl`; a report without it (older IACSeg) gives status "unknown"."""
    qc = report.get("qc")
    if not isinstance(qc, Mapping):
        return QualityControl()
    reasons = tuple(QCReason(str(r.get("code", "")), str(r.get("severity", "")), str(r.get("message", "")))
                    if isinstance(r, Mapping) else QCReason("", "", str(r)) for r in qc.get("reasons") or ())
    return QualityControl(str(qc.get("status") or QC_UNKNOWN), reasons, tuple(qc.get("not_assessable") or ()))


def carry_qc(measures: Mapping[str, Any], report: Mapping[str, Any]) -> dict[str, Any]:
    """Measures of corrected labels (`ReviewSession.measures`, no QC of their own) with the QC, the segments'
    assessability and the total's completeness of the engine's ``report`` (what the measures lack)."""
    out = {**measures, "segments": {n: dict(v) for n, v in measures.get("segments", {}).items()},
           "total": dict(measures.get("total", {}))}
    if "qc" in report:
        out.setdefault("qc", report["qc"])
    for name, values in out["segments"].items():
        if "assessable" in report.get("segments", {}).get(name, {}):
            values.setdefault("assessable", report["segments"][name]["assessable"])
    if "complete" in report.get("total", {}):
        out["total"].setdefault("complete", report["total"]["complete"])
    return out


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


@dataclass(frozen=True)
class ResultView:
    """An engine output folder as the module shows it: a thin view over the engine's one reader of output folders
    (`iacseg.outputs.result_folder`) whose midsagittal plane is always there. Labels ``[k, j, i]`` uint8 0..8 on
    ``grid`` (LPS), landmarks, report, plane; the paths Slicer loads."""

    loaded: LoadedResult
    plane: MidsagittalPlane

    @property
    def folder(self) -> Path:
        return self.loaded.folder

    @property
    def labels(self) -> np.ndarray:
        return self.loaded.labels

    @property
    def grid(self) -> Grid:
        return self.loaded.grid

    @property
    def landmarks(self) -> dict[str, Landmark]:
        return self.loaded.landmarks

    @property
    def report(self) -> dict[str, Any]:
        return self.loaded.report

    @property
    def files(self) -> dict[str, Path]:
        return self.loaded.files

    @property
    def segmentation_file(self) -> Path:
        return self.loaded.source.segmentation_path

    @property
    def labels_file(self) -> Path:
        return self.loaded.source.labels_path

    @property
    def landmarks_file(self) -> Path:
        return self.loaded.source.landmarks_path


def load_case_result(folder: str | Path) -> ResultView:
    """Read labels, landmarks, report and plane of an engine output folder; `InputError` saying to run Segment
    (again) when the folder, a file or the plane is missing or damaged."""
    loaded = ResultFolder.open(folder, hint=RUN_AGAIN, absent_hint=RUN_FIRST).load(need_plane=True)
    assert loaded.plane is not None  # need_plane: read or refused
    return ResultView(loaded, loaded.plane)


def landmark_slice(grid: Grid, landmark: Landmark) -> int:
    """Nearest slice index k of ``grid`` to the landmark's point (LPS mm)."""
    k = grid.world_to_index(np.asarray(landmark.position, dtype=float))[2]
    return int(np.clip(np.rint(k), 0, grid.shape[0] - 1))
