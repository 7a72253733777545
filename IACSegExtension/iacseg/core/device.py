"""The one rule for choosing the torch device of every step (preprocessing, models, training, benchmarks).

``None`` and ``"auto"`` mean the same: CUDA when available, else CPU. torch is imported only when a device is
resolved, so this module stays importable without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:
    import torch


def resolve_device(name: "str | torch.device | None" = None) -> "torch.device":
    """The torch device for ``name``: ``None``/``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``,
    ``"cuda:N"`` or a ``torch.device`` (returned as it is).

    Raises `InputError` (parameter ``device``) when a CUDA device is requested that this machine does not have.
    """
    import torch

    if isinstance(name, torch.device):
        return name
    text = "auto" if name is None else str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"device {text} was requested but no CUDA GPU is available; use cpu or auto",
                             parameter="device")
        try:
            device = torch.device(text)
        except RuntimeError:
            raise InputError(f"device {name!r} is not a device name; use auto, cpu, cuda or cuda:N",
                             parameter="device") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"device {text} was requested but this machine has only "
                             f"{torch.cuda.device_count()} CUDA GPU(s); use cuda:0, cpu or auto", parameter="device")
        return device
    raise InputError(f"device {name!r} is not a device name; use auto, cpu, cuda or cuda:N", parameter="device")
