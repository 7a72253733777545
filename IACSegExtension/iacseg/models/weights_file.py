"""Reading ``model.safetensors`` safely: its header is checked before the tensors are loaded (never with pickle).

A safetensors file is an 8-byte little-endian header length, a JSON header ``{name: {"dtype", "shape",
"data_offsets": [begin, end]}, "__metadata__": {...}}`` and the tensors' bytes. `read_header` checks that
structure against the file's size, so a truncated, empty or overwritten file is named as such (`ModelError`,
one line) instead of surfacing as a library error; `load_weights` then loads the tensors with
``safetensors.torch.load_file`` and refuses NaN or infinite values; `check_shapes` compares the tensors with a
module's state dict and names the first tensor that is missing, extra or of another shape.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import torch

from ..core.errors import ModelError

#: Bytes per element of each safetensors dtype.
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
#: The safetensors library refuses larger headers too.
MAX_HEADER_BYTES = 100_000_000
_ADVICE = "re-copy the model folder (or retrain it)"

Header = dict[str, tuple[str, tuple[int, ...]]]


def damaged(path: Path, why: str) -> ModelError:
    """The one-line refusal of a damaged weights file."""
    why = " ".join(str(why).split())[:200]
    return ModelError(f"{path} is damaged or truncated ({why}); {_ADVICE}")


def _read_raw_header(path: Path) -> tuple[dict[str, Any], int]:
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise damaged(path, f"the file holds only {size} bytes")
            n = int.from_bytes(head, "little")
            if n < 2 or n > MAX_HEADER_BYTES or 8 + n > size:
                raise damaged(path, f"its header claims {n} bytes but the file holds {size}")
            raw = f.read(n)
    except OSError as exc:
        raise ModelError(f"{path} cannot be read ({exc.strerror or exc}); check the file's permissions or "
                         f"{_ADVICE}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise damaged(path, "its header is not readable") from None
    if not isinstance(header, dict):
        raise damaged(path, "its header is not a table of tensors")
    return header, size - 8 - n


def read_header(path: str | Path) -> Header:
    """``{tensor name: (dtype, shape)}`` of a safetensors file, after checking every tensor's bytes lie in the
    file and the file holds nothing else; `ModelError` naming the file when it is damaged or truncated."""
    path = Path(path)
    header, data_bytes = _read_raw_header(path)
    out: Header = {}
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise damaged(path, f"tensor {name!r} has no description")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in DTYPE_BYTES or not isinstance(shape, list) \
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape) \
                or not (isinstance(offsets, list) and len(offsets) == 2
                        and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise damaged(path, f"tensor {name!r} has an unreadable description")
        begin, end = offsets
        if not 0 <= begin <= end:
            raise damaged(path, f"tensor {name!r} has invalid offsets")
        if end > data_bytes:
            raise damaged(path, f"tensor {name!r} ends at byte {end} of the data but the file holds only "
                                f"{data_bytes}")
        if end - begin != math.prod(shape) * DTYPE_BYTES[dtype]:
            raise damaged(path, f"tensor {name!r} has {end - begin} bytes for shape {shape} of {dtype}")
        spans.append((begin, end))
        out[name] = (dtype, tuple(shape))
    covered = 0
    for begin, end in sorted(spans):
        if begin != covered:
            raise damaged(path, "its tensors overlap or leave gaps")
        covered = end
    if covered != data_bytes:
        raise damaged(path, f"{data_bytes - covered} bytes after the last tensor")
    return out


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file on the CPU (header checked first, `read_header`); `ModelError` naming the
    file when it is damaged, and naming the tensor when one holds NaN or infinite values."""
    from safetensors.torch import load_file

    path = Path(path)
    read_header(path)
    try:
        state = load_file(str(path), device="cpu")
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 — safetensors raises its own error type (SafetensorError)
        raise damaged(path, str(exc)) from None
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise damaged(path, f"tensor {name!r} holds NaN or infinite values")
    return state


def check_shapes(expected: Mapping[str, Any], header: Header, path: str | Path, config_path: str | Path) -> None:
    """Refuse weights that do not fit the architecture: ``expected`` is a module's state dict (tensors, possibly on
    the meta device); the first missing, extra or differently shaped tensor is named."""
    shapes = {name: tuple(t.shape) for name, t in expected.items()}
    hint = f"the weights {Path(path).name} and {Path(config_path).name} do not belong together"
    missing = [n for n in shapes if n not in header]
    if missing:
        raise ModelError(f"{path} lacks the tensor {missing[0]!r} that the architecture in {config_path} needs "
                         f"({len(missing)} missing in all); {hint} — {_ADVICE}")
    extra = [n for n in header if n not in shapes]
    if extra:
        raise ModelError(f"{path} holds the tensor {extra[0]!r} that the architecture in {config_path} does not "
                         f"have ({len(extra)} extra in all); {hint} — {_ADVICE}")
    for name, shape in shapes.items():
        if header[name][1] != shape:
            raise ModelError(f"tensor {name!r} in {path} has shape {list(header[name][1])} but the architecture in "
                             f"{config_path} needs {list(shape)}; {hint} — {_ADVICE}")
