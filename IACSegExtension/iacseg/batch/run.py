"""Batch segmentation: many CTs → one output folder per case plus ``summary.csv``, streamed.

The models are loaded once; CTs are read ahead in worker processes while the current case is computed, and its
files are written by a writer thread while the next one is computed (`iacseg.batch.stream`). Every case runs the
same steps as ``iacseg segment`` (`iacseg.pipeline.analyse_case`, `write_case`), so its results are the same.
A failed case is recorded and the batch goes on; a re-run skips cases that already have a result (replaced only
with ``overwrite``); a folder ``OUT/<case>`` that IACSeg did not write is never touched. ``shard=(i, n)``
processes every n-th case starting at i, so several processes or nodes can share a cohort (`iacseg.batch.ranks`
does it under ``torchrun``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable

from ..core.contracts import REPORT_JSON
from ..core.errors import IACSegError, InputError
from ..core.progress import Progress, no_progress
from ..io.cohort import BatchCase, discover_cases
from ..pipeline import SegmentOptions, analyse_case, check_models, load_models, write_case
from .stream import BatchStatus, CaseReader, WriterPool
from .summary import check_summary_is_ours, read_summary, shard_summary_name, summary_row, write_summary

#: What a case may fail with and the batch goes on (anything else is a bug and stops the batch).
CASE_ERRORS = (IACSegError, OSError, ValueError, RuntimeError, MemoryError)


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` → ``(i, n)`` with 0 ≤ i < n; None → ``(0, 1)``."""
    if not text:
        return 0, 1
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise InputError(f"shard must look like 0/4 (this shard / number of shards), not {text!r}",
                         parameter="shard") from None
    if n < 1 or not 0 <= i < n:
        raise InputError(f"shard {text}: need 0 ≤ shard < count", parameter="shard")
    return i, n


def _previous_report(case_out: Path) -> dict | None:
    import json

    try:
        report = json.loads((case_out / REPORT_JSON).read_text())
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def _foreign_case_folder(case_out: Path) -> str | None:
    """Why ``OUT/<case>`` belongs to someone else (None: absent, empty, or an IACSeg result)."""
    from ..core.folder_guard import result_folder_problem

    if case_out.is_symlink():
        return "it is a symbolic link"
    if not case_out.exists():
        return None
    if not case_out.is_dir():
        return "it is a file"
    if not any(case_out.iterdir()):
        return None
    return result_folder_problem(case_out)


