"""Export of a corrections store for training (iacseg.store.export): nnU-Net v2 layout, fixed splits, landmark
list, atomic and never mixed with an earlier export, no patient identifier in any exported byte."""

from __future__ import annotations

import functools
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from store_fixtures import write_engine_output

from iacseg.core.contracts import LANDMARKS, SEGMENT_IDS
from iacseg.core.errors import InputError
from iacseg.core.grid import Grid
from iacseg.core.landmarks import Landmark
from iacseg.phantom import Phantom, make_phantom, write_phantom
from iacseg.store import CorrectionStore
from iacseg.store import export as export_module
from iacseg.outputs.nnunet_dataset import ExportCase, dataset_folder_name, dataset_json, landmark_list, splits_final
from iacseg.store.export import check_statuses, export_training_set

GRID = Grid((6, 10, 12), (0.5, 0.5, 2.0), (-3.0, -2.5, 10.0))


def six_landmarks(z0: float = 11.0) -> dict[str, Landmark]:
    return {n: Landmark(n, z0 + k, (5.0 if n.startswith("L") else -5.0, 1.0, z0 + k)) for k, n in enumerate(LANDMARKS)}


# --- pure builders ------------------------------------------------------------------------------------------------

def test_dataset_folder_names_follow_nnunet_and_odd_ones_are_refused() -> None:
    assert dataset_folder_name(501, "ICACalc") == "Dataset501_ICACalc"
    assert dataset_folder_name(7, "ica-calc_2") == "Dataset007_ica-calc_2"
    for bad_id, bad_name in ((0, "X"), (1000, "X"), (True, "X"), (501, "../x"), (501, "a b"), (501, "")):
        with pytest.raises(InputError):
            dataset_folder_name(bad_id, bad_name)
    with pytest.raises(InputError, match="unknown case status"):
        check_statuses(["approved", "done"])
    assert check_statuses(["corrected", "approved", "corrected"]) == ("corrected", "approved")
    assert check_statuses("in_review") == ("in_review",)


def test_dataset_json_splits_and_landmark_list_from_case_records() -> None:
    cases = [ExportCase("c3", "val", landmarks=six_landmarks()), ExportCase("c1", "train", landmarks=six_landmarks()),
             ExportCase("c2", "test", landmarks=six_landmarks(20.0)), ExportCase("c0", "train")]
    ds = dataset_json(cases, "Dataset501_ICACalc", "mystore")
    assert ds["channel_names"] == {"0": "CT"} and ds["file_ending"] == ".nii.gz"
    assert ds["labels"] == {"background": 0, "L_cervical": 1, "L_petrous": 2, "L_cavernous": 3, "L_supraclinoid": 4,
                            "R_cervical": 5, "R_petrous": 6, "R_cavernous": 7, "R_supraclinoid": 8}
    assert ds["numTraining"] == 3  # train + val go to imagesTr
    assert "IACSeg corrections store" in ds["description"]
    assert splits_final(cases) == [{"train": ["c0", "c1"], "val": ["c3"]}]
    lms = landmark_list(cases)
    assert [e["case"] for e in lms] == ["c0", "c1", "c2", "c3"]
    c2 = lms[2]
    assert c2["split"] == "test" and c2["image"] == "imagesTs/c2_0000.nii.gz" and c2["labels"] == "labelsTs/c2.nii.gz"
    assert list(c2["landmarks"]) == list(LANDMARKS)
    assert c2["landmarks"]["L_petrolingual"] == {"z_mm": 21.0, "position": [5.0, 1.0, 21.0]}


# --- export from a stand-in store (the CorrectionStore reading API of docs/STORE.md) -----------------------------

@dataclass
class FakeCase:
    case_id: str
    split: str
    status: str
    corrections: dict[str, list[int]] = field(default_factory=dict)
    approved: tuple[str, int] | None = None


