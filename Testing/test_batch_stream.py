"""The streaming batch (models loaded once, CTs read ahead in reader processes, outputs written behind) gives the
same results as ``iacseg segment`` case by case; its memory window is bounded; its status says how far it is; and
``torchrun --nproc_per_node 2 -m iacseg batch`` (gloo, CPU) writes the same summary as one process."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from iacseg.batch import run_batch
from iacseg.batch.stream import BatchStatus, CaseReader, WriterPool
from iacseg.cli.main import main
from iacseg.core.contracts import LABELS_FILE, LANDMARKS_FILE, REPORT_JSON
from iacseg.io.cohort import BatchCase
from iacseg.outputs.markups import read_landmarks
from iacseg.pipeline import SegmentOptions, segment_case

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Three phantom cases: two NIfTI, one gantry-tilted DICOM series."""
    from iacseg.phantom import generate_cases

    root = tmp_path_factory.mktemp("cohort")
    generate_cases(root, 70101, 2, slice_mm=5.0)
    (tilted,) = generate_cases(tmp_path_factory.mktemp("tilted"), 70303, 1, slice_mm=5.0, dicom=True, tilt_deg=15.0)
    (root / "tilted").mkdir()
    (root / "tilted" / "dicom").symlink_to(tilted / "dicom", target_is_directory=True)
    return root


def _result(folder: Path) -> dict:
    report = json.loads((folder / REPORT_JSON).read_text())
    return {"labels": sitk.GetArrayFromImage(sitk.ReadImage(str(folder / LABELS_FILE))),
            "landmarks": {n: (lm.z_mm, lm.position) for n, lm in read_landmarks(folder / LANDMARKS_FILE).items()},
            "segments": report["segments"], "total": report["total"], "qc": report["qc"],
            "risk": report.get("risk_group")}


def test_the_streamed_batch_equals_segment_case_by_case(cohort, tmp_path):
    options = SegmentOptions(device="cpu")
    statuses: list[dict] = []
    counts = run_batch([cohort], tmp_path / "batch", options, read_workers=1, write_workers=1, prefetch=2,
                       on_status=statuses.append)
    names = sorted(p.name for p in cohort.iterdir())
    assert counts == {"done": 3, "skipped": 0, "failed": 0}
    for name in names:
        case = cohort / name
        ct = case / "ct.nii.gz" if (case / "ct.nii.gz").is_file() else case / "dicom"
        segment_case(ct, tmp_path / "single" / name, SegmentOptions(device="cpu"))
        streamed, single = _result(tmp_path / "batch" / name), _result(tmp_path / "single" / name)
        assert np.array_equal(streamed.pop("labels"), single.pop("labels")), name
        assert streamed == single, name
    assert [s["done"] for s in statuses] == [1, 2, 3] and statuses[-1]["total"] == 3
    assert sorted(s["case"] for s in statuses) == names and {s["case_status"] for s in statuses} == {"done"}
    assert statuses[-1]["ct_per_s"] > 0 and statuses[-1]["eta_s"] == 0
    rows = {r["case"]: r for r in csv.DictReader((tmp_path / "batch" / "summary.csv").open())}
    assert sorted(rows) == names and all(r["status"] == "done" for r in rows.values())


def test_jsonl_progress_has_a_status_line_per_case_and_a_rerun_skips(cohort, tmp_path, capsys):
    out = tmp_path / "out"
    one = cohort / "phantom_70101"
    args = ["batch", str(one), "-o", str(out), "--progress", "jsonl", "--device", "cpu", "--read-workers", "0",
            "--write-workers", "0"]
    assert main(args) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    status = [x for x in lines if x["stage"] == "batch_status"]
    assert len(status) == 1 and status[0]["done"] == 1 and status[0]["failed"] == 0
    assert status[0]["case"] == "phantom_70101" and status[0]["case_status"] == "done"
    assert {"ct_per_s", "eta_s", "elapsed_s", "total"} <= set(status[0])
    assert main(args) == 0
    status = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"batch_status"' in x]
    assert status == []  # nothing computed: the finished case was skipped


