"""Model folders the module offers (shipped + the user's), read from ``config.json`` without importing torch.

The per-user folder follows the engine's rule: ``$IACSEG_HOME/models``, ``~/.iacseg/models`` when it is unset."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

#: The shipped models inside an ``iacseg`` package folder (package data; `iacseg.core.locations.SHIPPED_MODELS`).
SHIPPED_MODELS = Path("iacseg") / "models" / "shipped"


def iacseg_home() -> Path:
    """``$IACSEG_HOME`` or ``~/.iacseg``, read when called: the engine's `iacseg.core.locations.iacseg_home` when the
    engine is importable (torch-free), the same rule otherwise."""
    try:
        from iacseg.core.locations import iacseg_home as engine_home
    except ImportError:
        return Path(os.environ.get("IACSEG_HOME") or "~/.iacseg").expanduser()
    return engine_home()


def user_models_dir() -> Path:
    """``$IACSEG_HOME/models``: the user's model folders, listed in the panel; retraining writes there."""
    return iacseg_home() / "models"


def _engine_shipped_models() -> Path | None:
    """The shipped models of the importable engine (pip-installed or already on ``sys.path``), if any."""
    try:
        from iacseg.core.locations import shipped_models_dir
    except ImportError:
        return None
    return shipped_models_dir()


@dataclass(frozen=True)
class ModelChoice:
    """A model folder: ``name`` and ``version`` from its config, ``kind`` segmenter|landmarks, its ``path``."""

    name: str
    version: str
    kind: str
    path: Path

    @property
    def title(self) -> str:
        return f"{self.name} {self.version}".strip()


def model_search_dirs(engine_dir: Path | None, extra: Iterable[str | Path] = ()) -> list[Path]:
    """``extra`` folders, ``$IACSEG_MODEL_PATH`` (read only), ``$IACSEG_HOME/models`` (``~/.iacseg/models``), then
    the shipped models: those of the engine folder ``engine_dir`` (bundled or source checkout,
    ``iacseg/models/shipped``), then those of the importable engine."""
    dirs = [Path(p).expanduser() for p in extra]
    dirs += [Path(p).expanduser() for p in os.environ.get("IACSEG_MODEL_PATH", "").split(os.pathsep) if p]
    dirs.append(user_models_dir())
    if engine_dir is not None:
        dirs.append(Path(engine_dir) / SHIPPED_MODELS)
    shipped = _engine_shipped_models()
    if shipped is not None and shipped not in dirs:
        dirs.append(shipped)
    return dirs


def find_models(dirs: Iterable[Path], kind: str) -> list[ModelChoice]:
    """Model folders of ``kind`` directly inside ``dirs`` (first of a name wins), sorted by name."""
    found: dict[str, ModelChoice] = {}
    for folder in dirs:
        if not Path(folder).is_dir():
            continue
        for model_dir in sorted(Path(folder).iterdir()):
            try:
                config = json.loads((model_dir / "config.json").read_text())
            except (OSError, ValueError):
                continue
            if config.get("kind") == kind and (model_dir / "model.safetensors").is_file():
                name = str(config.get("name", model_dir.name))
                found.setdefault(name, ModelChoice(name, str(config.get("version", "")), kind, model_dir))
    return sorted(found.values(), key=lambda m: m.name)
