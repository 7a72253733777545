"""Corrections store: versions never overwrite, status, ledger, ids that cannot escape, verify, de-identification,
subjects and splits, and the ``iacseg store`` command line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from store_fixtures import (MODELS, SMALL_GRID, small_case, small_hu, small_labels, small_landmarks,
                            write_engine_output)

from iacseg import __version__
from iacseg.cli.main import main
from iacseg.core.contracts import LANDMARKS
from iacseg.core.errors import InputError
from iacseg.outputs.markups import read_landmarks
from iacseg.outputs.result_folder import read_label_map
from iacseg.store import CorrectionStore
from iacseg.store.layout import split_of_subject, subject_hash


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _moved(landmarks, name: str, dz: float):
    out = {n: lm for n, lm in landmarks.items()}
    lm = landmarks[name]
    out[name] = type(lm)(name, lm.z_mm + dz, (lm.position[0], lm.position[1], lm.z_mm + dz))
    return out


@pytest.fixture
def store(tmp_path) -> CorrectionStore:
    return CorrectionStore.init(tmp_path / "store")


@pytest.fixture
def small(tmp_path) -> tuple[Path, Path]:
    return small_case(tmp_path / "input")


@pytest.fixture(scope="module")
def phantom_input(tmp_path_factory) -> tuple[Path, Path, object]:
    """A 5 mm synthetic head CT as NIfTI with its truth written as an engine output folder."""
    from iacseg.io.writers import write_image
    from iacseg.phantom import make_phantom

    folder = tmp_path_factory.mktemp("phantom")
    ph = make_phantom(3, slice_mm=5.0, matrix=96)
    ct = write_image(folder / "ct.nii.gz", np.rint(ph.ct.hu).astype(np.int16), ph.ct.grid)
    out = write_engine_output(folder / "out", ph.labels, ph.ct.grid, ph.landmarks, input_path=str(ct))
    return ct, out, ph


def test_round_trip_keeps_every_version_and_records_every_edit(tmp_path, phantom_input):
    ct, out, ph = phantom_input
    store = CorrectionStore.init(tmp_path / "store")
    case_id = store.add_case(ct, out, case_id="head01")
    assert read_label_map(store.labels_path(case_id))[0].tolist() == ph.labels.tolist()

    # Dr A moves the left petrolingual landmark up 5 mm and moves lesion voxels from L_petrous (2) to 3
    moved = _moved(ph.landmarks, "L_petrolingual", 5.0)
    corrected = ph.labels.copy()
    corrected[corrected == 2] = 3
    edits = [{"kind": "landmark_moved", "reader": "Dr A", "time": "2025-01-01T10:00:00+00:00",
              "name": "L_petrolingual", "from_z_mm": ph.landmarks["L_petrolingual"].z_mm,
              "to_z_mm": moved["L_petrolingual"].z_mm, "from_slice": 3, "to_slice": 4},
             {"kind": "lesion_reassigned", "reader": "Dr A", "time": "2025-01-01T10:01:00+00:00",
              "lesion": 1, "from_segment": "L_petrous", "to_segment": "L_cavernous"}]
    assert store.add_correction(case_id, "Dr A", corrected, moved, edits, note="first pass") == 1
    first = store.labels_path(case_id, ("Dr A", 1)).parent
    before = {p.name: _sha(p) for p in first.iterdir()}
    deleted = corrected.copy()
    deleted[deleted == 3] = 0
    assert store.add_correction(case_id, "Dr A", deleted, moved,
                                [{"kind": "lesion_deleted", "lesion": 1, "from_segment": "L_cavernous"}]) == 2
    assert store.add_correction(case_id, "Dr B", ph.labels, ph.landmarks, []) == 1

    assert {p.name: _sha(p) for p in first.iterdir()} == before  # version 1 untouched by version 2
    info = store.case(case_id)
    assert info.corrections == {"Dr A": [1, 2], "Dr B": [1]} and info.status == "corrected"
    assert read_label_map(store.labels_path(case_id, ("Dr A", 1)))[0].tolist() == corrected.tolist()
    assert read_label_map(store.labels_path(case_id, ("dr_a", 2)))[0].tolist() == deleted.tolist()
    assert store.labels_path(case_id, "latest") == store.labels_path(case_id, ("Dr B", 1))
    back = read_landmarks(store.landmarks_path(case_id, ("Dr A", 1)))
    assert back["L_petrolingual"].z_mm == pytest.approx(moved["L_petrolingual"].z_mm)
    assert read_landmarks(store.landmarks_path(case_id))["L_petrolingual"].z_mm == \
        pytest.approx(ph.landmarks["L_petrolingual"].z_mm)

    kinds = [e["kind"] for e in store.ledger()]
    assert kinds == ["store_created", "case_added", "correction_saved", "landmark_moved", "lesion_reassigned",
                     "correction_saved", "lesion_deleted", "correction_saved"]
    for e in store.ledger()[1:]:
        assert e["engine_version"] == __version__ and e["time"].endswith("+00:00")
        assert [(m["name"], m["version"], m["sha256"]) for m in e["models"]] == \
            [(m["name"], m["version"], m["sha256"]) for m in MODELS]
    landmark_entry = store.ledger()[3]
    assert landmark_entry["reader"] == "Dr A" and landmark_entry["details"]["name"] == "L_petrolingual"
    assert landmark_entry["details"]["to_z_mm"] - landmark_entry["details"]["from_z_mm"] == pytest.approx(5.0)
    assert store.ledger()[4]["details"]["to_segment"] == "L_cavernous"
    saved = json.loads((first / "correction.json").read_text())
    assert saved["reader"] == "Dr A" and saved["version"] == 1 and saved["edit_count"] == 2
    assert len((first / "edits.jsonl").read_text().splitlines()) == 2
    report = store.verify()
    assert report.ok and not report.warnings and report.files_checked == 5 + 3 * 4 + 1


def test_status_needs_a_correction_to_approve_and_records_which(store, small):
    case_id = store.add_case(*small, case_id="c1")
    assert store.case(case_id).status == "todo"
    with pytest.raises(InputError, match="no saved correction"):
        store.set_status(case_id, "approved", "Chief")
    store.set_status(case_id, "in_review", "Chief")
    assert store.case(case_id).status == "in_review"
    for reader in ("Dr A", "Dr A", "Dr B"):
        store.add_correction(case_id, reader, small_labels(1), small_landmarks(), [])
    assert store.case(case_id).status == "corrected"
    store.set_status(case_id, "approved", "Chief")
    assert store.case(case_id).approved == ("Dr B", 1)  # default: the newest correction
    store.set_status(case_id, "approved", "Chief", approved=("Dr A", 1))
    assert store.case(case_id).approved == ("Dr A", 1)
    assert store.labels_path(case_id, "approved") == store.labels_path(case_id, ("Dr A", 1))
    with pytest.raises(InputError, match="no correction version 9"):
        store.set_status(case_id, "approved", "Chief", approved=("Dr A", 9))
    with pytest.raises(InputError, match="not one of"):
        store.set_status(case_id, "done", "Chief")
    store.add_correction(case_id, "Dr C", small_labels(2), small_landmarks(), [])  # a new save re-opens it
    assert (store.case(case_id).status, store.case(case_id).approved) == ("corrected", None)
    with pytest.raises(InputError, match="not approved"):
        store.labels_path(case_id, "approved")
    store.set_status(case_id, "todo", "Chief")
    assert store.case(case_id).status == "todo"
    changes = [e["details"]["to"] for e in store.ledger() if e["kind"] == "status_changed"]
    assert changes == ["in_review", "approved", "approved", "todo"]


def test_list_and_show(store, tmp_path):
    for n in range(3):
        store.add_case(*small_case(tmp_path / f"in{n}", seed=n), case_id=f"case{n}")
    store.add_correction("case1", "Dr A", small_labels(), small_landmarks(), [], note="clear case")
    assert [c.case_id for c in store.cases()] == ["case0", "case1", "case2"]
    shown = store.show("case1")
    assert shown["status"] == "corrected" and shown["split"] in ("train", "val", "test")
    assert shown["corrections"][0]["reader"] == "Dr A" and shown["corrections"][0]["note"] == "clear case"
    assert [e["kind"] for e in shown["ledger"]] == ["case_added", "correction_saved"]
    assert shown["grid"]["shape"] == list(SMALL_GRID.shape) and shown["source_kind"] == "nifti"
    with pytest.raises(InputError, match="no case nope"):
        store.show("nope")


@pytest.mark.parametrize("bad", ["../../etc", "/etc", "a/b", "..", "", ".x", "a" * 65, "a b", "c1\n"])
def test_ids_that_could_escape_are_refused(store, small, tmp_path, bad):
    with pytest.raises(InputError, match="not allowed"):
        store.add_case(*small, case_id=bad)
    with pytest.raises(InputError):
        store.case(bad)
    with pytest.raises(InputError):
        store.labels_path(bad)
    assert not any((store.root / "cases").iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input", "store"]


def test_cli_refuses_a_bad_id_in_one_line(store, small, capsys):
    code = main(["store", "add", str(store.root), "--image", str(small[0]), "--engine-output", str(small[1]),
                 "--case-id", "../../etc"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "not allowed" in err
    assert main(["store", "show", str(store.root), "/etc"]) == 2


def test_symlinked_case_folder_pointing_outside_is_refused(store, small, tmp_path):
    store.add_case(*small, case_id="c1")
    outside = tmp_path / "elsewhere"
    (store.root / "cases" / "c1").rename(outside)
    (store.root / "cases" / "c1").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InputError, match="outside the store"):
        store.add_correction("c1", "Dr A", small_labels(), small_landmarks(), [])
    with pytest.raises(InputError, match="outside the store"):
        store.image_path("c1")
    assert not (outside / "corrections").exists()
    report = store.verify()
    assert not report.ok and any("symbolic link" in p for p in report.problems)


def test_verify_finds_a_changed_and_a_missing_file(store, small, capsys):
    store.add_case(*small, case_id="c1")
    store.add_correction("c1", "Dr A", small_labels(), small_landmarks(), [])
    assert main(["store", "verify", str(store.root)]) == 0
    landmarks = store.landmarks_path("c1", ("Dr A", 1))
    data = bytearray(landmarks.read_bytes())
    data[len(data) // 2] ^= 0x01
    landmarks.write_bytes(bytes(data))
    store.labels_path("c1").unlink()
    report = store.verify()
    assert not report.ok
    assert sorted(report.problems) == [
        "changed: cases/c1/corrections/dr_a/v001/landmarks.mrk.json (its sha256 differs from the ledger's)",
        "missing: cases/c1/original/calcifications.nii.gz (recorded in the ledger)"]
    capsys.readouterr()
    assert main(["store", "verify", str(store.root)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("problem: ") for line in lines) == 2


def test_leftovers_of_an_interrupted_save_are_warnings_and_skipped(store, small):
    store.add_case(*small, case_id="c1")
    store.add_correction("c1", "Dr A", small_labels(), small_landmarks(), [])
    # a crash after the folder was published but before its ledger line: v002 exists, unrecorded
    orphan = store.root / "cases/c1/corrections/dr_a/v002"
    orphan.mkdir()
    (orphan / "calcifications.nii.gz").write_bytes(b"half")
    report = store.verify()
    assert report.ok and report.warnings == ["not in the ledger: cases/c1/corrections/dr_a/v002/calcifications.nii.gz "
                                             "(from an interrupted save; kept, not used)"]
    assert store.add_correction("c1", "Dr A", small_labels(), small_landmarks(), []) == 3
    assert (orphan / "calcifications.nii.gz").read_bytes() == b"half"
    assert store.case("c1").corrections == {"Dr A": [1, 3]}


def test_corrections_are_checked_before_anything_is_written(store, small):
    store.add_case(*small, case_id="c1")
    with pytest.raises(InputError, match="shape"):
        store.add_correction("c1", "Dr A", np.zeros((3, 3, 3), np.uint8), small_landmarks(), [])
    with pytest.raises(InputError, match="0..8"):
        store.add_correction("c1", "Dr A", small_labels() + 9, small_landmarks(), [])
    partial = {n: lm for n, lm in small_landmarks().items() if n != LANDMARKS[0]}
    with pytest.raises(InputError, match=LANDMARKS[0]):
        store.add_correction("c1", "Dr A", small_labels(), partial, [])
    with pytest.raises(InputError, match="edit kind"):
        store.add_correction("c1", "Dr A", small_labels(), small_landmarks(), [{"kind": "erased"}])
    with pytest.raises(InputError, match="reader name"):
        store.add_correction("c1", "  ", small_labels(), small_landmarks(), [])
    store.add_correction("c1", "Dr A", small_labels(), small_landmarks(), [])
    with pytest.raises(InputError, match="already used by reader 'Dr A'"):
        store.add_correction("c1", "dr_a", small_labels(), small_landmarks(), [])
    assert store.case("c1").corrections == {"Dr A": [1]} and store.verify().warnings == []


def test_add_case_refuses_mismatched_inputs_and_taken_ids(store, small, tmp_path):
    store.add_case(*small, case_id="c1")
    with pytest.raises(InputError, match="already exists"):
        store.add_case(*small, case_id="c1")
    other = write_engine_output(tmp_path / "other", np.zeros((4, 5, 6), np.uint8),
                                type(SMALL_GRID)((4, 5, 6), (1, 1, 1), (0, 0, 0)), small_landmarks())
    with pytest.raises(InputError, match="not on this CT's grid"):
        store.add_case(small[0], other)
    with pytest.raises(InputError, match="lacks calcifications.nii.gz"):
        store.add_case(small[0], tmp_path)
    with pytest.raises(InputError, match="not an IACSeg corrections store"):
        CorrectionStore.open(tmp_path)
    with pytest.raises(InputError, match="a store already"):
        CorrectionStore.init(store.root)
    assert [c.case_id for c in store.cases()] == ["c1"] and store.verify().ok


IDENTIFIERS = {"PatientName": "Quixfeld^Marguerite", "PatientID": "MRN4471923", "PatientBirthDate": "19510317",
               "InstitutionName": "Saint Elsewhere Hospital"}


def _dicom_case(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A DICOM series with identifiers in a folder named after the patient, and its engine output."""
    import pydicom

    from iacseg.io import read_ct, write_ct_series
    from iacseg.io.identity import IDENTITY_KEY

    g = SMALL_GRID
    folder = tmp_path / "Quixfeld_MRN4471923" / "series"
    positions = np.asarray(g.origin) + np.arange(g.shape[0])[:, None] * g.spacing[2] * np.array([0.0, 0.0, 1.0])
    for path in write_ct_series(folder, small_hu(), positions, (1, 0, 0), (0, 1, 0), (g.spacing[1], g.spacing[0]),
                                slice_thickness_mm=2.0):
        ds = pydicom.dcmread(path)
        for keyword, value in IDENTIFIERS.items():
            setattr(ds, keyword, value)
        ds.save_as(path)
        uids = {"SeriesInstanceUID": str(ds.SeriesInstanceUID), "StudyInstanceUID": str(ds.StudyInstanceUID)}
    vol = read_ct(folder)
    out = write_engine_output(tmp_path / "out", small_labels(), vol.grid, small_landmarks(), input_path=str(folder),
                              warnings=[f"series {uids['SeriesInstanceUID']} in {folder} had 1 localizer"],
                              acquisition={**{k: v for k, v in vol.metadata.items() if k != IDENTITY_KEY},
                                           "patient": IDENTIFIERS["PatientName"]})
    return folder, out, uids