def test_a_case_that_cannot_be_read_fails_alone_and_the_others_finish(cohort, tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "good").symlink_to(cohort / "phantom_70101", target_is_directory=True)
    (cases / "broken.nii.gz").write_bytes(b"not an image")
    failures: list[tuple[str, str]] = []
    counts = run_batch([cases], tmp_path / "out", SegmentOptions(device="cpu"), read_workers=1,
                       on_failure=lambda case, message: failures.append((case, message)))
    assert counts == {"done": 1, "skipped": 0, "failed": 1}
    assert failures[0][0] == "broken" and "broken.nii.gz" in failures[0][1]  # the reader process's message
    assert (tmp_path / "out" / "good" / REPORT_JSON).is_file() and not (tmp_path / "out" / "broken").exists()


def test_the_reader_keeps_at_most_prefetch_cases_ahead(cohort, monkeypatch):
    """In-process reading is lazy, and a reader with processes never has more than ``prefetch`` reads submitted."""
    import iacseg.batch.stream as stream

    cases = [BatchCase(p.name, p / "ct.nii.gz") for p in sorted(cohort.iterdir()) if (p / "ct.nii.gz").is_file()]
    reads: list[str] = []
    monkeypatch.setattr(stream, "read_case", lambda path, *a: (reads.append(path) or ("volume", 0.0)))
    lazy = iter(CaseReader(cases, workers=0))
    assert next(lazy).volume == "volume" and len(reads) == 1
    submitted: list[int] = []

    class CountingPool:
        def submit(self, fn, *args):
            from concurrent.futures import Future

            submitted.append(args[0])
            future: Future = Future()
            future.set_result(("volume", 0.0))
            return future

        def shutdown(self, *a, **k) -> None:
            pass

    reader = CaseReader(cases * 3, workers=1, prefetch=2)
    monkeypatch.setattr(reader, "_start", lambda: CountingPool())
    seen = 0
    for result in reader:
        seen += 1
        assert len(submitted) <= seen + 1  # at most prefetch (2) reads out: the one taken and one ahead
    assert seen == len(cases) * 3


def test_the_writer_pool_bounds_pending_writes_and_reports_in_order():
    done: list = []
    running = {"now": 0, "most": 0}
    lock = threading.Lock()

    def job(n: int):
        def run():
            with lock:
                running["now"] += 1
                running["most"] = max(running["most"], running["now"])
            time.sleep(0.02)
            with lock:
                running["now"] -= 1
            if n == 3:
                raise OSError("disk full")
            return n

        return run

    pool = WriterPool(2, lambda key, result, error: done.append((key, result, None if error is None else str(error))))
    for n in range(6):
        pool.submit(n, job(n))
        assert len(pool._pending) <= 2
    pool.close()
    assert [d[0] for d in done] == list(range(6)) and done[3] == (3, None, "disk full") and running["most"] <= 2


def test_status_line_says_done_rate_eta_and_failures():
    status = BatchStatus(total=10, started=time.monotonic() - 4.0)
    status.done, status.failed, status.skipped = 3, 1, 2
    assert status.finished == 6 and status.ct_per_s() == pytest.approx(1.0, rel=0.05)
    assert status.eta_s() == pytest.approx(4.0, rel=0.05)
    line = status.line()
    assert line.startswith("6/10 · 1.0") and "ETA 00:00:0" in line and line.endswith("1 failed")


@pytest.mark.slow
def test_torchrun_two_processes_write_the_same_summary_as_one(cohort, tmp_path):
    """``torchrun --nproc_per_node 2 -m iacseg batch`` on CPU (gloo): rank 0 merges both shards' summaries."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "IACSegExtension")}
    single = [sys.executable, "-m", "iacseg", "batch", str(cohort), "-o", str(tmp_path / "one"), "--device", "cpu",
              "--progress", "none", "--read-workers", "0"]
    ranked = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
              "-m", "iacseg", "batch", str(cohort), "-o", str(tmp_path / "two"), "--device", "cpu",
              "--progress", "none", "--read-workers", "0"]
    for command in (single, ranked):
        run = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
        assert run.returncode == 0, run.stderr[-3000:]

    def rows(folder: Path) -> dict:
        with open(folder / "summary.csv", newline="") as f:
            return {r["case"]: {k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)}

    assert rows(tmp_path / "two") == rows(tmp_path / "one") and len(rows(tmp_path / "one")) == 3
    assert sorted(p.name for p in (tmp_path / "two").glob("summary_shard*")) == ["summary_shard0of2.csv",
                                                                                "summary_shard1of2.csv"]
    for name in rows(tmp_path / "one"):
        assert np.array_equal(_result(tmp_path / "two" / name)["labels"], _result(tmp_path / "one" / name)["labels"])
