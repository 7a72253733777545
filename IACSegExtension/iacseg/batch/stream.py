"""The streaming parts of a batch: CTs read ahead in worker processes (a bounded window), outputs written by a
small thread pool (bounded too), and the batch's running status (cases done, CT/s, ETA, failures).

Memory stays bounded whatever the cohort size: at most ``prefetch`` CTs are read ahead, one is being computed and
at most ``write_workers`` + 1 results wait for their files.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from ..io.cohort import BatchCase


def read_case(path: str, series_uid: str | None, allow_gaps: bool) -> tuple[Any, float]:
    """Read one CT (in a reader process): ``(CTVolume, seconds)``."""
    from ..io import read_ct

    t0 = time.perf_counter()
    vol = read_ct(path, series_uid=series_uid, allow_gaps=allow_gaps)
    return vol, time.perf_counter() - t0


@dataclass
class ReadResult:
    """A case's CT, or why it could not be read (``error``: the exception, raised again by the caller)."""

    case: BatchCase
    volume: Any = None
    seconds: float = 0.0
    error: BaseException | None = None


class CaseReader:
    """Reads ``cases`` in order, ``prefetch`` ahead, in ``workers`` processes (0: in this process, one at a time).

    Iterating yields a `ReadResult` per case in the cases' order. A reader process that dies (killed, out of
    memory) fails only the case it was reading: the pool is started again for the others.
    """

    def __init__(self, cases: Sequence[BatchCase], series_uid: str | None = None, allow_gaps: bool = False,
                 workers: int = 1, prefetch: int = 2) -> None:
        self.cases = list(cases)
        self.args = (series_uid, allow_gaps)
        self.workers = max(0, int(workers))
        self.prefetch = max(1, int(prefetch))
        self._pool: ProcessPoolExecutor | None = None

    def _start(self) -> ProcessPoolExecutor:
        # spawn: a forked child would inherit torch's and ITK's thread pools in an undefined state
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def __iter__(self) -> Iterator[ReadResult]:
        if self.workers == 0:
            for case in self.cases:
                try:
                    vol, seconds = read_case(str(case.input), *self.args)
                    yield ReadResult(case, vol, seconds)
                except Exception as exc:  # noqa: BLE001 — recorded as the case's failure by the batch
                    yield ReadResult(case, error=exc)
            return
        pool = self._start()
        window: deque[tuple[BatchCase, Future]] = deque()
        todo = iter(self.cases)
        try:
            while True:
                while len(window) < self.prefetch:
                    case = next(todo, None)
                    if case is None:
                        break
                    window.append((case, pool.submit(read_case, str(case.input), *self.args)))
                if not window:
                    return
                case, future = window.popleft()
                try:
                    vol, seconds = future.result()
                    yield ReadResult(case, vol, seconds)
                except BrokenProcessPool:
                    yield ReadResult(case, error=RuntimeError("the reader process stopped while reading this CT "
                                                              "(out of memory or killed); the batch went on"))
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = self._start()
                    window = deque((c, pool.submit(read_case, str(c.input), *self.args)) for c, _ in window)
                except Exception as exc:  # noqa: BLE001
                    yield ReadResult(case, error=exc)
        finally:
            self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class WriterPool:
    """Runs write jobs in ``workers`` threads (0: at once, in this thread); `submit` waits while more than
    ``workers`` jobs are pending, so finished results do not pile up in memory. ``done(key, result, error)``
    is called in the submitting thread, in submission order, from `submit`, `drain` or `close`."""

    def __init__(self, workers: int, done: Callable[[Any, Any, BaseException | None], None]) -> None:
        self.workers = max(0, int(workers))
        self.done = done
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="iacseg-write") if self.workers else None
        self._pending: deque[tuple[Any, Future]] = deque()

    def submit(self, key: Any, job: Callable[[], Any]) -> None:
        if self._pool is None:
            try:
                result = job()
            except Exception as exc:  # noqa: BLE001
                self.done(key, None, exc)
            else:
                self.done(key, result, None)
            return
        self._pending.append((key, self._pool.submit(job)))
        while len(self._pending) > self.workers:
            self._finish_oldest()

    def _finish_oldest(self) -> None:
        key, future = self._pending.popleft()
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001
            self.done(key, None, exc)
        else:
            self.done(key, result, None)

    def drain(self) -> None:
        """Wait for every pending write."""
        while self._pending:
            self._finish_oldest()

    def close(self) -> None:
        try:
            self.drain()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)


@dataclass
class BatchStatus:
    """Where a batch stands: cases done/skipped/failed of ``total``, throughput and the time left."""

    total: int
    done: int = 0
    skipped: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> int:
        return self.done + self.skipped + self.failed

    def ct_per_s(self) -> float:
        """Cases computed (done or failed) per second since the batch started; skipped ones do not count."""
        elapsed = time.monotonic() - self.started
        return (self.done + self.failed) / elapsed if elapsed > 0 else 0.0

    def eta_s(self) -> float | None:
        rate = self.ct_per_s()
        return (self.total - self.finished) / rate if rate > 0 else None

    def to_dict(self) -> dict[str, Any]:
        eta = self.eta_s()
        return {"done": self.done, "skipped": self.skipped, "failed": self.failed, "total": self.total,
                "ct_per_s": round(self.ct_per_s(), 3), "eta_s": None if eta is None else round(eta, 1),
                "elapsed_s": round(time.monotonic() - self.started, 1)}

    def line(self) -> str:
        """One line for people: ``12/20 · 1.83 CT/s · ETA 0:00:06 · 0 failed``."""
        eta = self.eta_s()
        eta_text = "—" if eta is None else time.strftime("%H:%M:%S", time.gmtime(eta))
        return (f"{self.finished}/{self.total} · {self.ct_per_s():.2f} CT/s · ETA {eta_text} · "
                f"{self.failed} failed")
