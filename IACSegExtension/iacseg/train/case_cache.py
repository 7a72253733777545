"""Prepared training cases (`SegmenterCase`, `LandmarkCase`) stored as numpy ``.npz`` files — no pickle.

A re-run after an interruption reads the cases back instead of making and reducing the phantoms again
(scripts/train_demo_models.py ``--cache``). Each file holds named cases ("segmenter", "landmarks") field by field:
arrays as they are, tuples of slices as ``[[start, stop], …]`` (``…@slices``), strings as ``…@str``, numbers as
0-d arrays; ``meta@str`` is a JSON description of how the cases were made, checked on reading. Files are
written through a temporary file renamed into place.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def _encode(prefix: str, case: Any) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for f in dataclasses.fields(case):
        v = getattr(case, f.name)
        key = f"{prefix}.{f.name}"
        if v is None:
            continue
        if isinstance(v, str):
            out[key + "@str"] = np.array(v)
        elif isinstance(v, tuple) and v and all(isinstance(s, slice) for s in v):
            out[key + "@slices"] = np.array([[s.start, s.stop] for s in v], dtype=np.int64)
        else:
            out[key] = np.asarray(v)
    return out


def _decode(prefix: str, cls: type, data: Any) -> Any:
    values: dict[str, Any] = {}
    for key in data.files:
        name, _, kind = key.partition("@")
        head, _, field = name.partition(".")
        if head != prefix:
            continue
        a = data[key]
        if kind == "str":
            values[field] = str(a)
        elif kind == "slices":
            values[field] = tuple(slice(int(s), int(e)) for s, e in a)
        else:
            values[field] = a.item() if a.ndim == 0 else a
    return cls(**values)


def save_cases(path: str | Path, cases: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``{name: prepared case}`` and ``meta`` to ``path`` (.npz) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"meta@str": np.array(json.dumps(meta, sort_keys=True, default=str))}
    for name, case in cases.items():
        arrays.update(_encode(name, case))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_cases(path: str | Path, kinds: dict[str, type], meta: dict[str, Any]) -> dict[str, Any] | None:
    """The cases of ``path`` as ``{name: kinds[name](...)}``, or None when the file is missing, unreadable or was
    made with another ``meta``."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if json.loads(str(data["meta@str"])) != json.loads(json.dumps(meta, sort_keys=True, default=str)):
                return None
            return {name: _decode(name, cls, data) for name, cls in kinds.items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None
