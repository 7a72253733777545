"""One owner per folder format: every reader of an `iacseg segment` output folder goes through
`iacseg.outputs.result_folder`, every reader of a truth-layout case folder through `iacseg.outputs.truth_folder`;
a damaged folder is refused clearly, in the same words, wherever it is read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

MODULE = Path(__file__).resolve().parents[1] / "IACSegModule"
sys.path[:0] = [str(MODULE), str(MODULE / "Testing")]

import fake_outputs as fake  # noqa: E402
from iacseg.core.contracts import (LABELS_FILE, LANDMARKS_FILE, REPORT_JSON, TRUTH_LABELS_FILE,  # noqa: E402
    TRUTH_LANDMARKS_FILE)
from iacseg.core.errors import InputError  # noqa: E402
from iacseg.outputs import result_folder, truth_folder  # noqa: E402
from iacseg.outputs.result_folder import ResultFolder, load_result_folder  # noqa: E402
from iacseg.outputs.truth_folder import TruthFolder, case_folders, is_case_folder, write_truth_files  # noqa: E402
from store_fixtures import small_case  # noqa: E402


def test_every_reader_uses_the_one_reader() -> None:
    from IACSegLib import results
    from iacseg import relabel
    from iacseg.evaluate import calibrate, folders
    from iacseg.store import agreement, intake
    from iacseg.train import data

    assert relabel.read_label_map is result_folder.read_label_map
    assert relabel.read_report is result_folder.read_report and relabel.report_plane is result_folder.report_plane
    assert intake.load_result_folder is result_folder.load_result_folder
    assert intake.LoadedResult is result_folder.LoadedResult
    assert folders.ResultFolder is ResultFolder and folders.result_folders is result_folder.result_folders
    assert folders.TruthFolder is TruthFolder and folders.truth_folders is truth_folder.truth_folders
    assert results.ResultFolder is ResultFolder
    assert data.case_folders is case_folders and data.TruthFolder is TruthFolder
    for module, gone in ((relabel, "plane_from_report"), (intake, "EngineOutput"), (folders, "_case_folders"),
                         (folders, "_read_labels"), (results, "CaseResult"), (results, "load_report"),
                         (results, "check_output_folder"), (data, "is_case_folder")):
        assert not hasattr(module, gone), f"{module.__name__}.{gone} is a second reader"
    assert "is_case_folder" not in Path(calibrate.__file__).read_text()  # calibration finds cases through the owner
    assert "from ..relabel import" not in Path(agreement.__file__).read_text()


def test_readers_are_torch_free_and_evaluate_does_not_import_train() -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import iacseg.outputs.result_folder, "
            "iacseg.outputs.truth_folder, IACSegLib.results, iacseg.evaluate.folders, iacseg.evaluate.calibrate; "
            "print('torch' in sys.modules, any(m.startswith('iacseg.train') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(MODULE)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_a_result_folder_is_read_with_the_reports_slices_and_plane(tmp_path: Path) -> None:
    folder = fake.write_fake_output(tmp_path / "r")
    loaded = ResultFolder.open(folder).load(need_plane=True)
    np.testing.assert_array_equal(loaded.labels, fake.labels_and_hu()[0])
    assert loaded.grid.same_geometry(fake.GRID) and loaded.plane is not None
    assert loaded.landmarks["R_petrolingual"].confidence == pytest.approx(0.9)
    assert loaded.folder == folder and loaded.files[LABELS_FILE] == folder / LABELS_FILE


def _store_add(tmp_path: Path, out: Path) -> None:
    from iacseg.store import CorrectionStore

    ct = tmp_path / "case" / "ct.nii.gz"
    CorrectionStore.init(tmp_path / "store").add_case(ct, out)


def _slicer_load(out: Path) -> None:
    from IACSegLib.results import load_case_result

    load_case_result(out)


def _damage(out: Path, how: str) -> None:
    if how == "report_not_json":
        (out / REPORT_JSON).write_text("{not json")
    elif how == "labels_garbage":
        (out / LABELS_FILE).write_bytes(b"\x00not an image" * 10)
    elif how == "labels_above_8":
        from iacseg.io.writers import write_image
        from store_fixtures import SMALL_GRID

        write_image(out / LABELS_FILE, np.full(SMALL_GRID.shape, 9, np.uint8), SMALL_GRID)
    elif how == "no_landmarks":
        (out / LANDMARKS_FILE).unlink()


@pytest.mark.parametrize("how, words", [
    ("report_not_json", "is not a JSON report"),
    ("labels_garbage", "is not a readable image"),
    ("labels_above_8", "holds values above 8; it is not an IACSeg label map"),
    ("no_landmarks", "lacks landmarks.mrk.json"),
])
def test_a_damaged_result_folder_is_refused_in_the_same_words_by_the_store_and_slicer(how, words, tmp_path) -> None:
    _, out = small_case(tmp_path / "case")
    _damage(out, how)
    with pytest.raises(InputError, match=words) as store_error:
        _store_add(tmp_path, out)
    with pytest.raises(InputError, match=words) as slicer_error:
        _slicer_load(out)
    if how in ("report_not_json", "no_landmarks"):  # a folder-level refusal ends with each front end's own hint
        assert "give the folder written by" in str(store_error.value)
        assert str(slicer_error.value).endswith("run Segment again")
    else:  # a file-level refusal is word for word the same
        assert str(store_error.value) == str(slicer_error.value)


def test_relabel_refuses_a_damaged_report_through_the_reader(tmp_path: Path) -> None:
    from iacseg.relabel import relabel_case

    folder = fake.write_fake_output(tmp_path / "r")
    (folder / REPORT_JSON).write_text("[1, 2]")
    with pytest.raises(InputError, match="is not a JSON report; pass the report.json written by iacseg segment"):
        relabel_case(folder / LABELS_FILE, folder / LANDMARKS_FILE, tmp_path / "out")
    (folder / REPORT_JSON).write_text(json.dumps({"schema_version": 1}))
    with pytest.raises(InputError, match="has no midsagittal plane") as err:
        relabel_case(folder / LABELS_FILE, folder / LANDMARKS_FILE, tmp_path / "out")
    assert "--" not in str(err.value) and err.value.parameter == "report"


def test_evaluate_records_a_damaged_prediction_as_failed_with_the_readers_message(tmp_path: Path) -> None:
    from iacseg.evaluate.folders import evaluate_folders

    truth = tmp_path / "truth" / "c1"
    truth.mkdir(parents=True)
    (truth / TRUTH_LABELS_FILE).write_bytes((fake.write_fake_output(tmp_path / "ok") / LABELS_FILE).read_bytes())
    pred = fake.write_fake_output(tmp_path / "pred" / "c1")
    (pred / LABELS_FILE).write_bytes(b"garbage" * 20)
    case = evaluate_folders(tmp_path / "pred", tmp_path / "truth", n_resamples=10)["cases"][0]
    assert case["status"] == "failed" and "is not a readable image" in case["error"]


def test_slicer_refuses_a_report_without_plane(tmp_path: Path) -> None:
    folder = fake.write_fake_output(tmp_path / "r")
    report = json.loads((folder / REPORT_JSON).read_text())
    del report["midsagittal_plane"]
    (folder / REPORT_JSON).write_text(json.dumps(report))
    assert load_result_folder(folder).plane is None  # the store does not need it
    with pytest.raises(InputError, match="has no midsagittal plane; run Segment again"):
        _slicer_load(folder)


# --- the truth layout ---------------------------------------------------------------------------------------

def _truth_case(folder: Path) -> Path:
    from iacseg.io.writers import write_image

    labels, hu = fake.labels_and_hu()
    folder.mkdir(parents=True)
    write_image(folder / truth_folder.CT_FILE, np.where(hu > 0, hu, -1000.0).astype(np.int16), fake.GRID)
    write_truth_files(folder, labels, fake.GRID, fake.landmarks(), {"generator": "test"})
    return folder


def test_truth_files_round_trip(tmp_path: Path) -> None:
    case = TruthFolder(_truth_case(tmp_path / "c1"))
    assert is_case_folder(case.folder) and case_folders(tmp_path) == [case.folder]
    labels, grid = case.read_labels()
    np.testing.assert_array_equal(labels, fake.labels_and_hu()[0])
    assert grid.same_geometry(fake.GRID) and case.read_ct().grid.same_geometry(fake.GRID)
    assert case.read_landmarks()["L_petrolingual"].z_mm == pytest.approx(10.0)
    assert case.read_truth() == {"generator": "test"}
    assert (case.folder / TRUTH_LANDMARKS_FILE).is_file() and case.has_landmarks()


def test_truth_case_folders_name_what_each_use_needs(tmp_path: Path) -> None:
    with pytest.raises(InputError) as training:
        case_folders(tmp_path)
    assert str(training.value) == (f"{tmp_path} holds no training cases; each case folder needs ct.nii.gz (or "
                                   "dicom/), truth_calcifications.nii.gz and truth_landmarks.mrk.json")
    with pytest.raises(InputError) as development:
        case_folders(tmp_path, "development")
    assert str(development.value) == (f"{tmp_path} holds no development cases; each case folder needs ct.nii.gz "
                                      "(or dicom/) and truth_calcifications.nii.gz")
    (tmp_path / "only_truth").mkdir()
    (tmp_path / "only_truth" / TRUTH_LABELS_FILE).write_bytes(b"x")
    assert not is_case_folder(tmp_path / "only_truth")  # training needs the CT; evaluation does not
    assert list(truth_folder.truth_folders(tmp_path)) == ["only_truth"]


def test_a_damaged_truth_label_map_is_refused_naming_it(tmp_path: Path) -> None:
    from iacseg.evaluate.calibrate import _read_dev_case
    from iacseg.train.data import read_case_folder

    folder = _truth_case(tmp_path / "c1")
    (folder / TRUTH_LABELS_FILE).write_bytes(b"not an image" * 10)
    for read in (read_case_folder, _read_dev_case):
        with pytest.raises(InputError, match=f"{TRUTH_LABELS_FILE} is not a readable image"):
            read(folder)
