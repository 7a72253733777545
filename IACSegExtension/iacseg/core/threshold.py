"""The segmenter's probability threshold: the one default and the one parser (torch-free).

A voxel is calcium when its probability is at least the threshold (and it is ≥ 130 HU and not alone). The
threshold is the model's calibrated one (``config["threshold"]``) unless the user gives one; a model without a
calibrated threshold uses `DEFAULT_THRESHOLD`. `parse_threshold` is what the CLI, `iacseg.pipeline` and the
Slicer module use to read the user's choice.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from .errors import InputError

#: The threshold of a model whose config.json records none (and of a user's nnU-Net model).
DEFAULT_THRESHOLD = 0.5

#: What the user writes for "the model's calibrated threshold".
AUTO = "auto"


def parse_threshold(value: str | float | None) -> float | None:
    """The user's threshold: ``None`` or ``"auto"`` (any case, spaces around) → ``None``, meaning the model's
    calibrated threshold; otherwise a probability strictly between 0 and 1 (a number or its text).

    Anything else is an `InputError` about the parameter ``threshold``.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == AUTO):
        return None
    if isinstance(value, bool):  # True/False are not probabilities
        raise InputError(f"threshold must be 'auto' or a probability between 0 and 1, not {value!r}",
                         parameter="threshold")
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise InputError(f"threshold must be 'auto' or a probability between 0 and 1, not {value!r}",
                         parameter="threshold") from None
    if not (math.isfinite(t) and 0.0 < t < 1.0):
        raise InputError(f"threshold {t:g} is outside 0–1; give a probability between 0 and 1 (exclusive) or auto",
                         parameter="threshold")
    return t


def model_threshold(config: Mapping[str, Any]) -> float:
    """The calibrated threshold a model's config records, else `DEFAULT_THRESHOLD`."""
    value = config.get("threshold")
    return DEFAULT_THRESHOLD if value is None else float(value)
