"""De-identification by allow-list: nothing of a DICOM header but known-safe facts reaches what IACSeg writes.

A phantom DICOM series is given short, unusual and free-text identities (a two-letter name, an apostrophe and
accents, a name in the series description, a private tag, file names carrying the name) and segmented; then the
result goes into the corrections store. No text that IACSeg writes may hold any of those strings."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from iacseg.cli.main import main
from iacseg.core.contracts import REPORT_CSV, REPORT_JSON
from iacseg.io.identity import IDENTITY_KEY, identity_strings, safe_acquisition, scrub_identity

# (keyword, value) written into every slice; the forbidden words are what must never appear in any output.
IDENTITY = {
    "PatientName": "NG^LI",
    "PatientID": "ZQ-4471923",
    "OtherPatientIDs": "77-ALT-3310",
    "PatientBirthDate": "19510317",
    "AccessionNumber": "ACC98765",
    "InstitutionName": "Klinikum Wörthsee",
    "ReferringPhysicianName": "O'Brien^Zoë",
    "OperatorsName": "Xu^Bo",
    "SeriesDescription": "CT HEAD NG LI MRN12345 DOE JANE",
    "StudyDescription": "Kopf nativ fuer Herrn Li",
    "ProtocolName": "Schaedel Quixfeld",
    "ImageComments": "pt DOE JANE called 555-0199",
}
FORBIDDEN = ["NG", "LI", "ZQ", "4471923", "77-ALT-3310", "19510317", "ACC98765", "Wörthsee", "O'Brien", "Zoë",
             "Xu", "Bo", "MRN12345", "DOE", "JANE", "Quixfeld", "555-0199", "Herrn"]
PRIVATE_NAME = "Vandersloot"  # in a private tag: vendors put names where no list of keywords would look


def _found(text: str) -> list[str]:
    """The forbidden words present in ``text`` as whole words (``_`` separates words), case-insensitive."""
    words = FORBIDDEN + [PRIVATE_NAME]
    return [w for w in words if re.search(r"(?<![^\W_])" + re.escape(w) + r"(?![^\W_])", text, re.IGNORECASE)]


def _personalise(folder: Path) -> None:
    """Write the identity into every slice, name the files after the patient, and add a second, smaller series
    (so the reader warns about the series it ignored) with the same identity."""
    import pydicom

    files = sorted(p for p in folder.iterdir() if p.is_file())
    for n, path in enumerate(files):
        ds = pydicom.dcmread(path)
        for keyword, value in IDENTITY.items():
            setattr(ds, keyword, value)
        ds.add_new(0x00091010, "LO", "IACSEG TEST")  # private creator
        ds.add_new(0x00091001, "LO", f"{PRIVATE_NAME}^Henk")
        ds.save_as(folder / f"NG_LI_{n:04d}.dcm")
        path.unlink()
        if n % 4 == 0 and n < 24:  # an ignored series: 6 slices, other UID
            ds.SeriesInstanceUID = str(ds.SeriesInstanceUID).rsplit(".", 1)[0] + ".9"
            ds.SOPInstanceUID = str(ds.SOPInstanceUID).rsplit(".", 1)[0] + f".9{n}"
            ds.save_as(folder / f"DOE_JANE_scout_{n:04d}.dcm")


@pytest.fixture(scope="module")
def personal_case(tmp_path_factory) -> tuple[Path, Path]:
    from iacseg.phantom import generate_cases

    root = tmp_path_factory.mktemp("deid")
    (case,) = generate_cases(root / "truth", 70103, 1, slice_mm=2.5, dicom=True)
    _personalise(case / "dicom")
    out = root / "result"
    assert main(["segment", str(case / "dicom"), "-o", str(out), "--progress", "none", "--device", "cpu"]) == 0
    return case / "dicom", out


def test_the_header_really_carries_the_identity(personal_case):
    """Guard for the tests below: the reader sees the identity (so its absence from outputs means something)."""
    from iacseg.io import read_ct

    vol = read_ct(personal_case[0])
    strings = vol.metadata[IDENTITY_KEY]
    for word in ("NG^LI", "NG", "LI", "DOE JANE", "Klinikum Wörthsee", "Vandersloot^Henk", "Vandersloot"):
        assert any(s.lower() == word.lower() or word.lower() in s.lower() for s in strings), word
    assert any("other CT series" in w for w in vol.metadata["warnings"])


def test_no_identity_in_anything_segment_writes(personal_case):
    _, out = personal_case
    texts = {p.name: p.read_text(errors="replace") for p in out.iterdir()
             if p.suffix in (".json", ".csv") or p.name.endswith(".seg.nrrd")}
    texts["seg.nrrd header"] = texts.pop(next(n for n in texts if n.endswith(".seg.nrrd")))[:20000]
    assert REPORT_JSON in texts and REPORT_CSV in texts
    for name, text in texts.items():
        assert _found(text) == [], name
    report = json.loads(texts[REPORT_JSON])
    assert set(report["acquisition"]) <= {"modality", "source_format", "series_uid", "slice_thickness_mm",
                                          "gantry_tilt_deg", "kernel", "manufacturer", "n_slices_read",
                                          "corrections", "warnings", "preprocess"}
    assert report["acquisition"]["modality"] == "CT" and report["acquisition"]["slice_thickness_mm"] == 2.5
    # the warning about the ignored series is still there, without its description
    assert any("other CT series" in w for w in report["warnings"])


def test_no_identity_in_the_store(personal_case, tmp_path):
    folder, out = personal_case
    store = tmp_path / "store"
    assert main(["store", "init", str(store)]) == 0
    assert main(["store", "add", str(store), "--image", str(folder), "--engine-output", str(out)]) == 0
    texts = [p for p in store.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl", ".csv")]
    assert any(p.name == "case.json" for p in texts) and any(p.name == "report.json" for p in texts)
    for path in texts:
        assert _found(path.read_text(errors="replace")) == [], path


def test_batch_summary_holds_no_identity(personal_case, tmp_path):
    folder, _ = personal_case
    cases = tmp_path / "cases"
    shutil.copytree(folder, cases / "case1")
    out = tmp_path / "out"
    assert main(["batch", str(cases), "-o", str(out), "--progress", "none", "--device", "cpu"]) == 0
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert rows[0]["status"] == "done" and rows[0]["warnings"]
    assert _found(" ".join(f"{k} {v}" for k, v in rows[0].items() if k != "input")) == []


def test_identity_strings_take_names_ids_dates_and_free_text_but_not_codes():
    import pydicom

    ds = pydicom.Dataset()
    ds.PatientName, ds.PatientID, ds.StudyDate = "NG^LI", "AB-12", "20240101"
    ds.Modality, ds.ConvolutionKernel, ds.Manufacturer, ds.BodyPartExamined = "CT", "H30s", "SIEMENS", "HEAD"
    ds.StudyID, ds.SeriesNumber, ds.SliceThickness = "1", 3, "2.5"
    seq_item = pydicom.Dataset()
    seq_item.PersonName = "Hidden^Nurse"
    ds.RequestAttributesSequence = [seq_item]
    strings = identity_strings(ds)
    for expected in ("NG^LI", "NG", "LI", "AB-12", "AB", "20240101", "Hidden^Nurse", "Hidden", "Nurse"):
        assert expected in strings
    for code in ("CT", "H30s", "SIEMENS", "HEAD", "1", "3", "2.5", "12"):
        assert code not in strings


def test_short_names_are_cut_as_whole_words_only():
    strings = ["NG^LI", "NG", "LI"]
    assert scrub_identity("file NG_LI_0003.dcm of ng li", strings) == "file <removed>_<removed>_0003.dcm of " \
        "<removed> <removed>"
    text = "missing slices between 2 single images; PNG written"
    assert scrub_identity(text, strings) == text


def test_acquisition_keeps_only_checked_allow_listed_facts():
    metadata = {"modality": "CT", "slice_thickness_mm": float("nan"), "kernel": "FC30 <'DOE'>",
                "manufacturer": "GE MEDICAL SYSTEMS", "series_description": "DOE JANE", "patient": "DOE^JANE",
                "n_slices_read": 12.5, "series_uid": "DOE JANE", "warnings": ["read 3 files of DOE"],
                "preprocess": {"oblique_resampled": True, "note": "DOE", "source_grid": {"spacing": [1, 1, 2]}},
                IDENTITY_KEY: ["DOE"]}
    safe = safe_acquisition(metadata)
    assert safe == {"modality": "CT", "slice_thickness_mm": None, "kernel": "FC30 <removed>",
                    "manufacturer": "GE MEDICAL SYSTEMS", "n_slices_read": None, "series_uid": None,
                    "warnings": ["read 3 files of <removed>"],
                    "preprocess": {"oblique_resampled": True, "source_grid": {"spacing": [1, 1, 2]}}}
    assert IDENTITY_KEY not in safe


def test_report_input_path_and_warnings_lose_the_patient_but_keep_the_rest():
    from iacseg.measure import measure_case
    from iacseg.outputs import build_report
    from iacseg.core.grid import Grid

    grid = Grid((4, 8, 8), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    measures = measure_case(np.zeros(grid.shape, np.uint8), np.zeros(grid.shape, np.float32), grid)
    acquisition = {"modality": "CT", "warnings": ["slice NG_LI_0003.dcm could not be read"],
                   IDENTITY_KEY: ["NG^LI", "NG", "LI"]}
    report = build_report(measures=measures, acquisition=acquisition, input_path="/data/NG_LI/dicom",
                          warnings=["slice NG_LI_0003.dcm could not be read; 2 missing slices"])
    assert report["input"] == "/data/<removed>_<removed>/dicom"
    assert report["warnings"] == ["slice <removed>_<removed>_0003.dcm could not be read; 2 missing slices"]
    assert report["acquisition"]["warnings"] == ["slice <removed>_<removed>_0003.dcm could not be read"]
    assert IDENTITY_KEY not in json.dumps(report)
