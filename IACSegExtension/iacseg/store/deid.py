"""De-identification of what enters the store: which acquisition facts are kept, scrubbing ``report.json``, and
reading a DICOM series' identifiers (only to hash the PatientID, or to keep them with ``--keep-identifiers``).

What is kept of a CT's metadata is an allow-list (`KEPT_ACQUISITION`, checked per kind by
`iacseg.io.identity.safe_acquisition`): modality, format, slice thickness (mm), gantry tilt (degrees), kernel,
manufacturer, slice count, and the reader's correction/warning sentences with UIDs, paths, the patient's
identifiers and every identity string of the DICOM header (names, IDs, dates, free text — short ones as whole
words) cut out. Of the engine's report only known parts are kept (`KEPT_REPORT`). Images enter the store as
NIfTI, which has no identifiers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..io.identity import safe_acquisition, scrub_identity

#: Acquisition metadata copied into case.json and the stored report (everything else is dropped).
KEPT_ACQUISITION: tuple[str, ...] = ("modality", "source_format", "slice_thickness_mm", "gantry_tilt_deg", "kernel",
                                     "manufacturer", "n_slices_read", "corrections", "warnings")
#: Parts of the engine's report copied into the store (anything else a report may hold is dropped).
KEPT_REPORT: tuple[str, ...] = (
    "schema_version", "created", "input", "segments", "total", "risk_group", "lesions", "methods", "landmarks",
    "midsagittal_plane", "grid", "models", "timings_s", "warnings", "acquisition", "versions", "threshold",
    "threshold_source", "roi_kji", "outside_ica_voxels", "device", "qc", "landmark_prior")
#: DICOM attributes that identify a patient, a visit or a site (kept only with ``keep_identifiers``).
IDENTIFIER_KEYWORDS: tuple[str, ...] = (
    "PatientName", "PatientID", "OtherPatientIDs", "PatientBirthDate", "PatientSex", "PatientAge",
    "AccessionNumber", "StudyID", "StudyDate", "StudyTime", "StudyInstanceUID", "SeriesInstanceUID",
    "InstitutionName", "InstitutionAddress", "ReferringPhysicianName", "PerformingPhysicianName",
    "OperatorsName", "StationName")
#: Of those, the values cut out of any text that enters the store (dates/sex/age are too short or generic).
SCRUBBED_KEYWORDS: tuple[str, ...] = (
    "PatientName", "PatientID", "OtherPatientIDs", "PatientBirthDate", "AccessionNumber", "StudyInstanceUID",
    "SeriesInstanceUID", "InstitutionName", "InstitutionAddress", "ReferringPhysicianName",
    "PerformingPhysicianName", "OperatorsName", "StationName")

_UID = re.compile(r"(?<![\d.])[0-2](?:\.\d+){3,}(?![\d.])")
_POSIX_PATH = re.compile(r"(?<![\w.~-])/[^\s'\",;:()\[\]]+/[^\s'\",;:()\[\]]+")
_WINDOWS_PATH = re.compile(r"[A-Za-z]:\\[^\s'\",;]+")
_MIN_SECRET = 3


def read_dicom_identifiers(path: str | Path, series_uid: str | None = None) -> dict[str, str]:
    """The identifying attributes (`IDENTIFIER_KEYWORDS`) of the first DICOM file of ``path`` (a file, or a
    folder searched recursively in sorted order), preferring a file of series ``series_uid`` when given.

    Values are strings (PersonName as ``FAMILY^GIVEN``, multi-values joined by ``\\``); absent ones are left
    out. ``{}`` when no DICOM file is found. Used to hash the PatientID and, only with ``keep_identifiers``,
    to keep them in ``case.json``; nothing here is written to the store otherwise.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    from ..io.dicom_series import list_files

    path = Path(path)
    files = [path] if path.is_file() else list_files(path, recursive=True)
    first: dict[str, str] | None = None
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, TypeError, AttributeError):
            continue
        found = {}
        for keyword in IDENTIFIER_KEYWORDS:
            value = ds.get(keyword)
            if value is None or value == "":
                continue
            text = "\\".join(str(v) for v in value) if isinstance(value, (list, tuple)) or \
                type(value).__name__ == "MultiValue" else str(value)
            if text.strip():
                found[keyword] = text.strip()
        if series_uid is None or found.get("SeriesInstanceUID") == series_uid:
            return found
        if first is None:
            first = found
    return first or {}


def secret_strings(identifiers: Mapping[str, str], extra: Iterable[str] = ()) -> list[str]:
    """Strings to cut out of stored text: the scrubbed identifiers (and each part of a name or multi-value),
    plus ``extra`` (e.g. the input path and its file name); each at least 3 characters, longest first."""
    found: set[str] = set()
    for keyword in SCRUBBED_KEYWORDS:
        value = identifiers.get(keyword)
        if not value:
            continue
        found.add(value)
        found.update(p for p in re.split(r"[\\^]", value) if p)
    found.update(str(e) for e in extra if e)
    return sorted((s.strip() for s in found if len(s.strip()) >= _MIN_SECRET), key=len, reverse=True)


def scrub_text(text: str, secrets: Sequence[str] = (), identity: Sequence[str] = ()) -> str:
    """``text`` with each of ``secrets`` (anywhere, case-insensitive), each of ``identity`` (the header's identity
    strings, as whole words), DICOM UIDs and absolute file paths replaced by ``<removed>``, ``<uid>``, ``<path>``."""
    for secret in secrets:
        text = re.sub(re.escape(secret), "<removed>", text, flags=re.IGNORECASE)
    text = scrub_identity(text, identity)
    text = _UID.sub("<uid>", text)
    text = _WINDOWS_PATH.sub("<path>", text)
    return _POSIX_PATH.sub("<path>", text)


def scrub_value(value: Any, secrets: Sequence[str] = (), identity: Sequence[str] = ()) -> Any:
    """Every string inside ``value`` (dicts, lists; keys too) passed through `scrub_text`; other values as is."""
    if isinstance(value, str):
        return scrub_text(value, secrets, identity)
    if isinstance(value, Mapping):
        return {scrub_text(str(k), secrets, identity): scrub_value(v, secrets, identity) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_value(v, secrets, identity) for v in value]
    return value


def acquisition_summary(metadata: Mapping[str, Any], secrets: Sequence[str] = (),
                        identity: Sequence[str] = ()) -> dict[str, Any]:
    """The allow-listed acquisition facts of a CT's metadata (`KEPT_ACQUISITION`, each checked for its kind),
    scrubbed: slice thickness (mm), gantry tilt (degrees), kernel, manufacturer, … — never UIDs, paths, names,
    dates or DICOM free text."""
    kept = safe_acquisition(metadata, [k for k in KEPT_ACQUISITION if k in metadata])
    return scrub_value(kept, secrets, identity)


def scrub_report(report: Mapping[str, Any], secrets: Sequence[str] = (),
                 identity: Sequence[str] = ()) -> dict[str, Any]:
    """The engine's ``report.json`` ready for the store: only its known parts (`KEPT_REPORT`), the input path
    removed (``"input": null``), the acquisition reduced to `KEPT_ACQUISITION`, and every string scrubbed;
    measures, landmarks (LPS mm), the midsagittal plane, models and versions are kept unchanged."""
    out = {k: v for k, v in report.items() if k in KEPT_REPORT}
    if "input" in out:
        out["input"] = None
    if isinstance(out.get("acquisition"), Mapping):
        out["acquisition"] = acquisition_summary(out["acquisition"], secrets, identity)
    return scrub_value(out, secrets, identity)