class FakeStore:
    """``root/<case>/image.nii.gz`` and ``root/<case>/<original|reader_vN>/{calcifications.nii.gz,landmarks.mrk.json}``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.infos: list[FakeCase] = []

    def add(self, case: FakeCase, label_value: int = 2, label_grid: Grid = GRID) -> None:
        from iacseg.io.writers import write_image
        from iacseg.outputs.markups import write_landmarks

        folder = self.root / case.case_id
        write_image(folder / "image.nii.gz", np.full(GRID.shape, 40, np.int16), GRID)
        versions = ["original"] + [f"{r}_v{v}" for r, vs in case.corrections.items() for v in vs]
        for n, who in enumerate(versions):
            lab = np.zeros(label_grid.shape, np.uint8)
            lab[1, 2, 1:1 + n + 1] = label_value  # n + 1 voxels: tells the versions apart
            write_image(folder / who / "calcifications.nii.gz", lab, label_grid)
            write_landmarks(folder / who / "landmarks.mrk.json", six_landmarks(11.0 + n).values())
        self.infos.append(case)

    def cases(self) -> list[FakeCase]:
        return list(self.infos)

    def image_path(self, case_id: str) -> Path:
        return self.root / case_id / "image.nii.gz"

    def _folder(self, case_id: str, which: str | tuple[str, int]) -> Path:
        info = next(c for c in self.infos if c.case_id == case_id)
        if which == "approved":
            which = info.approved
        elif which == "latest":
            which = max(((r, max(v)) for r, v in info.corrections.items()), key=lambda rv: rv[1])
        return self.root / case_id / (which if isinstance(which, str) else f"{which[0]}_v{which[1]}")

    def labels_path(self, case_id: str, which: str | tuple[str, int] = "original") -> Path:
        return self._folder(case_id, which) / "calcifications.nii.gz"

    def landmarks_path(self, case_id: str, which: str | tuple[str, int] = "original") -> Path:
        return self._folder(case_id, which) / "landmarks.mrk.json"


def read_array(path: Path) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.fixture
def fake_store(tmp_path: Path) -> FakeStore:
    store = FakeStore(tmp_path / "my_store")
    store.add(FakeCase("a1", "train", "approved", {"Dr A": [1, 2]}, approved=("Dr A", 1)))
    store.add(FakeCase("a2", "test", "approved", {"Dr A": [1]}, approved=("Dr A", 1)), label_value=7)
    store.add(FakeCase("a3", "val", "approved", {"B": [1]}, approved=("B", 1)))
    store.add(FakeCase("k1", "train", "corrected", {"Dr A": [1, 2, 3]}))
    store.add(FakeCase("t1", "train", "todo"))
    return store


def test_export_writes_the_nnunet_layout_from_approved_cases_only(fake_store: FakeStore, tmp_path: Path) -> None:
    ds = export_training_set(fake_store, tmp_path / "out")
    assert ds == (tmp_path / "out" / "Dataset501_ICACalc").absolute()
    files = sorted(p.relative_to(ds).as_posix() for p in ds.rglob("*") if p.is_file())
    assert files == ["dataset.json", "export.json", "imagesTr/a1_0000.nii.gz", "imagesTr/a3_0000.nii.gz",
                     "imagesTs/a2_0000.nii.gz", "labelsTr/a1.nii.gz", "labelsTr/a3.nii.gz", "labelsTs/a2.nii.gz",
                     "landmarks.json", "splits_final.json"]
    assert (ds / "imagesTr/a1_0000.nii.gz").read_bytes() == fake_store.image_path("a1").read_bytes()
    assert int((read_array(ds / "labelsTr/a1.nii.gz") > 0).sum()) == 2  # the approved v1, not the newer v2
    assert set(np.unique(read_array(ds / "labelsTs/a2.nii.gz"))) == {0, 7}
    assert json.loads((ds / "dataset.json").read_text())["numTraining"] == 2
    assert json.loads((ds / "splits_final.json").read_text()) == [{"train": ["a1"], "val": ["a3"]}]
    lms = {e["case"]: e for e in json.loads((ds / "landmarks.json").read_text())}
    assert lms["a1"]["landmarks"]["L_carotid_canal"]["z_mm"] == 12.0  # from the approved correction
    record = json.loads((ds / "export.json").read_text())
    assert record["store"] == "my_store" and record["cases_per_split"] == {"train": 1, "val": 1, "test": 1}
    assert record["cases"][0]["labels"] == {"annotation": "approved", "reader": "Dr A", "version": 1,
                                           "file": "a1/Dr A_v1/calcifications.nii.gz"}
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["Dataset501_ICACalc"]  # no temporary folder left


def test_export_of_other_statuses_takes_the_newest_correction_or_the_engine_output(fake_store: FakeStore,
                                                                                    tmp_path: Path) -> None:
    ds = export_training_set(fake_store, tmp_path / "out", dataset_id=12, dataset_name="Mine",
                             statuses=("corrected", "todo"))
    assert ds.name == "Dataset012_Mine"
    assert int((read_array(ds / "labelsTr/k1.nii.gz") > 0).sum()) == 4  # v3 is the 4th annotation
    assert int((read_array(ds / "labelsTr/t1.nii.gz") > 0).sum()) == 1  # engine output
    sources = {c["case"]: c["labels"]["annotation"] for c in json.loads((ds / "export.json").read_text())["cases"]}
    assert sources == {"k1": "latest", "t1": "original"}


def test_existing_dataset_is_refused_and_never_mixed(fake_store: FakeStore, tmp_path: Path) -> None:
    first = export_training_set(fake_store, tmp_path / "out")
    before = sorted(p.name for p in first.rglob("*"))
    with pytest.raises(InputError, match="already exists"):
        export_training_set(fake_store, tmp_path / "out", statuses=("corrected",))
    assert sorted(p.name for p in first.rglob("*")) == before
    (tmp_path / "empty" / "Dataset501_ICACalc").mkdir(parents=True)  # an empty folder is fine
    assert (export_training_set(fake_store, tmp_path / "empty") / "dataset.json").is_file()


def test_a_failure_during_export_leaves_no_partial_dataset(fake_store: FakeStore, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def failing_copy(src: Path, dst: Path) -> None:
        calls.append(dst)
        if len(calls) == 3:
            raise OSError("disk full")
        Path(dst).write_bytes(Path(src).read_bytes())

    monkeypatch.setattr(export_module.shutil, "copyfile", failing_copy)
    with pytest.raises(OSError, match="disk full"):
        export_training_set(fake_store, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_nothing_to_export_or_damaged_cases_are_refused(fake_store: FakeStore, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no case with status in_review"):
        export_training_set(fake_store, tmp_path / "out", statuses=("in_review",))
    fake_store.add(FakeCase("bad", "train", "approved", {"A": [1]}, approved=("A", 1)),
                   label_grid=Grid((6, 10, 11), GRID.spacing, GRID.origin))
    with pytest.raises(InputError, match="case bad: its label map is not on its image's grid"):
        export_training_set(fake_store, tmp_path / "out")
    assert not (tmp_path / "out" / "Dataset501_ICACalc").exists()


# --- export from a real CorrectionStore of phantom cases -----------------------------------------------------------

PATIENT = {"PatientName": "Quixote^Dulcinea", "PatientID": "MRN-77441920", "PatientBirthDate": "19480917"}


@functools.lru_cache(maxsize=None)
def phantom(seed: int = 2) -> Phantom:
    """A small synthetic head CT with calcifications in three segments (cached: tests only read it)."""
    return make_phantom(seed, slice_mm=5.0, matrix=192)


def engine_output(folder: Path, ph: Phantom, input_path: str = "ct.nii.gz") -> Path:
    """An engine output folder as `iacseg segment` writes it, made from the phantom's truth."""
    return write_engine_output(folder, ph.labels, ph.ct.grid, ph.landmarks, input_path=input_path)


