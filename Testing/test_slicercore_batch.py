"""``IACSegModule/batch.py`` as Slicer runs it: ``Slicer --no-main-window --python-script batch.py -- ARGS``.

Played by ``slicercore_env.py`` in a child process: slicer-core plus the stand-ins, the script run as ``__main__``,
``SystemExit`` ending "Slicer", an uncaught error printed and Slicer left running (as Slicer does), then the code
given to ``slicer.util.exit``. A script that never calls it would hang: the runner reports that as exit code 124
after ``HANG_AFTER_S`` s. Exit codes: 0 every case done, 1 a case failed (or the run broke), 2 unusable input.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

MODULE = Path(__file__).resolve().parents[1] / "IACSegModule"
sys.path[:0] = [str(MODULE), str(MODULE / "Testing")]

import engine_cases  # noqa: E402
from slicercore_env import slicer_env  # noqa: E402,F401 — fixture
from iacseg.core.contracts import LABELS_FILE, LANDMARKS, REPORT_JSON, SEGMENTATION_FILE, SEGMENTS  # noqa: E402

RUNNER = MODULE / "Testing" / "slicercore_env.py"
BATCH = MODULE / "batch.py"
HANG_AFTER_S = 20
SLICER_FILES = ("slicer_calcifications.seg.nrrd", "slicer_landmarks.mrk.json")


def slicer_batch(*args: str, script: Path = BATCH) -> subprocess.CompletedProcess:
    """``Slicer --no-main-window --python-script SCRIPT -- ARGS`` with slicer-core; never waits forever."""
    env = {**os.environ, "SLICERCORE_ENV_HANG_AFTER_S": str(HANG_AFTER_S)}
    return subprocess.run([sys.executable, str(RUNNER), "--no-main-window", "--python-script", str(script), "--",
                           *args], capture_output=True, text=True, env=env, timeout=HANG_AFTER_S + 300)


def patched_batch(tmp_path: Path, patch: str) -> Path:
    """A script that applies ``patch`` (Python) and then runs batch.py as Slicer would."""
    script = tmp_path / "patched_batch.py"
    script.write_text(f"import runpy, sys\nsys.path.insert(0, {str(MODULE)!r})\nimport slicer\n"
                      f"{textwrap.dedent(patch)}\nrunpy.run_path({str(BATCH)!r}, run_name='__main__')\n")
    return script


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> Path:
    """A folder with one phantom case (``phantom_70101/ct.nii.gz``)."""
    root = tmp_path_factory.mktemp("cases")
    engine_cases.phantom_ct(root)
    return root


def test_every_case_done_exit_0_with_slicers_files(slicer_env, cases, tmp_path) -> None:
    import slicer

    run = slicer_batch("--input", str(cases), "--output", str(tmp_path / "out"), "--device", "cpu")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "[1/1 phantom_70101] done in" in run.stdout
    assert (tmp_path / "out" / "summary.csv").is_file()  # the engine batch's table
    assert "IACSeg batch: 1 done, 0 skipped, 0 failed" in run.stdout
    folder = tmp_path / "out" / "phantom_70101"
    for name in (LABELS_FILE, SEGMENTATION_FILE, REPORT_JSON, *SLICER_FILES):
        assert (folder / name).is_file(), name
    # Slicer's own files, read back by Slicer, equal the engine's label map and landmarks
    import SimpleITK as sitk

    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / LABELS_FILE)))
    volume = slicer.util.loadVolume(str(cases / "phantom_70101" / "ct.nii.gz"))
    segmentation = slicer.util.loadSegmentation(str(folder / SLICER_FILES[0]))
    for value, name in sorted(SEGMENTS.items()):
        np.testing.assert_array_equal(slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, name, volume) > 0,
                                      labels == value, err_msg=name)
    points = slicer.util.loadMarkups(str(folder / SLICER_FILES[1]))
    assert [points.GetNthControlPointLabel(i) for i in range(points.GetNumberOfControlPoints())] == list(LANDMARKS)
    # a second run finds the results there: skipped, still exit 0
    again = slicer_batch("--input", str(cases), "--output", str(tmp_path / "out"))
    assert again.returncode == 0 and "IACSeg batch: 0 done, 1 skipped, 0 failed" in again.stdout
    assert "[1/1 phantom_70101] skipped: results already in" in again.stdout


def test_one_engine_for_all_cases_a_failed_case_exit_1_and_the_batch_goes_on(cases, tmp_path) -> None:
    """One ``iacseg batch`` process serves every case (models loaded once); the case it cannot read fails, the other
    is loaded into Slicer and saved, and the engine's ``summary.csv`` lists both."""
    inputs = tmp_path / "cases"
    inputs.mkdir()
    (inputs / "phantom_70101").symlink_to(cases / "phantom_70101", target_is_directory=True)
    (inputs / "broken.nii.gz").write_bytes(b"not an image")
    script = patched_batch(tmp_path, """
        from IACSegLib.process import EngineProcess
        run = EngineProcess.run
        def counted(self, args, *rest, **kwargs):
            print("(test) engine run:", " ".join(args[2:4]), flush=True)
            return run(self, args, *rest, **kwargs)
        EngineProcess.run = counted
    """)
    run = slicer_batch("--input", str(inputs), "--output", str(tmp_path / "out"), "--device", "cpu",
                       "--read-workers", "0", script=script)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout.count("(test) engine run:") == 1 and "(test) engine run: iacseg batch" in run.stdout
    assert "[1/2 broken] failed:" in run.stdout and "[2/2 phantom_70101] done in" in run.stdout
    assert "batch: 2/2 cases (1 done, 0 skipped, 1 failed)" in run.stdout and "CT/s" in run.stdout
    assert "IACSeg batch: 1 done, 0 skipped, 1 failed" in run.stdout
    assert (tmp_path / "out" / "phantom_70101" / SLICER_FILES[0]).is_file()
    import csv

    with open(tmp_path / "out" / "summary.csv", newline="") as f:
        assert sorted((row["case"], row["status"]) for row in csv.DictReader(f)) == [
            ("broken", "failed"), ("phantom_70101", "done")]


