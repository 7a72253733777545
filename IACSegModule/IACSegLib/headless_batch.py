"""The headless batch flow (``Slicer --no-main-window --python-script batch.py -- --input DIR --output DIR``).

Same code path as the Segment button, for a whole folder at once: ONE engine process, ``iacseg batch INPUT -o OUT
--progress jsonl …`` (`BatchParameters` → `engine_command` → `EngineProcess.run`, so the PyTorch-extension
environment, cancel/kill of the process tree and the engine's ``iacseg: error…`` lines work as for Segment) loads
the models once, reads the next CTs ahead and writes ``OUT/<case>/`` plus ``OUT/summary.csv``. Its output is
followed line by line: every case the engine finishes is loaded here, in the calling (Slicer's main) thread, while
the engine goes on with the next ones — `load_case_result`, then an optional ``on_loaded`` callback (in Slicer:
show the nodes and save ``.seg.nrrd``/``.mrk.json`` through Slicer) — and logged with its QC status, followed by
the engine's ``batch_status`` (cases done, CT/s, time left, failures). A case the engine reports failed takes its
message from ``summary.csv``. Cases that already hold a result are skipped (the engine's rule, logged before it
starts; without any other case no engine is started); a folder ``OUT/<case>`` IACSeg did not write is never
touched (the engine fails that case saying so). A case that fails for any reason (the engine, or Slicer not
loading or saving its files) is logged and the batch goes on; unusable arguments or inputs — and the engine's own
refusals (exit 2) before any case finished — are a `ParameterError`.
"""

from __future__ import annotations

import argparse
import csv
import json
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from iacseg.io.cohort import BatchCase, discover_cases
from iacseg.core.contracts import REPORT_JSON
from iacseg.core.errors import IACSegError
from iacseg.core.folder_guard import is_result_folder

from .parameters import (DEVICES, MAX_WORKERS, BatchParameters, ParameterError, engine_command,
                         parse_threshold_text)
from .process import EXIT_BAD_INPUT, INTERNAL_ERROR_PREFIX, EngineError, EngineProcess, format_duration
from .results import QC_STATUSES, ResultView, load_case_result, measure_rows, read_qc

#: The engine batch's table (``iacseg.batch.summary.SUMMARY_FILE``; not imported: that package loads the pipeline).
SUMMARY_FILE = "summary.csv"
#: The whole run's fraction is the engine's ``batch`` stage (cases finished / cases); per-case stages do not move it.
BATCH_STAGE_WEIGHTS: dict[str, float] = {"batch": 1.0}


@dataclass(frozen=True)
class BatchOptions:
    """Parsed batch arguments: input folder (or file), output folder (a subfolder per case) and engine options."""

    input: Path
    output: Path
    model: str | None = None
    landmark_model: str | None = None
    device: str = "auto"
    threshold: float | None = None
    overwrite: bool = False
    slicer_files: bool = True
    read_workers: int | None = None
    prefetch: int | None = None
    write_workers: int | None = None

    def batch_parameters(self) -> BatchParameters:
        return BatchParameters(self.input, self.output, self.model, self.landmark_model, self.device, self.threshold,
                               self.overwrite, self.read_workers, self.prefetch, self.write_workers)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="batch.py", description="Segment every CT of a folder with IACSeg (headless).")
    p.add_argument("--input", required=True, help="a folder of cases (a subfolder or image file per case), or one CT")
    p.add_argument("--output", required=True, help="output folder: one subfolder per case, and summary.csv")
    p.add_argument("--model", default=None, help="calcification model folder or name (default: bundled)")
    p.add_argument("--landmark-model", default=None, help="landmark model folder or name (default: bundled)")
    p.add_argument("--device", default="auto", help=f"{' | '.join(DEVICES)} | cuda:N (default auto)")
    p.add_argument("--threshold", default="auto", help="probability threshold or auto (default)")
    p.add_argument("--overwrite", action="store_true", help="segment again cases that already have results")
    p.add_argument("--no-slicer-files", dest="slicer_files", action="store_false",
                   help="do not load results into Slicer nor save the Slicer-written .seg.nrrd/.mrk.json")
    p.add_argument("--read-workers", type=int, default=None,
                   help=f"engine processes reading CTs ahead (0 to {MAX_WORKERS}; default the engine's, 1)")
    p.add_argument("--prefetch", type=int, default=None,
                   help=f"CTs read ahead at most (1 to {MAX_WORKERS}; default the engine's, 2)")
    p.add_argument("--write-workers", type=int, default=None,
                   help=f"engine threads writing results (0 to {MAX_WORKERS}; default the engine's, 1)")
    return p