def _store_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_dicom_identifiers_never_enter_the_store(store, tmp_path):
    folder, out, uids = _dicom_case(tmp_path)
    case_id = store.add_case(folder, out)
    assert case_id.startswith("c") and len(case_id) == 12
    secrets = [*IDENTIFIERS.values(), "Quixfeld", "Marguerite", *uids.values()]
    for rel, data in _store_bytes(store.root).items():
        for secret in secrets:
            assert secret.encode() not in data and secret.upper().encode() not in data, (rel, secret)
    show = store.show(case_id)
    assert show["source_kind"] == "dicom" and "identifiers" not in show
    assert show["subject"] == subject_hash(json.loads((store.root / "store.json").read_text())["salt"], "MRN4471923")
    report = json.loads((store.root / f"cases/{case_id}/original/report.json").read_text())
    assert report["input"] is None and report["warnings"] == ["series <removed> in <removed> had 1 localizer"]
    assert report["acquisition"]["slice_thickness_mm"] == 2.0 and "patient" not in report["acquisition"]


def test_keep_identifiers_keeps_them_in_case_json_only(store, tmp_path, capsys):
    folder, out, _ = _dicom_case(tmp_path)
    assert main(["store", "add", str(store.root), "--image", str(folder), "--engine-output", str(out),
                 "--case-id", "kept", "--keep-identifiers"]) == 0
    assert capsys.readouterr().out.strip() == "kept"
    case_json = json.loads((store.root / "cases/kept/case.json").read_text())
    assert {k: case_json["identifiers"][k] for k in IDENTIFIERS} == IDENTIFIERS
    for rel, data in _store_bytes(store.root).items():
        if rel != "cases/kept/case.json":
            assert b"Quixfeld" not in data and b"MRN4471923" not in data, rel


