"""Choosing the torch device every preprocessing (and model) step runs on."""

from __future__ import annotations

import torch

from ..errors import InputError



def resolve_device(name: "str | torch.device | None" = "auto") -> torch.device:
    """The torch device for ``name``: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.

    Raises `InputError` when a CUDA device is requested that this machine does not have.
    """
    if isinstance(name, torch.device):
        name = str(name)
    text = "auto" if name is None else str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {text} was requested but no CUDA GPU is available; "
                             "use --device cpu or auto")
        device = torch.device(text)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"--device {text} was requested but this machine has only "
                             f"{torch.cuda.device_count()} CUDA GPU(s); use --device cuda:0, cpu or auto")
        return device
    raise InputError(f"--device {name!r} is not a device name; use auto, cpu, cuda or cuda:N")


def as_device(device: "str | torch.device | None") -> torch.device:
    """`resolve_device` for functions whose ``device`` argument defaults to None (= ``"auto"``)."""
    return device if isinstance(device, torch.device) else resolve_device(device)
