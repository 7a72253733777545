"""`LoadedModel`: a network loaded from a model folder, with its config and identity (name, version, sha256)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch

from ..core.device import resolve_device
from .loading import load_model


class LoadedModel:
    """Base of the engine's model wrappers; subclasses set ``kind`` and ``default_input``."""

    kind: ClassVar[str] = ""
    default_input: ClassVar[dict[str, Any]] = {}

    def __init__(self, module: torch.nn.Module, config: dict[str, Any], device: torch.device | str | None = None):
        self.device = resolve_device(device)
        self.module = module.to(self.device).eval()
        self.config = config
        self.input_cfg: dict[str, Any] = {**self.default_input, **config.get("input", {})}

    @classmethod
    def load(cls, model_dir: str | Path, device: torch.device | str | None = None):
        """Load a model folder of this kind (safetensors only; `ModelError` otherwise)."""
        module, config = load_model(model_dir, resolve_device(device), kind=cls.kind)
        return cls(module, config, device)

    @property
    def name(self) -> str:
        return str(self.config.get("name", "unnamed"))

    @property
    def version(self) -> str:
        return str(self.config.get("version", "0"))

    @property
    def sha256(self) -> str:
        return str(self.config.get("sha256", ""))
