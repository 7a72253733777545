"""Headless batch logic: argument parsing and the same engine code path, with the engine process faked."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[1] / "IACSegModule"
sys.path[:0] = [str(MODULE), str(MODULE / "Testing")]

import fake_outputs as fake  # noqa: E402
from IACSegLib.headless_batch import CaseOutcome, exit_code, parse_batch_args, run_batch, summary_text  # noqa: E402
from IACSegLib.parameters import ParameterError  # noqa: E402
from IACSegLib.process import EngineProcess  # noqa: E402


def test_arguments_after_slicers_double_dash(tmp_path: Path) -> None:
    (tmp_path / "cases").mkdir()
    fake.write_fake_ct(tmp_path / "cases" / "a.nii.gz")  # a folder without cases is refused
    options = parse_batch_args(["--", "--input", str(tmp_path / "cases"), "--output", str(tmp_path / "out"),
                                "--model", "m1", "--device", "cpu", "--threshold", "0.3"])
    assert (options.input, options.output, options.model, options.device, options.threshold) == \
        (tmp_path / "cases", tmp_path / "out", "m1", "cpu", 0.3)
    assert options.slicer_files and not options.overwrite


def test_bad_arguments(tmp_path: Path) -> None:
    (tmp_path / "cases").mkdir()
    with pytest.raises(ParameterError, match="does not exist"):
        parse_batch_args(["--input", str(tmp_path / "none"), "--output", str(tmp_path)])
    with pytest.raises(ParameterError, match="device"):
        parse_batch_args(["--input", str(tmp_path / "cases"), "--output", str(tmp_path / "o"), "--device", "tpu"])
    with pytest.raises(SystemExit):
        parse_batch_args(["--output", str(tmp_path)])
    for inside in (tmp_path / "cases", tmp_path / "cases" / "results", tmp_path):  # the input is never the output
        with pytest.raises(ParameterError, match="input"):
            parse_batch_args(["--input", str(tmp_path / "cases"), "--output", str(inside)])


class FakeEngineLauncher:
    """Plays `iacseg segment`: writes the fake output folder for case_a (QC review, cervical segments not
    assessable), fails with exit 2 for case_b."""

    own_session = True

    def launch(self, args, env_update, on_line, on_exit):
        out = Path(args[args.index("-o") + 1])
        if "case_b" in str(out):
            on_line("iacseg: error: case_b is not a CT")
            on_exit(2)
        else:
            fake.write_fake_output(out, qc=fake.qc_block("review", [fake.LOW_CONFIDENCE], fake.CERVICAL))
            on_line('{"stage": "done", "fraction": 1.0, "message": "ok", "elapsed_s": 1.0}')
            on_exit(0)
        return type("H", (), {"pid": 1, "poll": lambda self: 0})()


def test_batch_runs_every_case_and_reports_failures(tmp_path: Path) -> None:
    cases = tmp_path / "cases"
    for name in ("case_a", "case_b"):
        (cases / name).mkdir(parents=True)
        fake.write_fake_ct(cases / name / "ct.nii.gz")
    options = parse_batch_args(["--input", str(cases), "--output", str(tmp_path / "out")])
    loaded, lines, commands = [], [], []

    def make_process() -> EngineProcess:
        launcher = FakeEngineLauncher()
        original = launcher.launch
        launcher.launch = lambda args, *rest: (commands.append(args), original(args, *rest))[1]
        return EngineProcess(launcher)

    outcomes = run_batch(options, make_process, "PythonSlicer", on_loaded=lambda c, r: loaded.append(c.name),
                         log=lines.append)
    assert [(o.name, o.status) for o in outcomes] == [("case_a", "done"), ("case_b", "failed")]
    assert outcomes[1].error == "case_b is not a CT" and exit_code(outcomes) == 1
    assert loaded == ["case_a"]
    assert commands[0][:4] == ["PythonSlicer", "-m", "iacseg", "segment"]
    assert any("100.0% done" in line for line in lines)
    assert any(line.startswith("[1/2 case_a] done") and line.endswith(": QC review, 5.0 mm³ (incomplete), 2 lesion(s)")
               for line in lines)
    assert outcomes[0].qc == "review"
    assert summary_text(outcomes) == "IACSeg batch: 1 done, 0 skipped, 1 failed; QC 1 review"
    again = run_batch(options, make_process, "PythonSlicer", log=lines.append)
    assert [o.status for o in again] == ["skipped", "failed"]
    assert summary_text(again) == "IACSeg batch: 0 done, 1 skipped, 1 failed"


def test_any_error_of_one_case_fails_that_case_only(tmp_path: Path) -> None:
    """Slicer's loaders raise RuntimeError; anything else fails the case too, named by its type; the batch goes on."""
    cases = tmp_path / "cases"
    for name in ("case_a", "case_a2"):
        (cases / name).mkdir(parents=True)
        fake.write_fake_ct(cases / name / "ct.nii.gz")
    options = parse_batch_args(["--input", str(cases), "--output", str(tmp_path / "out")])
    errors = iter([RuntimeError("Failed to load node from file: x.seg.nrrd"), ValueError("odd spacing")])

    def on_loaded(case, result) -> None:
        raise next(errors)

    outcomes = run_batch(options, lambda: EngineProcess(FakeEngineLauncher()), "PythonSlicer", on_loaded=on_loaded,
                         log=lambda line: None)
    assert [(o.name, o.status, o.error) for o in outcomes] == [
        ("case_a", "failed", "Failed to load node from file: x.seg.nrrd"),
        ("case_a2", "failed", "ValueError: odd spacing")]
    assert exit_code(outcomes) == 1


