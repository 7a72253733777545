"""Turning `Progress` calls into a tqdm bar (people), JSON lines (programs, e.g. the Slicer module) or nothing."""

from __future__ import annotations

import json
import sys
import time
from typing import Callable, TextIO

from ..core.progress import Progress, no_progress

PROGRESS_MODES = ("bar", "jsonl", "none")


class JsonLinesProgress:
    """Writes ``{"stage", "fraction", "message", "elapsed_s"}`` per call, one JSON object per line, flushed."""

    def __init__(self, stream: TextIO | None = None, prefix: dict | None = None) -> None:
        self.stream = stream or sys.stdout
        self.prefix = prefix or {}
        self.t0 = time.monotonic()

    def __call__(self, stage: str, fraction: float, message: str = "") -> None:
        record = {**self.prefix, "stage": stage, "fraction": round(float(fraction), 4), "message": message,
                  "elapsed_s": round(time.monotonic() - self.t0, 2)}
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()


class BarProgress:
    """A tqdm bar on stderr showing the current stage; `close()` ends it."""

    def __init__(self, desc: str = "") -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=1000, desc=desc, unit="‰", file=sys.stderr, leave=False,
                        bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")
        self.desc = desc

    def __call__(self, stage: str, fraction: float, message: str = "") -> None:
        n = int(round(max(0.0, min(1.0, fraction)) * 1000))
        self.bar.set_description_str(f"{self.desc}{stage}".strip(), refresh=False)
        self.bar.set_postfix_str(message[:60], refresh=False)
        self.bar.update(n - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def make_progress(mode: str, desc: str = "", prefix: dict | None = None) -> tuple[Progress, Callable[[], None]]:
    """A progress callable for ``mode`` and a function that closes it."""
    if mode == "jsonl":
        return JsonLinesProgress(prefix=prefix), lambda: None
    if mode == "bar" and sys.stderr.isatty():
        bar = BarProgress(desc)
        return bar, bar.close
    return no_progress, lambda: None
