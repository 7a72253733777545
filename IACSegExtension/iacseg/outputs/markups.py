"""Landmarks as Slicer markups JSON (``.mrk.json``): a Fiducial node in LPS with one labelled point per landmark."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..contracts import LANDMARKS
from ..errors import InputError
from .atomic import write_text_atomic

MARKUPS_SCHEMA = "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#"


@dataclass
class Landmark:
    """One landmark: an axial plane at world height ``z_mm`` (LPS, superior positive), shown as a point.

    ``position`` is the LPS point (mm) placed on its side at the plane's height; ``slice`` is the slice index
    on the grid the landmark was found on (may be None); ``confidence`` is the model's peak probability
    (1.0 for truth or a reader's correction).
    """

    name: str
    z_mm: float
    position: tuple[float, float, float]
    slice: float | None = None
    confidence: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "z_mm": float(self.z_mm), "position": [float(v) for v in self.position],
                "slice": None if self.slice is None else float(self.slice), "confidence": float(self.confidence),
                **self.extra}


def landmark_heights(landmarks: Iterable[Landmark] | dict[str, Landmark]) -> dict[str, float]:
    """``{name: z_mm}`` for a collection of landmarks."""
    items = landmarks.values() if isinstance(landmarks, dict) else landmarks
    return {lm.name: float(lm.z_mm) for lm in items}


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


def read_landmarks(path: str | Path, required: Iterable[str] = LANDMARKS) -> dict[str, Landmark]:
    """Read a Slicer markups file into ``{name: Landmark}`` (LPS; RAS files are converted).

    ``z_mm`` is the point's LPS z. Raises `InputError` when the file is unreadable or a required label is missing.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        markup = doc["markups"][0]
        points = markup["controlPoints"]
    except FileNotFoundError:
        raise InputError(f"landmark file {path} does not exist") from None
    except (ValueError, KeyError, IndexError, TypeError):
        raise InputError(f"{path} is not a Slicer markups (.mrk.json) file with control points") from None
    flip = np.array([-1.0, -1.0, 1.0]) if str(markup.get("coordinateSystem", "LPS")).upper() == "RAS" else np.ones(3)
    out: dict[str, Landmark] = {}
    for p in points:
        label = p.get("label", "")
        if p.get("positionStatus", "defined") != "defined" or "position" not in p:
            continue
        pos = tuple(float(v) for v in np.asarray(p["position"], dtype=float) * flip)
        out[label] = Landmark(label, pos[2], pos)  # type: ignore[arg-type]
    missing = [n for n in required if n not in out]
    if missing:
        raise InputError(f"{path} lacks the landmark(s) {', '.join(missing)}; place all six ({', '.join(LANDMARKS)})")
    return out
