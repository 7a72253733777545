"""The headless batch flow (``Slicer --no-main-window --python-script batch.py -- --input DIR --output DIR``).

Same code path as the Segment button: `SegmentParameters` → `EngineProcess.run` (the engine CLI in a
process, blocking) → `load_case_result` → an optional ``on_loaded`` callback (in Slicer: show the nodes and
save ``.seg.nrrd``/``.mrk.json`` through Slicer). Cases are found by the engine's own `discover_cases`. It writes
no table of its own (each case's ``report.json``/``report.csv`` are the engine's); the log line of each case and
the summary carry the case's QC status. A case that fails for any reason (the engine, or Slicer not loading or saving
its files) is logged and the batch goes on; unusable arguments or inputs are a `ParameterError` before any case runs.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from iacseg.io.cohort import BatchCase, discover_cases
from iacseg.core.contracts import REPORT_JSON
from iacseg.core.errors import IACSegError
from iacseg.core.folder_guard import is_result_folder

from .parameters import DEVICES, ParameterError, SegmentParameters, engine_command, parse_threshold_text
from .process import EngineError, EngineProcess, ProgressUpdate
from .results import QC_STATUSES, ResultView, load_case_result, measure_rows, read_qc


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

    def case_parameters(self, case: BatchCase) -> SegmentParameters:
        return SegmentParameters(case.input, self.output / case.name, self.model, self.landmark_model, self.device,
                                 self.threshold, self.overwrite)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="batch.py", description="Segment every CT of a folder with IACSeg (headless).")
    p.add_argument("--input", required=True, help="a folder of cases (a subfolder or image file per case), or one CT")
    p.add_argument("--output", required=True, help="output folder: one subfolder per case")
    p.add_argument("--model", default=None, help="calcification model folder or name (default: bundled)")
    p.add_argument("--landmark-model", default=None, help="landmark model folder or name (default: bundled)")
    p.add_argument("--device", default="auto", help=f"{' | '.join(DEVICES)} | cuda:N (default auto)")
    p.add_argument("--threshold", default="auto", help="probability threshold or auto (default)")
    p.add_argument("--overwrite", action="store_true", help="segment again cases that already have results")
    p.add_argument("--no-slicer-files", dest="slicer_files", action="store_false",
                   help="do not load results into Slicer nor save the Slicer-written .seg.nrrd/.mrk.json")
    return p


def parse_batch_args(argv: Sequence[str]) -> BatchOptions:
    """Script arguments (after Slicer's ``--``) → `BatchOptions`; `ParameterError` for unusable values."""
    argv = list(argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    options = BatchOptions(Path(args.input), Path(args.output), args.model, args.landmark_model, args.device,
                           parse_threshold_text(args.threshold), args.overwrite, args.slicer_files)
    if not options.input.exists():
        raise ParameterError(f"the batch input {options.input} does not exist; give a folder of CTs")
    if options.output.is_file():
        raise ParameterError(f"the batch output {options.output} is a file; give a folder")
    from iacseg.core.folder_guard import check_batch_output

    try:  # the engine's own rules: never the input folder (or inside it), the current/home folder, or unwritable
        check_batch_output(options.output, [options.input])
    except IACSegError as exc:
        raise ParameterError(str(exc)) from None
    SegmentParameters(options.input, options.output, options.model, options.landmark_model, options.device,
                      options.threshold).validate()
    find_cases(options)  # an empty folder or two cases of one name: refused now, before anything runs
    return options


def find_cases(options: BatchOptions) -> list[BatchCase]:
    """The cases of ``options.input`` (the engine's `discover_cases`); `ParameterError` when there are none or two
    share a name."""
    try:
        return discover_cases([options.input])
    except IACSegError as exc:
        raise ParameterError(str(exc)) from None


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


def run_batch(options: BatchOptions, make_process: Callable[[], EngineProcess], python: str,
              env_update: Mapping[str, str] | None = None,
              on_loaded: Callable[[BatchCase, ResultView], None] | None = None,
              log: Callable[[str], None] = print) -> list[CaseOutcome]:
    """Segment every case of ``options.input``; a failed case is logged and the batch goes on. `ParameterError`
    (nothing run) when the input has no usable cases or the output folder cannot be made."""
    cases = find_cases(options)
    try:
        options.output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ParameterError(f"the batch output {options.output} cannot be created ({exc}); give another folder") \
            from None
    outcomes: list[CaseOutcome] = []
    for number, case in enumerate(cases, start=1):
        params = options.case_parameters(case)
        prefix = f"[{number}/{len(cases)} {case.name}]"
        ours = is_result_folder(params.output_dir)
        if ours and (params.output_dir / REPORT_JSON).is_file() and not options.overwrite:
            log(f"{prefix} skipped: results already in {params.output_dir}")
            outcomes.append(CaseOutcome(case.name, "skipped", 0.0))
            continue
        if not ours and params.output_dir.exists() and (not params.output_dir.is_dir()
                                                         or any(params.output_dir.iterdir())):
            error = (f"{params.output_dir} exists and is not an IACSeg result; it was left untouched — move it "
                     f"away or choose another --output")
            log(f"{prefix} failed: {error}")
            outcomes.append(CaseOutcome(case.name, "failed", 0.0, error))
            continue
        t0 = time.monotonic()
        process = make_process()
        process.on_progress = lambda update, p=prefix: log(f"{p} {overall_text(update)}")
        try:
            process.run(engine_command(python, params.as_arg_list()), env_update)
            result = load_case_result(params.output_dir)
            if on_loaded is not None:
                on_loaded(case, result)
        except Exception as exc:  # noqa: BLE001 — one case's failure (engine, Slicer's loaders' RuntimeError…)
            error = str(exc) if isinstance(exc, EXPECTED_CASE_ERRORS) else f"{type(exc).__name__}: {exc}"
            log(f"{prefix} failed: {error}")
            outcomes.append(CaseOutcome(case.name, "failed", time.monotonic() - t0, error))
            continue
        seconds = time.monotonic() - t0
        qc, total = read_qc(result.report), measure_rows(result.report)[-1]
        incomplete = "" if total.complete else " (incomplete)"
        log(f"{prefix} done in {seconds:.1f} s: QC {qc.status}, {total.volume_mm3:.1f} mm³{incomplete}, "
            f"{total.lesion_count} lesion(s)")
        outcomes.append(CaseOutcome(case.name, "done", seconds, qc=qc.status))
    return outcomes


def overall_text(update: ProgressUpdate) -> str:
    return f"{update.overall * 100:5.1f}% {update.label()}"


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
