"""Checks on numeric command-line options, before any work: finite, in range, ordered.

argparse's ``type=float`` accepts ``nan`` and ``inf``; `check_numbers` refuses those for every option, and
counts/sizes that must be positive. Each failure is one `InputError` sentence naming the option.
"""

from __future__ import annotations

import argparse
import math

from ..core.errors import InputError

#: options (argparse dest) that count or size something and must be at least 1 when given
POSITIVE_INTS = ("count", "epochs", "steps_per_epoch", "batch", "phantoms", "matrix", "phantom_matrix", "patch",
                 "roi")
#: options (argparse dest) that are lengths or rates and must be > 0 when given
POSITIVE_FLOATS = ("slice_mm", "phantom_slice_mm", "lr")


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def check_numbers(args: argparse.Namespace) -> None:
    """Refuse a NaN/infinite float option, and a count/size/length option that is not positive."""
    for dest, value in vars(args).items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise InputError(f"{_flag(dest)} must be a finite number, not {v}")
            if dest in POSITIVE_INTS and isinstance(v, int) and not isinstance(v, bool) and v < 1:
                raise InputError(f"{_flag(dest)} must be at least 1, not {v}")
            if dest in POSITIVE_FLOATS and isinstance(v, (int, float)) and not isinstance(v, bool) and v <= 0:
                raise InputError(f"{_flag(dest)} must be greater than 0, not {v:g}")


def parse_cutpoints(text: str | None, count: int = 2) -> list[float] | None:
    """``"30,100"`` → ``[30.0, 100.0]``: ``count`` finite volumes in mm³, > 0, strictly increasing."""
    if text is None or not str(text).strip():
        return None
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise InputError(f"--risk-cutpoints must be numbers separated by commas, not {text!r}") from None
    if len(values) != count:
        raise InputError(f"--risk-cutpoints needs {count} cut points in mm³ (low|moderate and moderate|high, e.g. "
                         f"30,100), not {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"--risk-cutpoints must be finite volumes in mm³ (e.g. 30,100), not {text!r}")
    if values[0] <= 0 or any(b <= a for a, b in zip(values, values[1:])):
        raise InputError(f"--risk-cutpoints must be volumes above 0 mm³ in increasing order (e.g. 30,100), "
                         f"not {text!r}")
    return values
