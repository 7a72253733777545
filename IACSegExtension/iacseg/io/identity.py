"""What of a CT's own metadata may leave the reader, by allow-list.

Two rules, used by every writer (``report.json``/``report.csv``, the batch summary, the corrections store):

1. **Acquisition facts by allow-list** (`SAFE_ACQUISITION`, `safe_acquisition`): modality, source format, series
   UID, slice thickness, gantry tilt, kernel, manufacturer, slice count, the reader's own correction and warning
   sentences, and the resampling facts (numbers only). Each value is checked for its kind: numbers must be finite,
   codes (kernel, vendor) keep only letters, digits and ``._+-/\\()`` and a bounded length. Anything else in a
   volume's metadata is never written. DICOM free text (descriptions, comments, protocol names) is never read
   into the metadata in the first place.
2. **Identity strings cut out of every written text** (`identity_strings`, `scrub_identity`): the values of the
   header's person names, IDs, dates, times, ages and free-text elements (all of them, not a list of known
   keywords — vendors put names in private and unusual fields), each whole, and for names and IDs each part of
   two characters or more. They are matched case-insensitively as whole words (``_``, ``^``, spaces and
   punctuation separate words), so a short name such as ``NG^LI`` is cut from ``"NG_LI_0003.dcm"`` but not from
   ``"missing slices"``. They are kept in the volume's metadata under `IDENTITY_KEY`, which no writer copies.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping, Sequence

#: Metadata key holding the header's identity strings (read by writers to scrub text; never written itself).
IDENTITY_KEY = "identity_strings"
REMOVED = "<removed>"

#: DICOM value representations whose values identify or describe a person, visit or site (free text included).
_TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC", "DA", "DT", "TM", "AS", "AE", "UR"})
#: Of those, the ones whose parts are cut as well (a family name alone, one segment of an ID).
_PART_VRS = frozenset({"PN"})
_PART_KEYWORDS = frozenset({"PatientID", "OtherPatientIDs", "AccessionNumber", "IssuerOfPatientID",
                            "StudyID", "MedicalRecordLocator"})
#: Coded/technical elements that are not identity (kept out of the cut list, so sentences keep words like "CT").
_NOT_IDENTITY = frozenset({"Modality", "Manufacturer", "ManufacturerModelName", "ConvolutionKernel", "ImageType",
                           "PatientPosition", "BodyPartExamined", "SpecificCharacterSet", "PhotometricInterpretation",
                           "RescaleType", "FilterType", "RotationDirection", "PositionReferenceIndicator",
                           "SoftwareVersions", "SOPClassUID", "TransferSyntaxUID"})
_MIN_PART = 2
_MIN_NUMBER = 5  # purely numeric values shorter than this ("1", "120") are too generic to cut
_MAX_ELEMENTS = 5000


def _texts(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("latin-1", "replace")
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [t for v in value for t in _texts(v)]
    return [str(value)]


def _keep(text: str) -> bool:
    text = text.strip()
    if len(text) < _MIN_PART:
        return False
    return not (text.replace(".", "").replace("-", "").isdigit() and len(text) < _MIN_NUMBER)


class IdentityStrings:
    """The header's identity strings as the reader keeps them in a volume's metadata: iterable by the writers
    that cut them out, but never shown (``repr`` withholds them) and never serialised (JSON refuses it)."""

    __slots__ = ("_strings",)

    def __init__(self, strings: Iterable[str] = ()) -> None:
        self._strings = tuple(strings)

    def __iter__(self):
        return iter(self._strings)

    def __len__(self) -> int:
        return len(self._strings)

    def __repr__(self) -> str:
        return f"<{len(self._strings)} identity strings withheld>"


def identity_strings(dataset: Any) -> list[str]:
    """The strings of a pydicom dataset (recursing into sequences) that may identify a person, visit or site.

    Every element whose VR is a name, date, time, age, ID or free text (LO/SH/ST/LT/UT/UC), except a few coded
    technical ones (modality, kernel, vendor…); whole values, plus the parts of names and IDs split at
    ``^``, ``\\``, spaces and punctuation. Longest first; at most a few thousand elements are visited.
    """
    found: set[str] = set()
    stack = [dataset]
    visited = 0
    while stack and visited < _MAX_ELEMENTS:
        ds = stack.pop()
        try:
            elements = list(ds)
        except Exception:  # noqa: BLE001 — a damaged dataset yields what could be read
            continue
        for element in elements:
            visited += 1
            vr = str(getattr(element, "VR", "") or "")
            if vr == "SQ":
                stack.extend(item for item in (element.value or []))
                continue
            keyword = str(getattr(element, "keyword", "") or "")
            if vr not in _TEXT_VRS or keyword in _NOT_IDENTITY:
                continue
            try:
                values = _texts(element.value)
            except Exception:  # noqa: BLE001
                continue
            for text in values:
                text = " ".join(text.replace("\0", " ").split())
                if _keep(text):
                    found.add(text)
                if vr in _PART_VRS or keyword in _PART_KEYWORDS:
                    found.update(p for p in re.split(r"[\^\\=\s,;:/._-]+", text) if _keep(p))
    return sorted(found, key=lambda s: (-len(s), s))


def _pattern(strings: Sequence[str]) -> re.Pattern[str] | None:
    words = [re.escape(s) for s in strings if s]
    if not words:
        return None
    # a "word" boundary where "_" separates words too: no letter or digit directly before or after
    return re.compile(r"(?<![^\W_])(?:" + "|".join(words) + r")(?![^\W_])", re.IGNORECASE)


def scrub_identity(text: str, strings: Sequence[str]) -> str:
    """``text`` with each of ``strings`` (whole words, case-insensitive) replaced by ``<removed>``."""
    pattern = _pattern(strings)
    return text if pattern is None else pattern.sub(REMOVED, text)


def scrub_identity_value(value: Any, strings: Sequence[str]) -> Any:
    """Every string inside ``value`` (dicts — keys too — and lists) passed through `scrub_identity`."""
    pattern = _pattern(strings)
    if pattern is None:
        return value

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return pattern.sub(REMOVED, v)
        if isinstance(v, Mapping):
            return {walk(str(k)): walk(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x) for x in v]
        return v

    return walk(value)


_CODE = re.compile(r"[^A-Za-z0-9 ._+\-/\\()]")
_UID = re.compile(r"^[0-2](?:\.[0-9]+)+$")


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _count(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number >= 0 and number == int(number) else None


def _code(limit: int):
    def clean(value: Any) -> str | None:
        if not isinstance(value, str):
            return None
        text = " ".join(_CODE.sub("", value).split())[:limit]
        return text or None
    return clean


def _uid(value: Any) -> str | None:
    return value if isinstance(value, str) and len(value) <= 64 and _UID.match(value) else None


def _sentences(value: Any) -> list[str] | None:
    if not isinstance(value, (list, tuple)):
        return None
    return [" ".join(str(v).split())[:600] for v in value if isinstance(v, str) and v.strip()]


def _preprocess(value: Any) -> dict[str, Any] | None:
    """Resampling facts: booleans, numbers and grids (dicts/lists of numbers) only."""
    def plain(v: Any) -> Any:
        if isinstance(v, bool):
            return v
        if isinstance(v, (int, float)):
            return _number(v)
        if isinstance(v, Mapping):
            return {str(k): p for k, x in v.items() if re.fullmatch(r"[a-z_]{1,40}", str(k))
                    and (p := plain(x)) is not None}
        if isinstance(v, (list, tuple)):
            items = [plain(x) for x in v]
            return items if all(x is not None for x in items) else None
        return None
    return plain(value) if isinstance(value, Mapping) else None


#: The acquisition facts a report may carry, each with the check its value must pass (else it is dropped).
SAFE_ACQUISITION = {
    "modality": _code(16), "source_format": _code(16), "series_uid": _uid,
    "slice_thickness_mm": _number, "gantry_tilt_deg": _number, "kernel": _code(32), "manufacturer": _code(64),
    "n_slices_read": _count, "corrections": _sentences, "warnings": _sentences, "preprocess": _preprocess,
}


def safe_acquisition(metadata: Mapping[str, Any] | None, keys: Iterable[str] | None = None) -> dict[str, Any]:
    """The allow-listed facts of a volume's metadata (`SAFE_ACQUISITION`, or only ``keys`` of it), each checked
    for its kind, with the header's identity strings cut out of the sentences. Unknown keys are dropped."""
    metadata = metadata or {}
    wanted = SAFE_ACQUISITION if keys is None else {k: SAFE_ACQUISITION[k] for k in keys}
    out: dict[str, Any] = {}
    for key, check in wanted.items():
        if key in metadata:
            value = check(metadata[key]) if metadata[key] is not None else None
            out[key] = value
    return scrub_identity_value(out, metadata.get(IDENTITY_KEY) or ())