def test_one_patient_is_one_subject_and_one_split(store, tmp_path):
    folder, out, _ = _dicom_case(tmp_path)
    a = store.add_case(folder, out, case_id="scan1")
    b = store.add_case(folder, out, case_id="scan2")
    c = store.add_case(*small_case(tmp_path / "n"), case_id="scan3", subject="MRN4471923")
    d = store.add_case(*small_case(tmp_path / "m"), case_id="scan4")
    subjects = [store.case(x).subject for x in (a, b, c, d)]
    assert subjects[0] == subjects[1] == subjects[2] != subjects[3]
    assert len({store.split_of(x) for x in (a, b, c)}) == 1
    assert all("MRN4471923" not in json.dumps(e) for e in store.ledger())


def test_split_is_the_salted_hash_of_the_subject_and_follows_the_fractions():
    salt = "0f" * 16
    subject = subject_hash(salt, "patient-7")
    u = int(hashlib.sha256((salt + ":split:" + subject).encode()).hexdigest()[:8], 16) / 2 ** 32
    fractions = {"train": 0.7, "val": 0.15, "test": 0.15}
    expected = "train" if u < 0.7 else "val" if u < 0.85 else "test"
    assert split_of_subject(salt, subject, fractions) == expected
    splits = [split_of_subject(salt, subject_hash(salt, f"p{n}"), fractions) for n in range(3000)]
    assert splits.count("train") / 3000 == pytest.approx(0.7, abs=0.03)
    assert splits.count("test") / 3000 == pytest.approx(0.15, abs=0.03)


