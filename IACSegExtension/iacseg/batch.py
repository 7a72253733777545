"""Batch segmentation: many CTs → one output folder per case plus ``summary.csv``.

A failed case is recorded and the batch goes on; a re-run skips cases that already have a result (replaced only
with ``overwrite``); a folder ``OUT/<case>`` that IACSeg did not write is never touched.
``shard=(i, n)`` processes every n-th case starting at i, so several processes or nodes can share a cohort.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Callable, Iterable

from .core.contracts import REPORT_JSON, SEGMENTS
from .core.errors import IACSegError, InputError
from .core.files import write_text_atomic
from .io.cohort import BatchCase, discover_cases
from .pipeline import SegmentOptions, check_models, segment_case
from .core.progress import Progress, no_progress

SUMMARY_FILE = "summary.csv"


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


SUMMARY_COLUMNS = ["case", "status", "qc_status", "seconds", "total_volume_mm3", "total_agatston", "lesion_count",
                   "risk_group", *[f"{name}_mm3" for name in SEGMENTS.values()], "not_assessable", "qc_reasons",
                   "warnings", "error", "input"]
NOT_ASSESSABLE = "not assessable"


def _summary_row(case: BatchCase, status: str, seconds: float, report: dict | None, error: str = "") -> dict:
    row = {"case": case.name, "status": status, "seconds": f"{seconds:.1f}", "error": error, "input": str(case.input)}
    if report:
        total = report.get("total", {})
        row["total_volume_mm3"] = total.get("volume_mm3", "")
        row["total_agatston"] = total.get("agatston", "")
        row["lesion_count"] = total.get("lesion_count", "")
        rg = report.get("risk_group", "")
        row["risk_group"] = rg.get("group", "") if isinstance(rg, dict) else rg
        for name in SEGMENTS.values():
            seg = report.get("segments", {}).get(name, {})
            row[f"{name}_mm3"] = NOT_ASSESSABLE if seg.get("assessable") is False else seg.get("volume_mm3", "")
        qc = report.get("qc") or {}
        row["qc_status"] = qc.get("status", "")
        row["not_assessable"] = " ".join(qc.get("not_assessable", []))
        row["qc_reasons"] = " | ".join(r.get("message", "") for r in qc.get("reasons", []))
        row["warnings"] = " | ".join(report.get("warnings", []))
    return row


def _read_summary(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {row["case"]: row for row in csv.DictReader(f)}


def _write_summary(path: Path, rows: dict[str, dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for name in sorted(rows):
        writer.writerow(rows[name])
    write_text_atomic(path, buf.getvalue())


def _check_summary_is_ours(path: Path) -> None:
    """Refuse to replace a ``summary*.csv`` in the output folder that iacseg batch did not write."""
    if not (path.exists() or path.is_symlink()):
        return
    try:
        with open(path, newline="") as f:
            header = f.readline()
    except (OSError, UnicodeDecodeError):
        header = ""
    if path.is_symlink() or not path.is_file() or not header.startswith("case,status,"):
        raise InputError(f"{path} exists and was not written by iacseg batch; choose another output folder — "
                         f"nothing was changed", parameter="output")


def _previous_report(case_out: Path) -> dict | None:
    import json

    try:
        report = json.loads((case_out / REPORT_JSON).read_text())
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def _foreign_case_folder(case_out: Path) -> str | None:
    """Why ``OUT/<case>`` belongs to someone else (None: absent, empty, or an IACSeg result)."""
    from .core.folder_guard import result_folder_problem

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
              on_failure: Callable[[str, str], None] | None = None) -> dict[str, int]:
    """Segment every case into ``out_dir/<case>/`` and keep ``out_dir/summary.csv`` up to date.

    Returns counts ``{"done", "skipped", "failed"}``. Cases that already hold an IACSeg result are skipped on
    re-runs, unless ``options.overwrite`` (then only those result folders are replaced). A folder
    ``out_dir/<case>`` that is not an IACSeg result is never touched: the case fails with a message saying so.
    ``out_dir`` itself is checked before any case runs (`iacseg.core.folder_guard.check_batch_output`: not an
    input, not inside an input folder, not the current/home folder, writable). ``on_failure(case, message)``
    is called for each failed case.
    """
    from .core.folder_guard import check_batch_output, check_case_name, is_result_folder

    options = options or SegmentOptions()
    inputs = list(inputs)
    out_dir = check_batch_output(out_dir, inputs)
    cases = discover_cases(inputs)
    check_batch_output(out_dir, [case.input for case in cases])
    check_models(options)  # a damaged model is one refusal, not a failure of every case
    i, n = shard
    cases = cases[i::n]
    summary_path = out_dir / (SUMMARY_FILE if n == 1 else f"summary_shard{i}of{n}.csv")
    _check_summary_is_ours(summary_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = _read_summary(summary_path)
    counts = {"done": 0, "skipped": 0, "failed": 0}
    for number, case in enumerate(cases):
        progress("batch", number / max(len(cases), 1), f"case {number + 1}/{len(cases)}: {case.name}")
        t0 = time.perf_counter()
        try:
            case_out = check_case_name(case.name, out_dir)
            if not options.overwrite and is_result_folder(case_out) and (case_out / REPORT_JSON).is_file():
                counts["skipped"] += 1
                if case.name not in rows or rows[case.name].get("status") != "done":
                    rows[case.name] = _summary_row(case, "done", 0.0, _previous_report(case_out))
                continue
            problem = _foreign_case_folder(case_out)
            if problem:
                raise InputError(f"{case_out} exists and is not an IACSeg result ({problem}); it was left untouched "
                                 f"— move it away or choose another output folder", parameter="output")
            result = segment_case(case.input, case_out, options, progress=_case_progress(progress, case.name))
            rows[case.name] = _summary_row(case, "done", time.perf_counter() - t0, result.report)
            counts["done"] += 1
        except (IACSegError, OSError, ValueError, RuntimeError, MemoryError) as exc:
            message = str(exc) if isinstance(exc, IACSegError) else f"{type(exc).__name__}: {exc}"
            rows[case.name] = _summary_row(case, "failed", time.perf_counter() - t0, None, message)
            counts["failed"] += 1
            if on_failure is not None:
                on_failure(case.name, message)
        _write_summary(summary_path, rows)
    _write_summary(summary_path, rows)
    progress("batch", 1.0, f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed")
    return counts


def _case_progress(progress: Progress, name: str) -> Progress:
    def report(stage: str, fraction: float, message: str = "") -> None:
        progress(stage, fraction, f"[{name}] {message}")

    return report
