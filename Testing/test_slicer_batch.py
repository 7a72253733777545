"""Headless batch logic: argument parsing and one engine batch process for all cases, with the engine faked."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[1] / "IACSegModule"
sys.path[:0] = [str(MODULE), str(MODULE / "Testing")]

import fake_outputs as fake  # noqa: E402
from IACSegLib.headless_batch import (CaseOutcome, EngineBatchLines, exit_code, parse_batch_args,  # noqa: E402
                                      run_batch, summary_text)
from IACSegLib.parameters import BatchParameters, ParameterError  # noqa: E402
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
    """Plays ``iacseg batch IN -o OUT --progress jsonl`` as the engine does it (`iacseg.batch.run`): one process for
    every case; skips cases with a result, fails (never touches) a case folder IACSeg did not write, writes the fake
    output folder for the other cases (QC review, cervical segments not assessable) except those in ``fail`` ("is
    not a CT"); after each case a ``summary.csv`` row, a ``batch`` line naming it and a ``batch_status`` line; exit 1
    when a case failed. ``refuse``: exit 2 with that error before any case, as the engine's refusals."""

    own_session = True

    def __init__(self, fail: tuple[str, ...] = ("case_b",), refuse: str | None = None) -> None:
        self.fail, self.refuse = fail, refuse
        self.commands: list[list[str]] = []

    def launch(self, args, env_update, on_line, on_exit):
        from iacseg.batch.stream import BatchStatus
        from iacseg.batch.summary import summary_row, write_summary
        from iacseg.core.folder_guard import is_result_folder
        from iacseg.io.cohort import discover_cases

        self.commands.append(list(args))
        handle = type("H", (), {"pid": 1, "poll": lambda self: 0})()
        if self.refuse:
            on_line(f"iacseg: error (--output): {self.refuse}")
            on_exit(2)
            return handle
        out, cases = Path(args[args.index("-o") + 1]), discover_cases([Path(args[args.index("batch") + 1])])
        rows, status = {}, BatchStatus(total=len(cases))

        def finished(case, word: str) -> None:
            write_summary(out / "summary.csv", rows)
            on_line(json.dumps({"stage": "batch", "fraction": status.finished / status.total,
                                "message": f"{status.line()} · {case.name} {word}", "elapsed_s": 1.0}))
            on_line(json.dumps({"stage": "batch_status", **status.to_dict()}))

        for case in cases:
            folder = out / case.name
            if is_result_folder(folder) and (folder / "report.json").is_file() and "--overwrite" not in args:
                status.skipped += 1
                rows[case.name] = summary_row(case, "done", 0.0, json.loads((folder / "report.json").read_text()))
            elif folder.exists() and any(folder.iterdir()) and not is_result_folder(folder):
                status.failed += 1
                rows[case.name] = summary_row(case, "failed", 0.0, None, f"{folder} exists and is not an IACSeg "
                                              "result (it holds notes.txt); it was left untouched — move it away")
                finished(case, "failed")
            elif case.name in self.fail:
                status.failed += 1
                rows[case.name] = summary_row(case, "failed", 0.2, None, f"{case.name} is not a CT")
                finished(case, "failed")
            else:
                for stage in ("preprocess", "landmarks", "segment", "segment", "write"):
                    on_line(json.dumps({"stage": stage, "fraction": 0.5, "message": f"[{case.name}] working",
                                        "elapsed_s": 1.0}))
                if folder.exists():
                    shutil.rmtree(folder)
                fake.write_fake_output(folder, qc=fake.qc_block("review", [fake.LOW_CONFIDENCE], fake.CERVICAL))
                status.done += 1
                rows[case.name] = summary_row(case, "done", 1.5, json.loads((folder / "report.json").read_text()))
                finished(case, "done")
        write_summary(out / "summary.csv", rows)
        on_line(f"batch: {status.done} done, {status.skipped} skipped (already finished), {status.failed} failed")
        on_exit(1 if status.failed else 0)
        return handle


def make_cases(root: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        (root / name).mkdir(parents=True)
        fake.write_fake_ct(root / name / "ct.nii.gz")
    return root


def counting(launcher: FakeEngineLauncher, runs: list[int]):
    """A ``make_process`` whose processes count their `EngineProcess.run` calls into ``runs``."""

    class Counted(EngineProcess):
        def run(self, *args, **kwargs):
            runs.append(1)
            return super().run(*args, **kwargs)

    return lambda: Counted(launcher)


def test_one_engine_process_segments_every_case_and_reports_failures(tmp_path: Path) -> None:
    cases = make_cases(tmp_path / "cases", ("case_a", "case_b", "case_c"))
    options = parse_batch_args(["--input", str(cases), "--output", str(tmp_path / "out"), "--device", "cpu",
                                "--prefetch", "3"])
    loaded, lines, runs, launcher = [], [], [], FakeEngineLauncher()

    outcomes = run_batch(options, counting(launcher, runs), "PythonSlicer", {"EXTRA": "1"},
                         on_loaded=lambda c, r: loaded.append((c.name, r.folder.name)), log=lines.append)
    assert runs == [1] and len(launcher.commands) == 1  # one engine, models loaded once, for all three cases
    command = launcher.commands[0]
    assert command[:5] == ["PythonSlicer", "-m", "iacseg", "batch", str(cases)]
    assert command[command.index("-o") + 1] == str(tmp_path / "out")
    assert "--progress" in command and command[command.index("--progress") + 1] == "jsonl"
    assert command[command.index("--prefetch") + 1] == "3" and "--read-workers" not in command
    assert [(o.name, o.status) for o in outcomes] == [("case_a", "done"), ("case_b", "failed"), ("case_c", "done")]
    assert outcomes[1].error == "case_b is not a CT" and exit_code(outcomes) == 1
    assert loaded == [("case_a", "case_a"), ("case_c", "case_c")]  # the failing case did not stop the others
    assert [o.qc for o in outcomes] == ["review", "", "review"]
    assert summary_text(outcomes) == "IACSeg batch: 2 done, 0 skipped, 1 failed; QC 2 review"
    # a line per finished case, each followed by the engine's status (done, CT/s, time left, failures)
    done_a = next(i for i, line in enumerate(lines) if line.startswith("[1/3 case_a] done in"))
    assert lines[done_a].endswith(": QC review, 5.0 mm³ (incomplete), 2 lesion(s)")
    assert lines[done_a + 1].startswith("batch: 1/3 cases (1 done, 0 skipped, 0 failed) · ")
    assert "CT/s" in lines[done_a + 1] and lines[done_a + 1].endswith(" left")
    assert "[2/3 case_b] failed: case_b is not a CT" in lines
    assert any(line.startswith("batch: 3/3 cases (2 done, 0 skipped, 1 failed)") for line in lines)
    assert "[3/3 case_c] segment: working" in lines and lines.count("[3/3 case_c] segment: working") == 1
    # again: the results are kept (skipped, said before the engine starts); the failed case runs again
    again = run_batch(options, counting(launcher, runs), "PythonSlicer", log=lines.append)
    assert [o.status for o in again] == ["skipped", "failed", "skipped"] and runs == [1, 1]
    assert summary_text(again) == "IACSeg batch: 0 done, 2 skipped, 1 failed"
    # nothing left to segment: no engine at all
    clean = parse_batch_args(["--input", str(cases / "case_a"), "--output", str(tmp_path / "out")])
    assert [o.status for o in run_batch(clean, counting(launcher, runs), "PythonSlicer", log=lines.append)] == \
        ["skipped"] and runs == [1, 1]


def test_any_error_of_one_case_fails_that_case_only(tmp_path: Path) -> None:
    """Slicer's loaders raise RuntimeError; anything else fails the case too, named by its type; the batch goes on."""
    cases = make_cases(tmp_path / "cases", ("case_a", "case_a2", "case_a3"))
    options = parse_batch_args(["--input", str(cases), "--output", str(tmp_path / "out")])
    errors = iter([RuntimeError("Failed to load node from file: x.seg.nrrd"), ValueError("odd spacing"), None])
    loaded = []

    def on_loaded(case, result) -> None:
        error = next(errors)
        if error is not None:
            raise error
        loaded.append(case.name)

    outcomes = run_batch(options, lambda: EngineProcess(FakeEngineLauncher()), "PythonSlicer", on_loaded=on_loaded,
                         log=lambda line: None)
    assert [(o.name, o.status, o.error) for o in outcomes] == [
        ("case_a", "failed", "Failed to load node from file: x.seg.nrrd"),
        ("case_a2", "failed", "ValueError: odd spacing"), ("case_a3", "done", "")]
    assert loaded == ["case_a3"] and exit_code(outcomes) == 1


def test_the_engines_refusal_is_a_parameter_error(tmp_path: Path) -> None:
    """``iacseg batch`` exits 2 for what it refuses before any case (a summary.csv it did not write, a damaged
    model…): the batch stops with its one sentence, as for a refused argument."""
    cases = make_cases(tmp_path / "cases", ("case_a",))
    options = parse_batch_args(["--input", str(cases), "--output", str(tmp_path / "out")])
    refusal = "out/summary.csv exists and was not written by iacseg batch; choose another output folder"
    with pytest.raises(ParameterError) as caught:
        run_batch(options, lambda: EngineProcess(FakeEngineLauncher(refuse=refusal)), "PythonSlicer",
                  log=lambda line: None)
    assert str(caught.value) == refusal


def test_an_engine_that_stops_early_fails_the_cases_it_did_not_finish(tmp_path: Path) -> None:
    cases = make_cases(tmp_path / "cases", ("case_a", "case_b"))
    options = parse_batch_args(["--input", str(cases), "--output", str(tmp_path / "out")])

    class Crashing(FakeEngineLauncher):
        def launch(self, args, env_update, on_line, on_exit):
            def line(text: str) -> None:
                if text.startswith("batch: "):  # after the last case: the engine crashes instead
                    on_line("iacseg: internal error: MemoryError:  (run with --debug for details)")
                    raise StopIteration
                on_line(text)

            try:
                super().launch(args, env_update, line, lambda code: None)
            except StopIteration:
                pass
            on_exit(1)
            return type("H", (), {"pid": 1, "poll": lambda self: 1})()

    lines = []
    outcomes = run_batch(options, lambda: EngineProcess(Crashing(fail=())), "PythonSlicer", log=lines.append)
    assert [o.status for o in outcomes] == ["done", "done"]  # both were written and reported before the crash
    crashing = Crashing(fail=())
    crashing.launch = lambda args, env_update, on_line, on_exit: (
        on_line("iacseg: internal error: MemoryError:  (run with --debug for details)"), on_exit(1),
        type("H", (), {"pid": 1, "poll": lambda self: 1})())[-1]
    outcomes = run_batch(parse_batch_args(["--input", str(cases), "--output", str(tmp_path / "out2")]),
                         lambda: EngineProcess(crashing), "PythonSlicer", log=lines.append)
    assert [(o.status, o.error) for o in outcomes] == [
        ("failed", "not segmented: internal error in the engine: MemoryError:  (run with --debug for details)")] * 2
    assert "batch: the engine stopped: internal error in the engine: MemoryError:  (run with --debug for details)" \
        in lines


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


def test_a_users_folder_with_a_case_name_is_left_untouched(tmp_path: Path) -> None:
    """The engine batch's rule: a case folder IACSeg did not write fails that case, saying so, and stays as it is,
    also with --overwrite; the other cases go on."""
    cases = make_cases(tmp_path / "cases", ("case_a", "case_c"))
    (tmp_path / "out" / "case_a").mkdir(parents=True)
    (tmp_path / "out" / "case_a" / "notes.txt").write_text("mine")
    launcher, lines = FakeEngineLauncher(), []
    for overwrite in ([], ["--overwrite"]):
        options = parse_batch_args(["--input", str(cases), "--output", str(tmp_path / "out"), *overwrite])
        outcomes = run_batch(options, lambda: EngineProcess(launcher), "PythonSlicer", log=lines.append)
        assert [(o.name, o.status) for o in outcomes] == [("case_a", "failed"), ("case_c", "done")]
        assert "not an IACSeg result" in outcomes[0].error and "left untouched" in outcomes[0].error
    assert [c[c.index("-o") + 1:] for c in launcher.commands][1][-1] == "--overwrite"
    assert [p.name for p in (tmp_path / "out" / "case_a").iterdir()] == ["notes.txt"]
    assert (tmp_path / "out" / "case_a" / "notes.txt").read_text() == "mine"


def test_batch_parameters_are_the_engines_batch_arguments(tmp_path: Path) -> None:
    params = BatchParameters(tmp_path / "in", tmp_path / "out", "m1", "lm", "cuda:1", 0.25, True, 0, 4, 2)
    assert params.as_arg_list() == [
        "batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--progress", "jsonl", "--device", "cuda:1",
        "--threshold", "0.25", "--model", "m1", "--landmark-model", "lm", "--overwrite", "--read-workers", "0",
        "--prefetch", "4", "--write-workers", "2"]
    with pytest.raises(ParameterError, match="prefetch must be from 1 to 64"):
        BatchParameters(tmp_path, tmp_path / "out", prefetch=0).validate(check_paths=False)
    (tmp_path / "cases").mkdir()
    with pytest.raises(ParameterError, match="read workers"):
        parse_batch_args(["--input", str(tmp_path / "cases"), "--output", str(tmp_path / "o"), "--read-workers", "99"])


def test_engine_lines_name_cases_whatever_their_names() -> None:
    lines = EngineBatchLines(["a · b", "a", "x] y"])
    lines('{"stage": "batch", "fraction": 0.5, "message": "1/3 · 0.50 CT/s · ETA — · 0 failed · a · b done"}')
    lines('{"stage": "batch", "fraction": 0.5, "message": "1/3 · 0.50 CT/s · ETA — · 0 failed · a …"}')
    lines('{"stage": "segment", "fraction": 0.5, "message": "[x] y] patch 1/2"}')
    lines('{"stage": "segment", "fraction": 0.7, "message": "[x] y] patch 2/2"}')
    lines("not json")
    events = []
    while not lines.events.empty():
        events.append(lines.events.get())
    assert events == [("finished", "a · b", "done"), ("stage", "x] y", "segment: patch 1/2")]
