"""Bringing a case into the store: read the CT and the engine's output folder, check they belong together,
de-identify, and fill a temporary case folder (published into the store by `CorrectionStore.add_case`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import __version__
from ..core.contracts import LABELS_FILE, LANDMARKS, LANDMARKS_FILE, REPORT_JSON
from ..core.errors import InputError
from ..io.identity import IDENTITY_KEY
from ..io.volume import CTVolume
from ..outputs.result_folder import LoadedResult, load_result_folder
from .deid import acquisition_summary, read_dicom_identifiers, scrub_report, secret_strings
from .layout import CASE_FILE, IMAGE_FILE, ORIGINAL_DIR
from .ledger import utc_now
from ..core.files import write_text_atomic, sha256_of

SEGMENT_OUTPUT = "IACSeg's segmentation of this CT"


@dataclass
class ImageInput:
    """The CT to store (HU on its grid), what it was read from, and its DICOM identifiers (never stored unless
    asked: only to hash the PatientID)."""

    volume: CTVolume
    source_kind: str
    identifiers: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    identity: list[str] = field(default_factory=list)  # the header's identity strings, cut as whole words


def load_image(image: str | Path | CTVolume, allow_gaps: bool = False) -> ImageInput:
    """A CT path (DICOM folder/file, NIfTI, NRRD, MHA) or an in-memory `CTVolume` (e.g. from Slicer);
    ``allow_gaps`` fills missing DICOM slices by interpolation (as ``iacseg segment --allow-gaps``)."""
    if isinstance(image, CTVolume):
        return ImageInput(image, str(image.metadata.get("source_format") or "volume"),
                          identity=list(image.metadata.get(IDENTITY_KEY) or ()))
    from ..io import read_ct

    path = Path(image)
    volume = read_ct(path, allow_gaps=allow_gaps)
    kind = str(volume.metadata.get("source_format") or "image")
    identifiers = read_dicom_identifiers(path, volume.metadata.get("series_uid")) if kind == "dicom" else {}
    # file names alone ("dicom", "ct.nii.gz") are too generic to cut out; whole paths are removed anyway
    return ImageInput(volume, kind, identifiers, secret_strings(identifiers, [str(path.absolute())]),
                      list(volume.metadata.get(IDENTITY_KEY) or ()))


def read_engine_output(folder: str | Path) -> LoadedResult:
    """The engine's results for one CT (`iacseg.outputs.result_folder`): label map 0..8 on its grid, six
    landmarks (with the report's slice index and confidence) and the report. `InputError` when a file is
    missing, unreadable, or the label map holds values other than 0..8."""
    return load_result_folder(folder, hint=f"give the folder written by {SEGMENT_OUTPUT}")


def check_same_grid(image: ImageInput, engine: LoadedResult, folder: str | Path) -> None:
    """`InputError` unless the engine's label map lies on the CT's grid (it was made from this CT)."""
    if not image.volume.grid.same_geometry(engine.grid):
        raise InputError(f"the label map in {folder} is not on this CT's grid (shape {engine.grid.shape} vs "
                         f"{image.volume.grid.shape}); give the CT that {SEGMENT_OUTPUT} read",
                         parameter="image")


def report_models(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``[{"kind", "name", "version", "sha256"}, …]`` of the models named in an engine report."""
    return [{k: m.get(k) for k in ("kind", "name", "version", "sha256")}
            for m in report.get("models") or [] if isinstance(m, Mapping)]


def case_document(case_id: str, subject: str, image: ImageInput, engine: LoadedResult,
                  keep_identifiers: bool) -> dict[str, Any]:
    """The content of ``case.json`` (written once): grid, de-identified acquisition, models, engine version,
    source kind, and the DICOM identifiers only when ``keep_identifiers``."""
    versions = engine.report.get("versions") or {}
    doc: dict[str, Any] = {
        "case_id": case_id, "subject": subject, "created": utc_now(), "grid": image.volume.grid.to_dict(),
        "acquisition": acquisition_summary(image.volume.metadata, image.secrets, image.identity),
        "models": report_models(engine.report),
        "engine_version": str(versions.get("iacseg") or __version__),
        "source_kind": image.source_kind,
    }
    if keep_identifiers:
        doc["identifiers"] = dict(image.identifiers)
    return doc


def fill_case_folder(folder: Path, doc: Mapping[str, Any], image: ImageInput, engine: LoadedResult) -> dict[str, str]:
    """Write ``image.nii.gz`` (HU int16), ``original/{calcifications.nii.gz, landmarks.mrk.json, report.json}``
    and ``case.json`` into ``folder``; returns ``{path relative to folder: sha256}``."""
    from ..io.writers import write_image
    from ..outputs.markups import write_landmarks
    from ..outputs.report import report_json_text

    hu = np.clip(np.rint(image.volume.hu), -32768, 32767).astype(np.int16)
    write_image(folder / IMAGE_FILE, hu, image.volume.grid)
    original = folder / ORIGINAL_DIR
    original.mkdir()
    write_image(original / LABELS_FILE, engine.labels.astype(np.uint8), image.volume.grid)
    named = [engine.landmarks[n] for n in LANDMARKS]
    write_landmarks(original / LANDMARKS_FILE, named, description="IACSeg landmarks (engine output)")
    write_text_atomic(original / REPORT_JSON, report_json_text(scrub_report(engine.report, image.secrets, image.identity)))
    write_text_atomic(folder / CASE_FILE, json.dumps(doc, indent=2) + "\n")
    names = [IMAGE_FILE, f"{ORIGINAL_DIR}/{LABELS_FILE}", f"{ORIGINAL_DIR}/{LANDMARKS_FILE}",
             f"{ORIGINAL_DIR}/{REPORT_JSON}", CASE_FILE]
    return {name: sha256_of(folder / name) for name in names}