def corrected(ph: Phantom, shift_mm: float = 2.5) -> tuple[np.ndarray, dict[str, Landmark], list[dict]]:
    """A reader's correction: L_petrolingual raised by ``shift_mm``, the L_cavernous calcium deleted."""
    labels = ph.labels.copy()
    labels[labels == SEGMENT_IDS["L_cavernous"]] = 0
    old = ph.landmarks["L_petrolingual"]
    marks = dict(ph.landmarks)
    marks["L_petrolingual"] = Landmark(old.name, old.z_mm + shift_mm, (*old.position[:2], old.z_mm + shift_mm))
    edits = [{"kind": "landmark_moved", "name": "L_petrolingual", "from_z_mm": old.z_mm, "to_z_mm": old.z_mm + shift_mm},
             {"kind": "lesion_deleted", "lesion": 1, "from_segment": "L_cavernous"}]
    return labels, marks, edits


def add_cases(store: CorrectionStore, ids: list[str], engine: Path, approve: bool = True) -> None:
    labels, marks, edits = corrected(phantom())
    for case_id in ids:
        store.add_case(phantom().ct, engine, case_id=case_id)
        store.add_correction(case_id, "Dr A", labels, marks, edits)
        if approve:
            store.set_status(case_id, "approved", "Dr A")


def exported_split(ds: Path) -> dict[str, str]:
    """Case → "train" / "val" / "test" as the exported dataset says (splits_final.json and imagesTs)."""
    (fold,) = json.loads((ds / "splits_final.json").read_text())
    split = {c: "train" for c in fold["train"]} | {c: "val" for c in fold["val"]}
    return split | {p.name.removesuffix("_0000.nii.gz"): "test" for p in (ds / "imagesTs").iterdir()}


