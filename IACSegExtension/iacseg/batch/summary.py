"""``summary.csv`` of a batch: one row per case (status, QC, measures per segment, error), written atomically after
every case; a shard writes ``summary_shard{i}of{n}.csv`` and `merge_summaries` joins the shards into one."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..core.contracts import SEGMENTS
from ..core.errors import InputError
from ..core.files import write_text_atomic
from ..io.cohort import BatchCase

SUMMARY_FILE = "summary.csv"


def shard_summary_name(shard: tuple[int, int]) -> str:
    """``summary.csv`` for a whole run, ``summary_shard{i}of{n}.csv`` for shard ``(i, n)``."""
    i, n = shard
    return SUMMARY_FILE if n == 1 else f"summary_shard{i}of{n}.csv"


SUMMARY_COLUMNS = ["case", "status", "qc_status", "seconds", "total_volume_mm3", "total_agatston", "lesion_count",
                   "risk_group", *[f"{name}_mm3" for name in SEGMENTS.values()], "not_assessable", "qc_reasons",
                   "warnings", "error", "input"]
NOT_ASSESSABLE = "not assessable"


def summary_row(case: BatchCase, status: str, seconds: float, report: dict | None, error: str = "") -> dict:
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


def read_summary(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {row["case"]: row for row in csv.DictReader(f)}


def write_summary(path: Path, rows: dict[str, dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for name in sorted(rows):
        writer.writerow(rows[name])
    write_text_atomic(path, buf.getvalue())


def check_summary_is_ours(path: Path) -> None:
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


def merge_summaries(out_dir: str | Path, count: int) -> Path:
    """Join the ``count`` shard summaries in ``out_dir`` into ``summary.csv`` (rows sorted by case); a missing
    shard file is an `InputError` naming it. Returns the path written."""
    out_dir = Path(out_dir)
    rows: dict[str, dict] = {}
    for i in range(count):
        path = out_dir / shard_summary_name((i, count))
        if not path.is_file():
            raise InputError(f"{path} is missing: shard {i} of {count} did not finish; run the batch again "
                             "(finished cases are skipped)", parameter="shard")
        check_summary_is_ours(path)
        rows.update(read_summary(path))
    target = out_dir / SUMMARY_FILE
    check_summary_is_ours(target)
    write_summary(target, rows)
    return target
