"""``report.json`` and ``report.csv``: the measures of one case with everything needed to trust and reproduce them."""

from __future__ import annotations

import csv
import io
import json
import math
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import __version__
from ..core.contracts import LANDMARKS, SEGMENTS
from ..io.identity import IDENTITY_KEY, safe_acquisition, scrub_identity_value
from ..core.files import write_text_atomic
from ..core.landmarks import Landmark

REPORT_SCHEMA_VERSION = 1
#: Report parts made only of our own names and numbers (never scrubbed, so a patient named like a model stays apart).
_OWN_PARTS = ("schema_version", "created", "segments", "total", "risk_group", "lesions", "methods", "landmarks",
              "midsagittal_plane", "grid", "models", "timings_s", "versions")
CSV_COLUMNS = ("segment", "label", "volume_mm3", "agatston", "mass_mg", "lesion_count", "peak_hu", "assessable",
               "coverage_fraction", "qc_status")
_PACKAGES = ("numpy", "scipy", "torch", "monai", "SimpleITK", "pydicom", "slicerio", "pynrrd")


def software_versions() -> dict[str, str | None]:
    """Versions of iacseg, Python and the libraries that shape the result (read from metadata, nothing imported)."""
    versions: dict[str, str | None] = {"iacseg": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def to_jsonable(value: Any) -> Any:
    """Plain JSON types from numpy scalars/arrays, tuples, Paths and dataclass-like objects; NaN/inf → None."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        return to_jsonable(value.to_dict())
    return value


def _model_record(kind: str, model: Any) -> dict[str, Any]:
    get = model.get if isinstance(model, Mapping) else lambda key, default=None: getattr(model, key, default)
    return {"kind": kind, "name": get("name"), "version": get("version"), "sha256": get("sha256")}


def build_report(*, measures: Mapping[str, Any], landmarks: Mapping[str, Landmark] | None = None,
                 plane: Any = None, models: Mapping[str, Any] | None = None,
                 timings: Mapping[str, float] | None = None, warnings: list[str] | None = None,
                 acquisition: Mapping[str, Any] | None = None, grid: Any = None,
                 input_path: str | Path | None = None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Assemble ``report.json`` content.

    ``measures``: `iacseg.measure.measure_case` output. ``landmarks``: ``{name: Landmark}`` (z_mm LPS, slice,
    confidence, position LPS mm). ``plane``: `MidsagittalPlane` or its dict. ``models``: ``{kind: model}`` where
    model has ``name``, ``version``, ``sha256`` (attributes or keys). ``timings``: seconds per stage.
    ``acquisition``: the input CT's metadata (slice thickness, tilt, kernel, corrections…), of which only the
    allow-listed facts are kept (`iacseg.io.identity.safe_acquisition`). ``grid``: the output grid (`Grid` or dict).

    De-identification: the identity strings of the CT's DICOM header (names, IDs, dates, free text; kept in the
    metadata by the reader) are cut out of every text of the report — the input path, warnings, corrections, QC
    reasons — so neither DICOM free text nor a patient's name in a file name reaches it.
    """
    ordered = [n for n in LANDMARKS if landmarks and n in landmarks] + \
              [n for n in (landmarks or {}) if n not in LANDMARKS]
    report = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": None if input_path is None else str(input_path),
        "segments": measures["segments"],
        "total": measures["total"],
        "risk_group": measures.get("risk_group"),
        "lesions": measures.get("lesions", []),
        "methods": measures.get("methods", {}),
        "landmarks": {n: landmarks[n].to_dict() for n in ordered} if landmarks else {},
        "midsagittal_plane": plane,
        "grid": grid,
        "models": [_model_record(kind, m) for kind, m in (models or {}).items()],
        "timings_s": dict(timings or {}),
        "warnings": list(warnings or []),
        "acquisition": safe_acquisition(acquisition),
        "versions": software_versions(),
    }
    if extra:
        report.update(extra)
    identity = (acquisition or {}).get(IDENTITY_KEY) or ()
    return {k: v if k in _OWN_PARTS else scrub_identity_value(v, identity) for k, v in to_jsonable(report).items()}


def report_json_text(report: Mapping[str, Any]) -> str:
    return json.dumps(to_jsonable(report), indent=2, allow_nan=False) + "\n"


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # full precision: volumes must equal the label map's exactly
    return value


def _assessable_cell(row: Mapping[str, Any]) -> str:
    if "assessable" not in row:
        return ""
    return "yes" if row["assessable"] else "not assessable"


def report_csv_text(report: Mapping[str, Any]) -> str:
    """CSV: one row per segment (contract order) and a final ``total`` row; columns `CSV_COLUMNS`.

    A segment outside the scanned range has empty measures and ``not assessable`` in the ``assessable`` column;
    the total row says ``incomplete`` there when some segment is not assessable. ``qc_status`` (every row) is the
    case's quality-control status."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    qc = (report.get("qc") or {}).get("status", "")
    measures = CSV_COLUMNS[2:-3]
    for value, name in sorted(SEGMENTS.items()):
        row = report["segments"][name]
        writer.writerow([name, value] + [_cell(row.get(c)) for c in measures]
                        + [_assessable_cell(row), _cell(row.get("coverage_fraction")), qc])
    total = report["total"]
    complete = "" if "complete" not in total else ("yes" if total["complete"] else "incomplete")
    writer.writerow(["total", ""] + [_cell(total.get(c)) for c in measures] + [complete, "", qc])
    return buffer.getvalue()


def write_report(folder: str | Path, report: Mapping[str, Any], json_name: str = "report.json",
                 csv_name: str = "report.csv") -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.csv`` into ``folder`` (each atomically)."""
    folder = Path(folder)
    return (write_text_atomic(folder / json_name, report_json_text(report)),
            write_text_atomic(folder / csv_name, report_csv_text(report)))