def test_store_export_layout_labels_landmarks_and_fixed_splits(tmp_path: Path) -> None:
    import SimpleITK as sitk

    from iacseg.io.volume import grid_from_sitk

    store = CorrectionStore.init(tmp_path / "STORE")
    engine = engine_output(tmp_path / "engine", phantom())
    add_cases(store, ["p01", "p02", "p03", "p04", "p05"], engine)
    add_cases(store, ["k01"], engine, approve=False)  # corrected, not approved: not exported by default
    store.add_case(phantom().ct, engine, case_id="t01")  # todo
    ds = export_training_set(store, tmp_path / "out")

    split = exported_split(ds)
    assert split == {c.case_id: c.split for c in store.cases() if c.status == "approved"}
    want_labels, _, _ = corrected(phantom())
    for case_id, s in split.items():
        part = "Ts" if s == "test" else "Tr"
        image = sitk.ReadImage(str(ds / f"images{part}" / f"{case_id}_0000.nii.gz"))
        labels = sitk.ReadImage(str(ds / f"labels{part}" / f"{case_id}.nii.gz"))
        assert grid_from_sitk(labels).same_geometry(grid_from_sitk(image))
        assert grid_from_sitk(image).same_geometry(phantom().ct.grid)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(labels), want_labels)  # the approved correction
    assert json.loads((ds / "dataset.json").read_text())["numTraining"] == sum(s != "test" for s in split.values())
    for entry in json.loads((ds / "landmarks.json").read_text()):
        assert list(entry["landmarks"]) == list(LANDMARKS)
        z = {n: v["z_mm"] for n, v in entry["landmarks"].items()}
        assert z["L_petrolingual"] == pytest.approx(phantom().landmarks["L_petrolingual"].z_mm + 2.5, abs=1e-6)
        assert z["R_petrolingual"] == pytest.approx(phantom().landmarks["R_petrolingual"].z_mm, abs=1e-6)

    add_cases(store, ["p06", "p07", "p08", "p09", "p10"], engine)  # more cases never move the earlier ones
    again = export_training_set(store, tmp_path / "out2")
    split2 = exported_split(again)
    assert {c: split2[c] for c in split} == split
    assert split2 == {c.case_id: c.split for c in store.cases() if c.status == "approved"}
    assert exported_split(ds) == split  # the first export is untouched


def set_patient(dicom_dir: Path) -> None:
    import pydicom

    for f in sorted(dicom_dir.rglob("*")):
        if f.is_file():
            ds = pydicom.dcmread(f)
            for keyword, value in PATIENT.items():
                setattr(ds, keyword, value)
            ds.save_as(f)


def test_exported_dicom_case_holds_no_patient_identifier_in_any_byte(tmp_path: Path) -> None:
    ph = phantom()
    case_dir = tmp_path / "Quixote_Dulcinea_MRN-77441920"  # folders are often named after the patient
    write_phantom(ph, case_dir, dicom=True)
    set_patient(case_dir / "dicom")
    store = CorrectionStore.init(tmp_path / "STORE")
    engine = engine_output(tmp_path / "engine", ph, input_path=str(case_dir / "dicom"))
    case_id = store.add_case(case_dir / "dicom", engine, keep_identifiers=True)  # even then: not exported
    assert store.show(case_id)["identifiers"]["PatientID"] == PATIENT["PatientID"]
    labels, marks, edits = corrected(ph)
    store.add_correction(case_id, "Dr A", labels, marks, edits)
    store.set_status(case_id, "approved", "Dr A")
    ds = export_training_set(store, tmp_path / "out")

    secrets = {v.lower().encode() for v in PATIENT.values()} | {b"quixote", b"dulcinea"}

    def leaked(blob: bytes) -> list[bytes]:
        return [s for s in secrets if s in blob.lower()]

    assert set(leaked(next((case_dir / "dicom").iterdir()).read_bytes())) == secrets  # the input holds them
    files = [p for p in ds.rglob("*") if p.is_file()]
    assert len(files) == 6  # image, labels, dataset/splits_final/landmarks/export .json
    for path in files:
        data = path.read_bytes()
        contents = [data, gzip.decompress(data)] if path.name.endswith(".gz") else [data]
        for blob in contents:
            assert not leaked(blob), f"{path.relative_to(ds)} contains {leaked(blob)}"
    assert json.loads((ds / "landmarks.json").read_text())[0]["case"] == case_id


def test_cli_export_prints_the_dataset_and_refuses_to_mix(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from store_fixtures import small_case, small_labels, small_landmarks

    from iacseg.cli.main import main

    ct, engine = small_case(tmp_path / "case")
    store = CorrectionStore.init(tmp_path / "STORE")
    store.add_case(ct, engine, case_id="s1")
    store.add_correction("s1", "Dr A", small_labels(), small_landmarks(1.5), [])
    assert main(["store", "export", str(store.root), "-o", str(tmp_path / "out")]) == 2  # nothing approved yet
    assert "no case with status approved" in capsys.readouterr().err
    store.set_status("s1", "approved", "Dr A")
    assert main(["store", "export", str(store.root), "-o", str(tmp_path / "out"), "--dataset-id", "42"]) == 0
    ds = Path(capsys.readouterr().out.strip())
    assert ds.name == "Dataset042_ICACalc" and (ds / "landmarks.json").is_file()
    assert main(["store", "export", str(store.root), "-o", str(tmp_path / "out"), "--dataset-id", "42"]) == 2
    assert "already exists" in capsys.readouterr().err
