"""Output safety: an output folder never replaces an input or a user's folder, and is checked before computing.

Every refusal is exit 2 with one line naming the folder; the user's files are still there; the CT reader (the
first step of the computation) was never reached.
"""

from __future__ import annotations

import csv
import errno
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import iacseg.io
from iacseg.cli.main import main
from iacseg.core.contracts import REPORT_CSV, REPORT_JSON
from iacseg.core.errors import InputError
from iacseg.core.grid import Grid
from iacseg.io.writers import write_image
from iacseg.core import folder_guard as safety
from iacseg.core.folder_guard import RESULT_MARKER, check_output_folder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "IACSegModule" / "Testing"))
import fake_outputs as fake  # noqa: E402  (a tiny result folder with known answers, written by the engine)

SMALL = Grid((6, 16, 16), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))


class _Reached(InputError):
    """What the stand-in CT reader raises: the computation would have started."""


@pytest.fixture
def reader_calls(monkeypatch: pytest.MonkeyPatch) -> list:
    """Replace the CT reader (the first step of every computation) with one that records and refuses."""
    calls: list = []

    def reader(path, *args, **kwargs):
        calls.append(Path(path))
        raise _Reached(f"the CT reader was reached for {path}")

    monkeypatch.setattr(iacseg.io, "read_ct", reader)
    return calls


