"""Warnings that pydicom, numpy and ITK raise while a CT is read go into the result's warnings, not the terminal.

`capture_library_warnings` records Python warnings (pydicom's header complaints, numpy's overflow warnings)
and pydicom's log records for the duration of a read; `capture_native_stderr` catches what ITK's C++ code
prints straight to file descriptor 2. Both give short one-line texts; quoted values are replaced by ``'…'``
so that no DICOM free text (names, descriptions) is copied into a report.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator

MAX_TEXT = 160
MAX_DISTINCT = 5
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|b'[^']*'")


def clean(text: str) -> str:
    """One line, quoted values masked, at most 160 characters."""
    line = " ".join(_QUOTED.sub("'…'", str(text)).split())
    return line if len(line) <= MAX_TEXT else line[: MAX_TEXT - 1] + "…"


def summarise(source: str, texts: list[str]) -> list[str]:
    """``["pydicom: <text> (×3)", …]`` — identical texts counted once, at most five distinct ones."""
    counts = Counter(clean(t) for t in texts if str(t).strip())
    out = [f"{source}: {text}" + (f" (×{n})" if n > 1 else "") for text, n in list(counts.items())[:MAX_DISTINCT]]
    rest = sum(counts.values()) - sum(n for _, n in list(counts.items())[:MAX_DISTINCT])
    if rest:
        out.append(f"{source}: {rest} more warnings while reading")
    return out


def _source(warning: warnings.WarningMessage) -> str:
    module = (warning.filename or "").replace("\\", "/")
    for name in ("pydicom", "numpy", "SimpleITK", "scipy", "nibabel"):
        if f"/{name}/" in module:
            return name
    return warning.category.__name__


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.records.append(record.getMessage())
        except Exception:  # noqa: BLE001 — a broken log record must not break reading
            pass


@contextlib.contextmanager
def capture_library_warnings() -> Iterator[list[str]]:
    """Collect Python warnings and pydicom log records into the yielded list (filled on exit)."""
    collected: list[str] = []
    logger = logging.getLogger("pydicom")
    handler = _Collect()
    old_propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield collected
    finally:
        logger.removeHandler(handler)
        logger.propagate = old_propagate
        by_source: dict[str, list[str]] = {}
        for w in caught:
            by_source.setdefault(_source(w), []).append(str(w.message))
        warned = {str(w.message) for w in caught}
        logged = [r for r in handler.records if r not in warned]  # pydicom both warns and logs the same text
        if logged:
            by_source.setdefault("pydicom", []).extend(logged)
        for source, texts in by_source.items():
            collected.extend(summarise(source, texts))


@contextlib.contextmanager
def capture_native_stderr(source: str) -> Iterator[list[str]]:
    """Redirect file descriptor 2 (C/C++ libraries print there) while inside; its text lands in the list."""
    collected: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield collected  # no real stderr (e.g. some embedded interpreters): nothing to redirect
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield collected
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read(65536).decode("utf-8", "replace")
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            messages = [re.sub(r"^\w+ \(0x[0-9a-f]+\): ", "", ln) for ln in lines
                        if not ln.startswith(("WARNING: In ", "ITK ERROR", "Exception thrown"))]
            collected.extend(summarise(source, messages))