def test_cli_init_add_status_list_show_verify(tmp_path, small, capsys):
    root = str(tmp_path / "s")
    assert main(["store", "init", root]) == 0
    assert main(["store", "init", root]) == 2
    capsys.readouterr()
    assert main(["store", "add", root, "--image", str(small[0]), "--engine-output", str(small[1])]) == 0
    case_id = capsys.readouterr().out.strip()
    store = CorrectionStore.open(root)
    store.add_correction(case_id, "Dr A", small_labels(), small_landmarks(), [])
    store.add_correction(case_id, "Dr A", small_labels(3), small_landmarks(), [])
    assert main(["store", "status", root, case_id, "approved", "--reader", "Chief", "--approve", "Dr A:1"]) == 0
    assert main(["store", "status", root, case_id, "approved", "--reader", "Chief", "--approve", "Dr A"]) == 2
    capsys.readouterr()
    assert main(["store", "list", root, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["case_id"] == case_id and row["status"] == "approved" and row["approved"] == ["Dr A", 1]
    assert row["corrections"] == {"Dr A": [1, 2]}
    assert main(["store", "list", root]) == 0
    assert "Dr A:v1" in capsys.readouterr().out
    assert main(["store", "show", root, case_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["approved"] == ["Dr A", 1]
    assert main(["store", "show", root, case_id]) == 0
    assert "correction Dr A v2" in capsys.readouterr().out
    assert main(["store", "verify", root]) == 0
    assert capsys.readouterr().out.startswith("ok: 14 files match the ledger")
    assert main(["store", "list", str(tmp_path)]) == 2
