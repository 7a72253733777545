"""The models the panel offers: the engine's own torch-free lookup (`iacseg.models.folders`: the search path
``$IACSEG_MODEL_PATH``, ``$IACSEG_HOME/models``, the shipped models; each ``config.json`` checked as the engine
checks it), grouped by kind. Retraining writes into `user_models_dir`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from iacseg.core.locations import iacseg_home, user_models_dir
from iacseg.models.folders import find_models, search_path

__all__ = ["ModelChoice", "iacseg_home", "list_models", "model_search_dirs", "user_models_dir"]


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


def model_search_dirs(extra: Iterable[str | Path] = ()) -> list[Path]:
    """The engine's model search path with ``extra`` folders first."""
    return search_path(extra)


def list_models(kind: str, extra: Iterable[str | Path] = (), skipped: list[str] | None = None) -> list[ModelChoice]:
    """Usable model folders of ``kind`` on the search path (first of a name wins), sorted by name; damaged folders
    are left out (their one-line reasons appended to ``skipped``)."""
    found: dict[str, ModelChoice] = {}
    for m in find_models(skipped, extra):
        if m["kind"] == kind:
            name = str(m["name"])
            found.setdefault(name, ModelChoice(name, str(m.get("version") or ""), kind, Path(m["path"])))
    return sorted(found.values(), key=lambda m: m.name)