def parse_batch_args(argv: Sequence[str]) -> BatchOptions:
    """Script arguments (after Slicer's ``--``) → `BatchOptions`; `ParameterError` for unusable values."""
    argv = list(argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    options = BatchOptions(Path(args.input), Path(args.output), args.model, args.landmark_model, args.device,
                           parse_threshold_text(args.threshold), args.overwrite, args.slicer_files,
                           args.read_workers, args.prefetch, args.write_workers)
    if not options.input.exists():
        raise ParameterError(f"the batch input {options.input} does not exist; give a folder of CTs")
    if options.output.is_file():
        raise ParameterError(f"the batch output {options.output} is a file; give a folder")
    from iacseg.core.folder_guard import check_batch_output

    try:  # the engine's own rules: never the input folder (or inside it), the current/home folder, or unwritable
        check_batch_output(options.output, [options.input])
    except IACSegError as exc:
        raise ParameterError(str(exc)) from None
    options.batch_parameters().validate()
    find_cases(options)  # an empty folder or two cases of one name: refused now, before anything runs
    return options


def find_cases(options: BatchOptions) -> list[BatchCase]:
    """The cases of ``options.input`` (the engine's `discover_cases`, as ``iacseg batch`` finds them); `ParameterError`
    when there are none or two share a name."""
    try:
        return discover_cases([options.input])
    except IACSegError as exc:
        raise ParameterError(str(exc)) from None


def has_result(folder: Path) -> bool:
    """The engine batch's skip rule: ``folder`` holds an IACSeg result (kept unless ``--overwrite``)."""
    return is_result_folder(folder) and (folder / REPORT_JSON).is_file()


#: Failures of a case whose message is the whole story: the engine's, bad files, and Slicer's loaders, which raise
#: RuntimeError("Failed to load node from file: …"). Any other error fails the case too, named by its type.
EXPECTED_CASE_ERRORS = (EngineError, IACSegError, ParameterError, OSError, RuntimeError)


@dataclass
class CaseOutcome:
    name: str
    status: str  # "done", "skipped" (results already there) or "failed"
    seconds: float
    error: str = ""
    qc: str = ""  # the done case's QC status: ok, review, unusable (unknown from an older engine)


class EngineBatchLines:
    """Turns the output lines of ``iacseg batch --progress jsonl`` (called on the launcher's thread) into events for
    the thread that loads results: ``("stage", case, text)`` when a case enters a stage, ``("finished", case,
    "done"|"failed")`` when the engine has written or failed it (its ``summary.csv`` row is written by then) and
    ``("status", record)`` for each ``batch_status`` line. Case names are matched against the known cases, so a
    name may hold any character."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = set(names)
        self.events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._last_stage: tuple[str, str] | None = None
        self._finished: set[str] = set()

    def _finish(self, case: str, status: str) -> None:
        if case not in self._finished:  # the engine names a finished case twice (status record and message)
            self._finished.add(case)
            self.events.put(("finished", case, status))

    def __call__(self, line: str) -> None:
        line = line.strip()
        if not (line.startswith("{") and line.endswith("}")):
            return
        try:
            record = json.loads(line)
            stage, message = str(record["stage"]), str(record.get("message", ""))
        except (ValueError, KeyError, TypeError):
            return
        if stage == "batch_status":
            if record.get("case") in self.names and record.get("case_status") in ("done", "failed"):
                self._finish(str(record["case"]), str(record["case_status"]))
            self.events.put(("status", record))
        elif stage == "batch":  # "<status> · NAME done" / "… · NAME failed" (an engine without "case" fields)
            finished = self.finished_case(message)
            if finished is not None:
                self._finish(*finished)
        else:  # a case's own stage: "[NAME] message"
            case = self.case_of(message)
            if case is not None and (case[0], stage) != self._last_stage:
                self._last_stage = (case[0], stage)
                self.events.put(("stage", case[0], f"{stage}: {case[1]}" if case[1] else stage))

    def finished_case(self, message: str) -> tuple[str, str] | None:
        for status in ("done", "failed"):
            if message.endswith(f" {status}"):
                head = message[:-len(status) - 1]
                at = head.find(" · ")
                while at >= 0:
                    if head[at + 3:] in self.names:
                        return head[at + 3:], status
                    at = head.find(" · ", at + 1)
        return None

    def case_of(self, message: str) -> tuple[str, str] | None:
        if not message.startswith("["):
            return None
        at = message.find("]")
        while at >= 0:
            if message[1:at] in self.names:
                return message[1:at], message[at + 1:].strip()
            at = message.find("]", at + 1)
        return None


class _LineTap:
    """The module's launcher, with every output line also given to ``tap`` (after the `EngineProcess` has it)."""

    def __init__(self, launcher: Any, tap: Callable[[str], None]) -> None:
        self._launcher, self._tap = launcher, tap
        self.own_session = getattr(launcher, "own_session", False)  # kill.py ends the tree by it

    def __getattr__(self, name: str) -> Any:
        return getattr(self._launcher, name)

    def launch(self, args, env_update, on_line, on_exit):
        def line(text: str) -> None:
            on_line(text)
            self._tap(text)

        return self._launcher.launch(args, env_update, line, on_exit)


def read_summary_rows(output: Path) -> dict[str, dict[str, str]]:
    """The engine's ``OUT/summary.csv`` by case (empty when absent or unreadable)."""
    try:
        with open(output / SUMMARY_FILE, newline="", encoding="utf-8", errors="replace") as f:
            return {row.get("case") or "": row for row in csv.DictReader(f)}
    except (OSError, csv.Error):
        return {}


def _engine_seconds(report: Mapping[str, Any]) -> float:
    timings = report.get("timings_s")
    total = timings.get("total") if isinstance(timings, Mapping) else None
    return float(total) if isinstance(total, (int, float)) else 0.0


def status_text(record: Mapping[str, Any]) -> str:
    """A ``batch_status`` line for people: ``batch: 3/10 cases (2 done, 0 skipped, 1 failed) · 0.42 CT/s · about
    16 s left``."""
    def count(key: str) -> int:
        value = record.get(key)
        return int(value) if isinstance(value, (int, float)) else 0

    done, skipped, failed, total = count("done"), count("skipped"), count("failed"), count("total")
    rate, eta = record.get("ct_per_s"), record.get("eta_s")
    text = f"batch: {done + skipped + failed}/{total} cases ({done} done, {skipped} skipped, {failed} failed)"
    if isinstance(rate, (int, float)):
        text += f" · {rate:.2f} CT/s"
    if done + skipped + failed >= total:
        return text + " · engine finished"
    return text + (f" · {format_duration(eta)} left" if isinstance(eta, (int, float)) else " · time left unknown")


def run_batch(options: BatchOptions, make_process: Callable[[], EngineProcess], python: str,
              env_update: Mapping[str, str] | None = None,
              on_loaded: Callable[[BatchCase, ResultView], None] | None = None,
              log: Callable[[str], None] = print) -> list[CaseOutcome]:
    """Segment every case of ``options.input`` with one engine batch process and load each finished case; a failed
    case is logged and the batch goes on. Outcomes in the cases' order. `ParameterError` (nothing run) when the
    input has no usable cases, the output folder cannot be made, or the engine refuses the batch (exit 2)."""
    cases = find_cases(options)
    try:
        options.output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ParameterError(f"the batch output {options.output} cannot be created ({exc}); give another folder") \
            from None
    by_name = {case.name: case for case in cases}
    number = {case.name: i for i, case in enumerate(cases, start=1)}
    outcomes: dict[str, CaseOutcome] = {}

    def prefix(name: str) -> str:
        return f"[{number[name]}/{len(cases)} {name}]"

    def skipped(case: BatchCase) -> None:
        log(f"{prefix(case.name)} skipped: results already in {options.output / case.name}")
        outcomes[case.name] = CaseOutcome(case.name, "skipped", 0.0)

    def failed(case: BatchCase, error: str, seconds: float = 0.0) -> None:
        log(f"{prefix(case.name)} failed: {error}")
        outcomes[case.name] = CaseOutcome(case.name, "failed", seconds, error)

    def load(case: BatchCase) -> None:
        """The engine wrote the case: load it as the Segment button does, then ``on_loaded``."""
        t0 = time.monotonic()
        try:
            result = load_case_result(options.output / case.name)
            if on_loaded is not None:
                on_loaded(case, result)
        except Exception as exc:  # noqa: BLE001 — one case's failure (engine, Slicer's loaders' RuntimeError…)
            failed(case, str(exc) if isinstance(exc, EXPECTED_CASE_ERRORS) else f"{type(exc).__name__}: {exc}",
                   time.monotonic() - t0)
            return
        seconds = _engine_seconds(result.report) + time.monotonic() - t0
        qc, total = read_qc(result.report), measure_rows(result.report)[-1]
        incomplete = "" if total.complete else " (incomplete)"
        log(f"{prefix(case.name)} done in {seconds:.1f} s: QC {qc.status}, {total.volume_mm3:.1f} mm³{incomplete}, "
            f"{total.lesion_count} lesion(s)")
        outcomes[case.name] = CaseOutcome(case.name, "done", seconds, qc=qc.status)

    def failure_of(case: BatchCase) -> str:
        row = read_summary_rows(options.output).get(case.name) or {}
        return row.get("error") or f"the engine reported the case failed; see {options.output / SUMMARY_FILE}"

    # Cases with results are skipped by the engine (same rule); say so now. Nothing else to do: no engine at all.
    previous = set() if options.overwrite else {c.name for c in cases if has_result(options.output / c.name)}
    for case in cases:
        if case.name in previous:
            skipped(case)
    if len(previous) == len(cases):
        return [outcomes[case.name] for case in cases]

    lines = EngineBatchLines(by_name)
    process = make_process()
    process.weights = BATCH_STAGE_WEIGHTS
    process.launcher = _LineTap(process.launcher, lines)
    command = engine_command(python, options.batch_parameters().as_arg_list())
    engine_error: list[BaseException] = []

    def run_engine() -> None:  # blocking; its lines arrive as events for this thread to handle
        try:
            process.run(command, env_update)
        except BaseException as exc:  # noqa: BLE001 — handled by the loading thread below
            engine_error.append(exc)

    log(f"batch: {len(cases) - len(previous)} case(s) to segment in one engine process")
    worker = threading.Thread(target=run_engine, name="iacseg-batch-engine", daemon=True)
    worker.start()
    try:
        while worker.is_alive() or not lines.events.empty():
            try:
                event = lines.events.get(timeout=0.1)
            except queue.Empty:
                continue
            if event[0] == "status":
                log(status_text(event[1]))
            elif event[0] == "stage":
                log(f"{prefix(event[1])} {event[2]}")
            elif event[1] not in outcomes:  # "finished"
                case = by_name[event[1]]
                if event[2] == "done":
                    load(case)
                else:
                    failed(case, failure_of(case))
    except BaseException:  # e.g. Ctrl-C: never leave the engine running
        process.cancel()
        worker.join(30)
        raise
    worker.join()

    error = engine_error[0] if engine_error else None
    internal = any(line.startswith(INTERNAL_ERROR_PREFIX) for line in process.log)
    # exit 1 without an internal error: some case failed, the engine went through every case (each one is in its
    # summary.csv, fresh); anything else stopped it early
    completed = error is None or (isinstance(error, EngineError) and error.exit_code == 1 and not internal)
    message = ""
    if not completed:
        message = str(error) if isinstance(error, EXPECTED_CASE_ERRORS) else f"{type(error).__name__}: {error}"
        if isinstance(error, EngineError) and error.exit_code == EXIT_BAD_INPUT and len(outcomes) == len(previous):
            raise ParameterError(message)  # the engine refused the batch before any case
        log(f"batch: the engine stopped: {message}")
    left = [case for case in cases if case.name not in outcomes]
    rows = read_summary_rows(options.output) if left and completed else {}
    for case in left:  # not followed line by line (an engine whose lines differ): its summary.csv says
        status = (rows.get(case.name) or {}).get("status")
        if status == "done":
            load(case)
        elif status == "failed":
            failed(case, rows[case.name].get("error") or "failed in the engine")
        elif completed:
            failed(case, f"the engine did not report this case; see {options.output / SUMMARY_FILE}")
        else:
            failed(case, f"not segmented: {message}")
    return [outcomes[case.name] for case in cases]


def exit_code(outcomes: Sequence[CaseOutcome]) -> int:
    """0 when no case failed, else 1."""
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def summary_text(outcomes: Sequence[CaseOutcome]) -> str:
    """Counts by outcome, then the QC statuses of the cases done in this run (when any)."""
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    text = f"IACSeg batch: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed"
    statuses = [o.qc for o in outcomes if o.status == "done"]
    if statuses:
        order = [s for s in QC_STATUSES if s in statuses] + sorted(set(statuses) - set(QC_STATUSES))
        text += "; QC " + ", ".join(f"{statuses.count(s)} {s}" for s in order)
    return text
