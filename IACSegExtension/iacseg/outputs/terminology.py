"""Standard codes, colours and the Slicer resource files (colour table, terminology context) of the 8 segments.

Everything is generated from `iacseg.contracts` so the seg.nrrd, ``Resources/IACSegColors.ctbl`` and
``Resources/IACSeg-terminology.json`` can never disagree. Regenerate the resource files with::

    python -m iacseg.outputs.terminology Resources/

Codes (SNOMED CT): category 49755003 "Morphologically Altered Structure", type 18115005 "Calcification",
anatomic region 86117002 "Internal carotid artery" with laterality 7771000 "Left" / 24028007 "Right". The ICA
part (cervical … supraclinoid) is a type modifier in the private coding scheme ``99IACSEG`` (DICOM reserves
designators starting with "99" for private schemes), its code value being the contract segment name.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..contracts import SEGMENTS, SEGMENT_COLORS
from .atomic import write_text_atomic

CONTEXT_NAME = "Segmentation category and type - IACSeg ICA calcification"
ANATOMIC_CONTEXT_NAME = "Anatomic codes - DICOM master list"
COLOR_TABLE_FILE = "IACSegColors.ctbl"
TERMINOLOGY_FILE = "IACSeg-terminology.json"
PRIVATE_SCHEME = "99IACSEG"
TERMINOLOGY_SCHEMA = "https://raw.githubusercontent.com/qiicr/dcmqi/master/doc/schemas/segment-context-schema.json#"

CATEGORY = ("SCT", "49755003", "Morphologically Altered Structure")
TYPE = ("SCT", "18115005", "Calcification")
ANATOMIC_REGION = ("SCT", "86117002", "Internal carotid artery")
LATERALITY = {"L": ("SCT", "7771000", "Left"), "R": ("SCT", "24028007", "Right")}
_SIDE_WORD = {"L": "left", "R": "right"}


def segment_description(value: int) -> str:
    """Human-readable description, e.g. 'left cervical ICA calcification'."""
    side, part = SEGMENTS[value].split("_", 1)
    return f"{_SIDE_WORD[side]} {part} ICA calcification"


def rgb255(value: int) -> tuple[int, int, int]:
    """Contract colour of a label value as 0..255 integers."""
    return tuple(int(round(c * 255)) for c in SEGMENT_COLORS[value])  # type: ignore[return-value]


def segment_terminology(value: int) -> dict[str, Any]:
    """slicerio terminology dict of a label value (category, type, type modifier, anatomic region, laterality)."""
    side = SEGMENTS[value].split("_", 1)[0]
    return {
        "contextName": CONTEXT_NAME,
        "category": list(CATEGORY),
        "type": list(TYPE),
        "typeModifier": [PRIVATE_SCHEME, SEGMENTS[value], segment_description(value)],
        "anatomicContextName": ANATOMIC_CONTEXT_NAME,
        "anatomicRegion": list(ANATOMIC_REGION),
        "anatomicRegionModifier": list(LATERALITY[side]),
    }


def color_table_text() -> str:
    """Slicer colour table (.ctbl): ``value name r g b a`` with 0..255 components; 0 is the background."""
    lines = ["# IACSeg ICA calcification segments (generated from iacseg.contracts; do not edit)",
             f"# Number of colors: {len(SEGMENTS) + 1}", "0 background 0 0 0 0"]
    for value, name in sorted(SEGMENTS.items()):
        r, g, b = rgb255(value)
        lines.append(f"{value} {name} {r} {g} {b} 255")
    return "\n".join(lines) + "\n"


def _code(code: tuple[str, str, str]) -> dict[str, str]:
    return {"CodingSchemeDesignator": code[0], "CodeValue": code[1], "CodeMeaning": code[2]}


def terminology_document() -> dict[str, Any]:
    """Slicer terminology context (segment-context-schema JSON) with one type modifier per segment."""
    modifiers = []
    for value, name in sorted(SEGMENTS.items()):
        modifiers.append({**_code((PRIVATE_SCHEME, name, segment_description(value))),
                          "3dSlicerLabel": name, "3dSlicerIntegerLabel": value,
                          "recommendedDisplayRGBValue": list(rgb255(value))})
    calcification = {**_code(TYPE), "SNOMEDCTConceptID": TYPE[1], "3dSlicerLabel": "calcification",
                     "recommendedDisplayRGBValue": [241, 214, 145], "Modifier": modifiers}
    category = {**_code(CATEGORY), "SNOMEDCTConceptID": CATEGORY[1], "showAnatomy": True, "Type": [calcification]}
    return {"SegmentationCategoryTypeContextName": CONTEXT_NAME, "@schema": TERMINOLOGY_SCHEMA,
            "SegmentationCodes": {"Category": [category]}}


def terminology_text() -> str:
    return json.dumps(terminology_document(), indent=2) + "\n"


def write_resources(folder: str | Path) -> list[Path]:
    """(Re)write the colour table and terminology files into ``folder`` (atomic); returns their paths."""
    folder = Path(folder)
    return [write_text_atomic(folder / COLOR_TABLE_FILE, color_table_text()),
            write_text_atomic(folder / TERMINOLOGY_FILE, terminology_text())]


if __name__ == "__main__":
    for written in write_resources(sys.argv[1] if len(sys.argv) > 1 else "Resources"):
        print(written)