def test_a_case_slicer_cannot_load_fails_alone_exit_1(cases, tmp_path) -> None:
    """Slicer's loaders raise RuntimeError when a file cannot be read: that case fails, the batch goes on and exits."""
    script = patched_batch(tmp_path, """
        def cannot_load(*args, **kwargs):
            raise RuntimeError("Failed to load node from file: (test) unreadable segmentation")
        slicer.util.loadSegmentation = cannot_load
    """)
    run = slicer_batch("--input", str(cases), "--output", str(tmp_path / "out"), "--device", "cpu", script=script)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "[1/1 phantom_70101] failed: Failed to load node from file: (test) unreadable segmentation" in run.stdout
    assert "IACSeg batch: 0 done, 0 skipped, 1 failed" in run.stdout


def test_an_unexpected_error_still_ends_slicer_exit_1(cases, tmp_path) -> None:
    """E.g. torch missing (no PyTorch extension): the error is printed and Slicer exits instead of running on."""
    script = patched_batch(tmp_path, """
        import IACSeg
        def no_torch(self, interactive):
            raise RuntimeError("(test) PyTorch is not installed: install the PyTorch extension")
        IACSeg.IACSegLogic.ensureDependencies = no_torch
    """)
    run = slicer_batch("--input", str(cases), "--output", str(tmp_path / "out"), script=script)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "(test) PyTorch is not installed" in run.stderr
    assert not (tmp_path / "out").exists()


def test_the_bundled_engine_is_found_before_it_is_imported(tmp_path) -> None:
    """In Slicer the engine is bundled beside the module (not installed): batch.py must put it on sys.path (as the
    module's logic does) before importing what needs it; the source checkout's engine plays the bundled one here."""
    script = patched_batch(tmp_path, f"""
        from pathlib import Path
        bundled = Path({str(MODULE.parent / "IACSegExtension")!r}).resolve()
        sys.path[:] = [p for p in sys.path if not (p and Path(p).resolve() == bundled)]  # iacseg not installed
        import importlib.util
        assert importlib.util.find_spec("iacseg") is None
    """)
    run = slicer_batch("--input", str(tmp_path / "none"), "--output", str(tmp_path / "out"), script=script)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "batch input" in run.stderr and "does not exist" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("make_args, words", [
    (lambda t: ["--input", str(t / "none"), "--output", str(t / "out")], "does not exist"),
    (lambda t: ["--input", str(t / "empty")], "the following arguments are required: --output"),
    (lambda t: ["--input", str(t / "empty"), "--output", str(t / "out"), "--device", "tpu"], "device"),
    (lambda t: ["--input", str(t / "empty"), "--output", str(t / "out")], "contains no CT files or case folders"),
    (lambda t: ["--input", str(t / "twins"), "--output", str(t / "out")], "same case name (a)"),
], ids=["missing-input", "no-output", "bad-device", "empty-folder", "duplicate-names"])
def test_unusable_input_exit_2_with_one_sentence(tmp_path, make_args, words) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "twins").mkdir()
    for name in ("a.nii.gz", "a.nrrd"):
        (tmp_path / "twins" / name).write_bytes(b"")
    run = slicer_batch(*make_args(tmp_path))
    assert run.returncode == 2, run.stdout + run.stderr
    assert words in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()