def test_a_folder_without_usable_cases_is_refused_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParameterError, match="contains no CT files or case folders"):
        parse_batch_args(["--input", str(tmp_path / "empty"), "--output", str(tmp_path / "out")])
    (tmp_path / "twins").mkdir()
    for name in ("a.nii.gz", "a.nrrd"):
        fake.write_fake_ct(tmp_path / "twins" / name)
    with pytest.raises(ParameterError, match=r"same case name \(a\)"):
        parse_batch_args(["--input", str(tmp_path / "twins"), "--output", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_summary_counts_qc_statuses_of_the_cases_done() -> None:
    done = [CaseOutcome(n, "done", 1.0, qc=q) for n, q in (("a", "unusable"), ("b", "ok"), ("c", "unknown"),
                                                          ("d", "ok"))]
    assert summary_text(done + [CaseOutcome("e", "failed", 0.0, "not a CT")]) == \
        "IACSeg batch: 4 done, 0 skipped, 1 failed; QC 2 ok, 1 unusable, 1 unknown"


def test_a_users_folder_with_a_case_name_is_left_untouched_and_the_engine_not_started(tmp_path: Path) -> None:
    cases = tmp_path / "cases"
    (cases / "case_a").mkdir(parents=True)
    fake.write_fake_ct(cases / "case_a" / "ct.nii.gz")
    (tmp_path / "out" / "case_a").mkdir(parents=True)
    (tmp_path / "out" / "case_a" / "notes.txt").write_text("mine")
    commands, lines = [], []

    def make_process() -> EngineProcess:
        launcher = FakeEngineLauncher()
        launcher.launch = lambda args, *rest: commands.append(args)
        return EngineProcess(launcher)

    for overwrite in ([], ["--overwrite"]):
        options = parse_batch_args(["--input", str(cases), "--output", str(tmp_path / "out"), *overwrite])
        outcomes = run_batch(options, make_process, "PythonSlicer", log=lines.append)
        assert [(o.name, o.status) for o in outcomes] == [("case_a", "failed")]
        assert "not an IACSeg result" in outcomes[0].error and "left untouched" in outcomes[0].error
    assert commands == [] and [p.name for p in (tmp_path / "out" / "case_a").iterdir()] == ["notes.txt"]
    assert (tmp_path / "out" / "case_a" / "notes.txt").read_text() == "mine"
