"""Where IACSeg keeps its files: the per-user home (``$IACSEG_HOME``) and the shipped model folders.

Torch-free and importing nothing of the engine, so the Slicer module uses these same rules without loading torch.

The shipped demo models are package data (``iacseg/models/shipped/<name>/``: ``model.safetensors``, ``config.json``,
``MODEL_CARD.md``), so they travel with every install: the source checkout, an editable install, a built wheel and
the engine bundled in the Slicer extension.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Folder of the shipped model folders, relative to the ``iacseg`` package.
SHIPPED_MODELS = Path("models") / "shipped"


def iacseg_home() -> Path:
    """``$IACSEG_HOME`` or ``~/.iacseg``: where IACSeg keeps its per-user files (models/, defaults.json)."""
    return Path(os.environ.get("IACSEG_HOME") or "~/.iacseg").expanduser()


def user_models_dir() -> Path:
    """``$IACSEG_HOME/models``: the user's model folders (searched by name; the Slicer module trains into it)."""
    return iacseg_home() / "models"


def shipped_models_dir() -> Path:
    """The shipped demo model folders of this ``iacseg`` (package data beside its code)."""
    return Path(__file__).resolve().parent.parent / SHIPPED_MODELS
