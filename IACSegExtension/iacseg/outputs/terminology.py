"""Standard codes, colours and the Slicer resource files (colour table, terminology context) of the 8 segments.

Everything is generated from `iacseg.core.contracts` so the seg.nrrd, ``Resources/IACSegColors.csv`` and
``Resources/IACSeg-terminology.json`` can never disagree. Regenerate the resource files with::

    python -m iacseg.outputs.terminology Resources/

Codes (SNOMED CT): category 49755003 "Morphologically Altered Structure", type 18115005 "Calcification",
anatomic region 86117002 "Internal carotid artery" with laterality 7771000 "Left" / 24028007 "Right". The ICA
part (cervical … supraclinoid) is a type modifier in the private coding scheme ``99IACSEG`` (DICOM reserves
designators starting with "99" for private schemes), its code value being the contract segment name.

The colour table is a Slicer CSV colour table (``.csv``: ``LabelValue,Name,Color_R..A`` and the terminology
columns of ``vtkMRMLColorTableStorageNode``), not a ``.ctbl``: Slicer's ``.ctbl`` reader turns every ``_`` of a
name into a space (``L_cervical`` would load as ``L cervical``), the CSV reader keeps names as written and
carries each label's terminology, so a label map imported with it gets the seg.nrrd's names and codes.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from ..core.contracts import SEGMENTS, SEGMENT_COLORS
from ..core.files import write_text_atomic

CONTEXT_NAME = "Segmentation category and type - IACSeg ICA calcification"
ANATOMIC_CONTEXT_NAME = "Anatomic codes - DICOM master list"
COLOR_TABLE_FILE = "IACSegColors.csv"
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


# Column names of Slicer's CSV colour table (vtkMRMLColorTableStorageNode: LabelValue, Name, Color_R/G/B/A and
# <Entry>_CodingScheme/_CodeValue/_CodeMeaning for Category, Type, TypeModifier, Region, RegionModifier).
COLOR_TABLE_TERMINOLOGY_ENTRIES = ("Category", "Type", "TypeModifier", "Region", "RegionModifier")
COLOR_TABLE_COLUMNS = (["LabelValue", "Name", "Color_R", "Color_G", "Color_B", "Color_A"]
                       + [f"{entry}_{part}" for entry in COLOR_TABLE_TERMINOLOGY_ENTRIES
                          for part in ("CodingScheme", "CodeValue", "CodeMeaning")])


def color_table_text() -> str:
    """Slicer CSV colour table: label value, name (underscores kept), 0..255 RGBA and the terminology of each
    segment (category, type, ICA-part type modifier, region, laterality); 0 is the transparent background."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLOR_TABLE_COLUMNS)
    writer.writerow([0, "background", 0, 0, 0, 0] + [""] * 15)
    for value, name in sorted(SEGMENTS.items()):
        term = segment_terminology(value)
        codes = [term["category"], term["type"], term["typeModifier"], term["anatomicRegion"],
                 term["anatomicRegionModifier"]]
        writer.writerow([value, name, *rgb255(value), 255] + [part for code in codes for part in code])
    return out.getvalue()


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