def _ct(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_image(path, np.full(SMALL.shape, 40.0, np.float32), SMALL)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """Run the CLI; assert exit 2 and one ``iacseg: error:`` line (``iacseg: error (-o/--output):`` when about an
    option); return it."""
    capsys.readouterr()
    code = main([*argv, "--progress", "none"]) if argv[0] != "relabel" else main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and re.match(r"iacseg: error( \(-o/--output\)| \(--overwrite\))?: ", err), err
    return err


def _case_folder(tmp_path: Path) -> tuple[Path, Path, dict[str, bytes]]:
    case = tmp_path / "case"
    ct = _ct(case / "ct.nii.gz")
    (case / "notes.txt").write_text("the patient's history")
    (case / "sub").mkdir()
    (case / "sub" / "more.txt").write_text("more")
    return case, ct, _snapshot(case)


# --- the output is an input or holds one ----------------------------------------------------------------------


def test_output_equal_to_the_cts_folder_with_overwrite_is_refused_and_the_input_survives(tmp_path, capsys,
                                                                                       reader_calls):
    case, ct, before = _case_folder(tmp_path)
    err = _refused(["segment", str(ct), "-o", str(case), "--overwrite"], capsys)
    assert str(case) in err and "input" in err
    assert _snapshot(case) == before and reader_calls == []
    err = _refused(["segment", str(ct), "-o", str(tmp_path), "--overwrite"], capsys)  # a folder above it
    assert str(tmp_path) in err and _snapshot(case) == before and reader_calls == []


def test_a_new_subfolder_beside_the_ct_is_allowed(tmp_path):
    """The Slicer module writes ``work/result`` beside the exported ``work/volume.nrrd``: still fine."""
    case, ct, _ = _case_folder(tmp_path)
    assert check_output_folder(case / "result", inputs=[ct]) == case / "result"
    assert not (case / "result").exists()


@pytest.mark.parametrize("where", [".", "", "..", "home", "/"])
def test_current_home_root_and_empty_output_are_refused(where, tmp_path, capsys, monkeypatch, reader_calls):
    work, home = tmp_path / "work", tmp_path / "home"
    (work / "data").mkdir(parents=True)
    home.mkdir()
    (work / "data" / "keep.txt").write_text("keep")
    (home / "thesis.tex").write_text("years of work")
    ct = _ct(tmp_path / "input" / "ct.nii.gz")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    before_work, before_home = _snapshot(work), _snapshot(home)
    out = str(home) if where == "home" else where
    err = _refused(["segment", str(ct), "-o", out, "--overwrite"], capsys)
    expected = {".": "current folder", "": "empty", "..": "above the current folder", "home": "home folder",
                "/": "root folder"}[where]
    assert expected in err and (where == "" or out in err)
    assert _snapshot(work) == before_work and _snapshot(home) == before_home and reader_calls == []


def _dicom_folder(tmp_path: Path) -> Path:
    from iacseg.io.dicom_write import write_ct_series

    folder = tmp_path / "dicom"
    slices = np.full((6, 16, 16), 40.0, np.float32)
    positions = np.array([[0.0, 0.0, 2.0 * k] for k in range(6)])
    write_ct_series(folder, slices, positions, (1, 0, 0), (0, 1, 0), (1.0, 1.0), slice_thickness_mm=2.0)
    return folder


def test_output_inside_or_equal_to_a_dicom_input_folder_is_refused(tmp_path, capsys, reader_calls):
    dicom = _dicom_folder(tmp_path)
    before = _snapshot(dicom)
    err = _refused(["segment", str(dicom), "-o", str(dicom / "result")], capsys)
    assert str(dicom) in err and "inside the input" in err
    err = _refused(["segment", str(dicom), "-o", str(dicom), "--overwrite"], capsys)
    assert str(dicom) in err
    assert _snapshot(dicom) == before and not (dicom / "result").exists() and reader_calls == []


# --- batch ----------------------------------------------------------------------------------------------------


def _cases(tmp_path: Path, names=("c1", "c2")) -> Path:
    cases = tmp_path / "cases"
    for name in names:
        _ct(cases / name / "ct.nii.gz")
    (cases / "c1" / "notes.txt").write_text("clinical notes")
    return cases


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_batch_into_its_own_input_folder_is_refused(overwrite, tmp_path, capsys, reader_calls):
    cases = _cases(tmp_path)
    before = _snapshot(cases)
    err = _refused(["batch", str(cases), "-o", str(cases), *overwrite], capsys)
    assert str(cases) in err
    err = _refused(["batch", str(cases), "-o", str(cases / "results"), *overwrite], capsys)
    assert "inside the input" in err
    err = _refused(["batch", str(cases / "c1" / "ct.nii.gz"), "-o", str(cases / "c1"), *overwrite], capsys)
    assert str(cases / "c1") in err
    assert _snapshot(cases) == before and reader_calls == []


def test_batch_never_touches_a_users_folder_with_a_case_name(tmp_path, capsys, reader_calls):
    cases = _cases(tmp_path)
    out = tmp_path / "out"
    (out / "c1").mkdir(parents=True)
    (out / "c1" / "mine.txt").write_text("my own analysis")
    for overwrite in ([], ["--overwrite"]):
        capsys.readouterr()
        assert main(["batch", str(cases), "-o", str(out), "--progress", "none", "--read-workers", "0", *overwrite]) == 1
        err = capsys.readouterr().err
        line = next(x for x in err.splitlines() if x.startswith("batch: c1 failed"))
        assert str(out / "c1") in line and "left untouched" in line and "mine.txt" in line
        assert (out / "c1" / "mine.txt").read_text() == "my own analysis"
        assert sorted(p.name for p in (out / "c1").iterdir()) == ["mine.txt"]
        rows = {r["case"]: r for r in csv.DictReader((out / "summary.csv").open())}
        assert rows["c1"]["status"] == "failed" and "left untouched" in rows["c1"]["error"]
    assert all(p.parent.name == "c2" for p in reader_calls)  # c1 was never computed; c2 was


def _our_result(folder: Path) -> Path:
    return fake.write_fake_output(folder)


def test_batch_skips_its_own_results_and_replaces_them_only_with_overwrite(tmp_path, capsys, reader_calls):
    cases = _cases(tmp_path, names=("c1",))
    out = tmp_path / "out"
    _our_result(out / "c1")
    before = _snapshot(out / "c1")
    assert main(["batch", str(cases), "-o", str(out), "--progress", "none"]) == 0
    assert "1 skipped" in capsys.readouterr().err and reader_calls == [] and _snapshot(out / "c1") == before
    assert main(["batch", str(cases), "-o", str(out), "--progress", "none", "--overwrite",
                 "--read-workers", "0"]) == 1  # the fake reader is in this process
    assert reader_calls == [cases / "c1" / "ct.nii.gz"]  # with --overwrite the case is segmented again
    assert _snapshot(out / "c1") == before  # (here the fake reader fails: the previous result is kept whole)


def test_batch_refuses_a_summary_csv_it_did_not_write(tmp_path, capsys, reader_calls):
    cases = _cases(tmp_path, names=("c1",))
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.csv").write_text("name,amount\nrent,1200\n")
    err = _refused(["batch", str(cases), "-o", str(out)], capsys)
    assert str(out / "summary.csv") in err
    assert (out / "summary.csv").read_text() == "name,amount\nrent,1200\n" and reader_calls == []


# --- --overwrite ----------------------------------------------------------------------------------------------


def _relabel(mask_folder: Path, ct: Path, out: Path, *extra: str) -> list[str]:
    return ["relabel", "--mask", str(mask_folder / "calcifications.nii.gz"),
            "--landmarks", str(mask_folder / "landmarks.mrk.json"), "--ct", str(ct), "-o", str(out), *extra]


def test_overwrite_replaces_our_own_previous_result(tmp_path, capsys):
    first = _our_result(tmp_path / "first")
    ct = fake.write_fake_ct(tmp_path / "ct" / "ct.nii.gz")
    out = tmp_path / "second"
    assert main(_relabel(first, ct, out)) == 0
    assert (out / RESULT_MARKER).is_file() and (out / REPORT_JSON).is_file()
    (out / REPORT_CSV).write_text("stale")
    err = _refused(_relabel(first, ct, out), capsys)  # without --overwrite: kept
    assert "not empty" in err and str(out) in err and (out / REPORT_CSV).read_text() == "stale"
    assert main(_relabel(first, ct, out, "--overwrite")) == 0
    assert (out / REPORT_CSV).read_text() != "stale" and (out / RESULT_MARKER).is_file()
    assert not list(tmp_path.glob(".second*"))  # no temporary or old folder left beside it


def test_overwrite_accepts_a_result_of_an_older_version_without_marker(tmp_path, capsys):
    first = _our_result(tmp_path / "first")
    ct = fake.write_fake_ct(tmp_path / "ct" / "ct.nii.gz")
    old = _our_result(tmp_path / "old")
    (old / RESULT_MARKER).unlink()  # as an older IACSeg wrote it
    assert safety.is_result_folder(old)
    assert main(_relabel(first, ct, old, "--overwrite")) == 0
    assert (old / RESULT_MARKER).is_file()


def test_relabel_into_the_masks_own_folder_is_refused(tmp_path, capsys):
    first = _our_result(tmp_path / "first")
    ct = fake.write_fake_ct(tmp_path / "ct" / "ct.nii.gz")
    before = _snapshot(first)
    err = _refused(_relabel(first, ct, first, "--overwrite"), capsys)
    assert str(first) in err and "input" in err and _snapshot(first) == before


@pytest.mark.parametrize("content", ["user_files", "fake_report", "result_plus_user_file", "file"])
def test_overwrite_of_a_folder_that_is_not_our_result_is_refused(content, tmp_path, capsys, reader_calls):
    ct = _ct(tmp_path / "input" / "ct.nii.gz")
    target = tmp_path / "target"
    if content == "file":
        target.write_text("a file")
    elif content == "user_files":
        target.mkdir()
        (target / "draft.docx").write_bytes(b"PK\x03\x04 draft")
    elif content == "fake_report":  # the contract names, but not our report
        target.mkdir()
        for name in safety.CONTRACT_FILES:
            (target / name).write_text("{}" if name.endswith(".json") else "x")
    else:  # our result, with a file the user added later
        _our_result(target)
        (target / "my_notes.txt").write_text("notes")
    before = _snapshot(target) if target.is_dir() else target.read_bytes()
    err = _refused(["segment", str(ct), "-o", str(target), "--overwrite"], capsys)
    assert str(target) in err
    assert (_snapshot(target) if target.is_dir() else target.read_bytes()) == before and reader_calls == []


def test_output_that_is_a_symbolic_link_is_refused(tmp_path, capsys, reader_calls):
    ct = _ct(tmp_path / "input" / "ct.nii.gz")
    real = _our_result(tmp_path / "real")
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    err = _refused(["segment", str(ct), "-o", str(tmp_path / "link"), "--overwrite"], capsys)
    assert "symbolic link" in err and str(tmp_path / "link") in err and reader_calls == []


# --- where the output can be written, checked before computing ------------------------------------------------


def test_read_only_output_parent_is_refused_before_computing(tmp_path, capsys, reader_calls):
    ct = _ct(tmp_path / "input" / "ct.nii.gz")
    parent = tmp_path / "readonly"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        if os.access(parent, os.W_OK):
            pytest.skip("running as root: chmod cannot make a folder read-only")
        err = _refused(["segment", str(ct), "-o", str(parent / "out")], capsys)
        assert "not writable" in err and str(parent) in err and reader_calls == []
    finally:
        parent.chmod(0o755)
    assert list(parent.iterdir()) == []


def test_unwritable_or_read_only_output_location_is_refused_before_computing(tmp_path, capsys, monkeypatch,
                                                                            reader_calls):
    """The same as above where chmod has no effect (root): the permission and the file system are simulated."""
    ct = _ct(tmp_path / "input" / "ct.nii.gz")
    parent = tmp_path / "results"
    parent.mkdir()
    real_access = os.access
    monkeypatch.setattr(safety.os, "access",
                        lambda p, mode, *a, **k: False if Path(p) == parent else real_access(p, mode, *a, **k))
    err = _refused(["segment", str(ct), "-o", str(parent / "a" / "b")], capsys)
    assert "permission denied" in err and str(parent) in err
    monkeypatch.setattr(safety.os, "access", real_access)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(safety.tempfile, "mkdtemp", read_only)
    err = _refused(["segment", str(ct), "-o", str(parent / "out")], capsys)
    assert "read-only file system" in err and reader_calls == []
    assert list(parent.iterdir()) == []  # no folder created along the way


def test_full_disk_is_refused_before_computing(tmp_path, capsys, monkeypatch, reader_calls):
    ct = _ct(tmp_path / "input" / "ct.nii.gz")
    usage = type("Usage", (), {"total": 1 << 30, "used": (1 << 30) - (1 << 20), "free": 1 << 20})()
    monkeypatch.setattr(safety.shutil, "disk_usage", lambda path: usage)
    err = _refused(["segment", str(ct), "-o", str(tmp_path / "out")], capsys)
    assert "free space" in err and "1 MB free" in err and str(tmp_path / "out") in err
    assert reader_calls == [] and not (tmp_path / "out").exists()


def test_output_size_estimate_grows_with_the_ct():
    small = safety.estimate_output_bytes(None)
    assert small == safety.FIXED_OUTPUT_BYTES
    assert safety.estimate_output_bytes(Path(fake.__file__)) >= small


@pytest.mark.parametrize("kind", ["component_over_name_max", "no_room_for_temporary_names", "path_over_path_max"])
def test_too_long_output_names_are_refused_before_computing(kind, tmp_path, capsys, reader_calls):
    ct = _ct(tmp_path / "input" / "ct.nii.gz")
    if kind == "component_over_name_max":
        out = tmp_path / ("n" * 300)
    elif kind == "no_room_for_temporary_names":
        out = tmp_path / ("é" * 120)  # 240 bytes: a valid name, but .NAME.XXXXXXXX.partial would not be
    else:
        out = tmp_path.joinpath(*["d" * 200] * 25, "out")
    err = _refused(["segment", str(ct), "-o", str(out)], capsys)
    assert "bytes" in err and "shorter" in err
    assert reader_calls == [] and list(tmp_path.iterdir()) == [tmp_path / "input"]