def run_batch(inputs: Iterable[str | Path], out_dir: str | Path, options: SegmentOptions | None = None,
              shard: tuple[int, int] = (0, 1), progress: Progress = no_progress,
              on_failure: Callable[[str, str], None] | None = None, *, read_workers: int = 1,
              write_workers: int = 1, prefetch: int = 2,
              on_status: Callable[[dict[str, Any]], None] | None = None) -> dict[str, int]:
    """Segment every case into ``out_dir/<case>/`` and keep ``out_dir/summary.csv`` up to date.

    Returns counts ``{"done", "skipped", "failed"}``. Cases that already hold an IACSeg result are skipped on
    re-runs, unless ``options.overwrite`` (then only those result folders are replaced). A folder
    ``out_dir/<case>`` that is not an IACSeg result is never touched: the case fails with a message saying so.
    ``out_dir`` itself is checked before any case runs (`iacseg.core.folder_guard.check_batch_output`: not an
    input, not inside an input folder, not the current/home folder, writable). ``on_failure(case, message)``
    is called for each failed case, ``on_status(status)`` after each case (`BatchStatus.to_dict`: done,
    skipped, failed, total, ct_per_s, eta_s, elapsed_s; plus the ``case`` and its ``case_status`` done|failed). ``read_workers`` processes read up to ``prefetch``
    CTs ahead (0: read in this process); ``write_workers`` threads write the outputs (0: in this thread).
    """
    from ..core.folder_guard import check_batch_output, check_case_name, check_output_folder, is_result_folder

    options = options or SegmentOptions()
    inputs = list(inputs)
    out_dir = check_batch_output(out_dir, inputs)
    cases = discover_cases(inputs)
    check_batch_output(out_dir, [case.input for case in cases])
    check_models(options)  # a damaged model is one refusal, not a failure of every case
    i, n = shard
    cases = cases[i::n]
    summary_path = out_dir / shard_summary_name(shard)
    check_summary_is_ours(summary_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = read_summary(summary_path)
    status = BatchStatus(total=len(cases))

    def report_status(message: str, case: BatchCase | None = None, case_status: str | None = None) -> None:
        progress("batch", status.finished / max(status.total, 1), f"{status.line()} · {message}")
        if case_status is not None and on_status is not None:
            on_status({**status.to_dict(), "case": case.name if case else None, "case_status": case_status})

    def failed(case: BatchCase, seconds: float, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, IACSegError) else f"{type(exc).__name__}: {exc}"
        rows[case.name] = summary_row(case, "failed", seconds, None, message)
        status.failed += 1
        write_summary(summary_path, rows)
        if on_failure is not None:
            on_failure(case.name, message)
        report_status(f"{case.name} failed", case, "failed")

    def written(case: BatchCase, result: Any, error: BaseException | None) -> None:
        if error is not None:
            if not isinstance(error, CASE_ERRORS):
                raise error
            failed(case, 0.0, error)
            return
        rows[case.name] = summary_row(case, "done", result.report["timings_s"]["total"], result.report)
        status.done += 1
        write_summary(summary_path, rows)
        report_status(f"{case.name} done", case, "done")

    to_run: list[tuple[BatchCase, Path]] = []
    for case in cases:
        try:
            case_out = check_case_name(case.name, out_dir)
            if not options.overwrite and is_result_folder(case_out) and (case_out / REPORT_JSON).is_file():
                status.skipped += 1
                if case.name not in rows or rows[case.name].get("status") != "done":
                    rows[case.name] = summary_row(case, "done", 0.0, _previous_report(case_out))
                continue
            problem = _foreign_case_folder(case_out)
            if problem:
                raise InputError(f"{case_out} exists and is not an IACSeg result ({problem}); it was left untouched "
                                 f"— move it away or choose another output folder", parameter="output")
            to_run.append((case, case_out))
        except CASE_ERRORS as exc:
            failed(case, 0.0, exc)
    write_summary(summary_path, rows)
    if to_run:
        models = load_models(options)
        folders = {case.name: folder for case, folder in to_run}
        writer = WriterPool(write_workers, written)
        reader = CaseReader([case for case, _ in to_run], options.series_uid, options.allow_gaps,
                            workers=read_workers, prefetch=prefetch)
        try:
            for read in reader:
                case, case_out = read.case, folders[read.case.name]
                report_status(f"{case.name} …")
                t0 = time.perf_counter()
                try:
                    if read.error is not None:
                        raise read.error
                    case_out = check_output_folder(case_out, inputs=[case.input], overwrite=options.overwrite)
                    analysis = analyse_case(read.volume, case.input, options, _case_progress(progress, case.name),
                                            models, read_s=read.seconds)
                    read.volume = None  # the analysis holds the CT now; the writer lets it go
                    writer.submit(case, lambda a=analysis, o=case_out: write_case(a, o, options))
                except CASE_ERRORS as exc:
                    failed(case, time.perf_counter() - t0 + read.seconds, exc)
        finally:
            reader.close()
            writer.close()
    write_summary(summary_path, rows)
    progress("batch", 1.0, f"{status.done} done, {status.skipped} skipped, {status.failed} failed")
    return {"done": status.done, "skipped": status.skipped, "failed": status.failed}


def _case_progress(progress: Progress, name: str) -> Progress:
    def report(stage: str, fraction: float, message: str = "") -> None:
        progress(stage, fraction, f"[{name}] {message}")

    return report
