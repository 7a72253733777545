"""Landmarks as Slicer markups JSON (``.mrk.json``): a Fiducial node in LPS with one labelled point per landmark."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..core.contracts import LANDMARKS
from ..core.errors import InputError
from ..core.files import write_text_atomic
from ..core.landmarks import Landmark

MARKUPS_SCHEMA = "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#"


def markups_document(landmarks: Iterable[Landmark], description: str = "IACSeg landmarks") -> dict[str, Any]:
    points = []
    for n, lm in enumerate(landmarks):
        points.append({
            "id": str(n + 1),
            "label": lm.name,
            "description": f"axial plane z={lm.z_mm:.2f} mm (LPS)",
            "associatedNodeID": "",
            "position": [float(v) for v in lm.position],
            "orientation": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0],
            "selected": True,
            "locked": False,
            "visibility": True,
            "positionStatus": "defined",
        })
    return {
        "@schema": MARKUPS_SCHEMA,
        "markups": [{
            "type": "Fiducial",
            "coordinateSystem": "LPS",
            "coordinateUnits": "mm",
            "locked": False,
            "fixedNumberOfControlPoints": False,
            "labelFormat": "%N-%d",
            "lastUsedControlPointNumber": len(points),
            "controlPoints": points,
            "measurements": [],
            "display": {"visibility": True, "textScale": 2.5, "glyphScale": 2.0, "color": [0.9, 0.9, 0.1],
                        "selectedColor": [1.0, 0.9, 0.2], "propertiesLabelVisibility": True,
                        "pointLabelsVisibility": True},
            "description": description,
        }],
    }


def write_landmarks(path: str | Path, landmarks: Iterable[Landmark], description: str = "IACSeg landmarks") -> Path:
    """Write ``landmarks`` as a Slicer markups file (atomic)."""
    doc = markups_document(list(landmarks), description)
    return write_text_atomic(path, json.dumps(doc, indent=2))


#: Largest landmark file read (a Slicer markups file with six points is a few kB).
MAX_LANDMARK_FILE_BYTES = 16 << 20
#: Largest coordinate (mm) accepted for a point: anything farther lies outside every scanner.
MAX_POSITION_MM = 1.0e5
_REDO = "place the landmarks again in Slicer and save them (File > Save) as a .mrk.json file"


def _load_markups_json(path: Path) -> Any:
    """The parsed JSON of a landmark file; `InputError` naming the file when it is missing, not a regular file,
    too large, unreadable, not UTF-8 or not JSON."""
    try:
        if not path.exists():
            raise InputError(f"landmark file {path} does not exist; check the path")
        if not path.is_file():
            raise InputError(f"landmark file {path} is not a regular file; give the .mrk.json file saved by Slicer")
        size = path.stat().st_size
        if size > MAX_LANDMARK_FILE_BYTES:
            raise InputError(f"landmark file {path} is {size >> 20} MB, far larger than a landmarks file (a few kB); "
                             f"give the .mrk.json file with the six landmarks")
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InputError(f"landmark file {path} cannot be read ({exc.strerror or exc}); check its permissions") \
            from None
    except UnicodeDecodeError:
        raise InputError(f"landmark file {path} is not a text (JSON) file; {_REDO}") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise InputError(f"landmark file {path} is not valid JSON{where}; {_REDO}") from None


def _control_points(doc: Any, path: Path) -> tuple[list[Any], bool]:
    """``(control points, is RAS)`` of the first markup of a markups document; `InputError` when there are none."""
    if not isinstance(doc, dict):
        what = "a JSON list" if isinstance(doc, list) else "not a JSON object"
        raise InputError(f"landmark file {path} is {what}, not a Slicer markups document; {_REDO}")
    markups = doc.get("markups")
    if not isinstance(markups, list) or not markups or not isinstance(markups[0], dict):
        raise InputError(f"landmark file {path} holds no markups (no \"markups\" list with a point list); {_REDO}")
    points = markups[0].get("controlPoints")
    if not isinstance(points, list):
        raise InputError(f"landmark file {path} has no control points (\"controlPoints\" list); {_REDO}")
    return points, str(markups[0].get("coordinateSystem", "LPS")).upper() == "RAS"


def _shown(text: Any, limit: int = 40) -> str:
    """A label or value for a one-line message: as it is when short and printable, else its repr, shortened."""
    plain = isinstance(text, str) and text.isprintable() and len(text) <= limit
    shown = text if plain else repr(text)
    return shown if len(shown) <= limit else shown[:limit - 1] + "…"


def _point_position(p: dict[str, Any], label: str, path: Path) -> tuple[float, float, float]:
    """The three finite coordinates of a control point; `InputError` naming the landmark otherwise."""
    raw = p.get("position")
    shown, label = _shown(repr(raw)), _shown(label)
    if not (isinstance(raw, list) and len(raw) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw)):
        raise InputError(f"landmark {label} in {path} has the position {shown}; a position is three numbers "
                         f"(mm) — {_REDO}")
    if not all(np.isfinite(float(v)) and abs(float(v)) <= MAX_POSITION_MM for v in raw):
        raise InputError(f"landmark {label} in {path} has the position {shown}, which is not a finite point "
                         f"within {MAX_POSITION_MM:g} mm; {_REDO}")
    return float(raw[0]), float(raw[1]), float(raw[2])


def read_landmarks(path: str | Path, required: Iterable[str] = LANDMARKS) -> dict[str, Landmark]:
    """Read a Slicer markups file into ``{name: Landmark}`` (LPS; RAS files are converted).

    ``z_mm`` is the point's LPS z. Raises `InputError` (one line naming the file and, where it applies, the
    landmark) when the file is missing, too large, not JSON or not a markups document, a point's label is not
    text, a defined point has no position of three finite numbers, a contract landmark is placed twice, or a
    ``required`` label is missing. Points that are not placed (``positionStatus`` other than "defined") are skipped.
    """
    path = Path(path)
    points, ras = _control_points(_load_markups_json(path), path)
    flip = np.array([-1.0, -1.0, 1.0]) if ras else np.ones(3)
    out: dict[str, Landmark] = {}
    for n, p in enumerate(points):
        if not isinstance(p, dict):
            raise InputError(f"control point {n + 1} in landmark file {path} is not a point description; {_REDO}")
        label = p.get("label", "")
        if not isinstance(label, str):
            raise InputError(f"control point {n + 1} in landmark file {path} has the label {_shown(label)}, not a "
                             f"name; name it as one of {', '.join(LANDMARKS)}")
        if p.get("positionStatus", "defined") != "defined" or "position" not in p:
            continue
        pos = tuple(float(v) for v in np.asarray(_point_position(p, label or f"#{n + 1}", path)) * flip)
        if label in out and (label in LANDMARKS or label in required):
            raise InputError(f"landmark {_shown(label)} is placed twice in {path}; delete one of the two points and "
                             f"save the landmarks again")
        out[label] = Landmark(label, pos[2], pos)  # type: ignore[arg-type]
    missing = [n for n in required if n not in out]
    if missing:
        found = [_shown(n, 30) for n in out if n]
        listed = ", ".join(found[:8]) + ("…" if len(found) > 8 else "")
        has = f" (it has {listed})" if found else " (it has no placed point)"
        raise InputError(f"{path} lacks the landmark(s) {', '.join(missing)}{has}; place all six "
                         f"({', '.join(LANDMARKS)}) with exactly these names")
    return out
