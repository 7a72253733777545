"""Model folders the module offers (bundled + the user's), read from ``config.json`` without importing torch."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

USER_MODELS_DIR = Path("~/.iacseg/models").expanduser()


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
    """``extra`` folders, ``$IACSEG_MODEL_PATH`` (read only), ``~/.iacseg/models``, the bundled ``Resources/Models``."""
    dirs = [Path(p).expanduser() for p in extra]
    dirs += [Path(p).expanduser() for p in os.environ.get("IACSEG_MODEL_PATH", "").split(os.pathsep) if p]
    dirs.append(USER_MODELS_DIR)
    if engine_dir is not None:
        dirs.append(Path(engine_dir).parent / "Resources" / "Models")
        dirs.append(Path(engine_dir) / "Models")
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
