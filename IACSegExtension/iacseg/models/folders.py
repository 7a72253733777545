"""Model folders, torch-free: the format, the search path, reading and checking ``config.json``, listing and resolving
names (the CLI, the engine and the Slicer module use this one lookup).

A model folder holds ``model.safetensors`` + ``config.json`` + ``MODEL_CARD.md``; safetensors only, never pickle.
``config.json`` holds ``name``, ``version``, ``kind`` ("segmenter" | "landmarks" | a `PRETRAINED_KINDS` encoder),
``architecture`` (``{"name": ..., "params": {...}}``), the input preparation (intensity windows, patch size,
field of view…), ``threshold``, training data description and hash, metrics, ``created`` and a ``disclaimer``.

Search path for model names (first match wins): extra folders given by the caller, ``$IACSEG_MODEL_PATH``
(os.pathsep-separated folders), ``$IACSEG_HOME/models`` (default ``~/.iacseg/models``), then the shipped models,
package data in ``iacseg/models/shipped/`` (`iacseg.core.locations`). The default model of each kind (used when
none is named) is resolved by `iacseg.models.defaults`; building and loading networks is `iacseg.models.loading`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from ..core.errors import ModelError
from ..core.files import sha256_of
from ..core.locations import shipped_models_dir, user_models_dir

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "MODEL_CARD.md"
KINDS = ("segmenter", "landmarks")
#: Kinds of pre-trained encoders: saved, listed and loadable, but never a default nor run by ``iacseg segment``
#: (their weights initialise a segmenter).
PRETRAINED_KINDS = ("desd-encoder", "mae")
DEFAULT_MODELS = {"segmenter": "unet-demo", "landmarks": "dst-demo"}
DISCLAIMER = "synthetic data — not for clinical use"
#: Architecture names a config may use (`iacseg.models.networks.BUILDERS` builds each; a test keeps them equal).
ARCHITECTURES = ("ResEncUNet", "DepthSequenceTransformer", "ResEncUNetEncoder", "MAE3D", "ViTSegmenter", "GRCSF")
_PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl")


def search_path(extra: Iterable[str | Path] = ()) -> list[Path]:
    """Folders searched for model names, in order: ``extra``, ``$IACSEG_MODEL_PATH``, ``$IACSEG_HOME/models``, the
    shipped models."""
    dirs = [Path(p).expanduser() for p in extra]
    dirs += [Path(p).expanduser() for p in os.environ.get("IACSEG_MODEL_PATH", "").split(os.pathsep) if p]
    dirs.append(user_models_dir())
    dirs.append(shipped_models_dir())
    return dirs


def find_folder(name_or_path: str | Path, extra: Iterable[str | Path] = ()) -> Path | None:
    """The model folder ``name_or_path`` names: an existing folder path, else a bare name found on the search
    path (first match); None when there is none."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir():
        return candidate
    if len(candidate.parts) == 1:
        for root in search_path(extra):
            if (root / candidate).is_dir():
                return root / candidate
    return None


def read_config(model_dir: str | Path) -> dict[str, Any]:
    """``config.json`` of a model folder, checked (`iacseg.models.config_check.check_config`); `ModelError` naming
    the file when it is missing, unreadable, not JSON or not a usable model configuration."""
    from .config_check import MAX_CONFIG_BYTES, check_config

    path = Path(model_dir) / CONFIG_FILE
    try:
        if path.is_file() and path.stat().st_size > MAX_CONFIG_BYTES:
            raise ModelError(f"{path} is {path.stat().st_size >> 20} MB, far too large for a model configuration; "
                             f"re-copy the model folder or retrain it")
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{model_dir} has no {CONFIG_FILE}; a model folder needs {WEIGHTS_FILE}, "
                         f"{CONFIG_FILE} and {CARD_FILE} — train one with `iacseg train` or pick another") from None
    except OSError as exc:
        raise ModelError(f"{path} cannot be read ({exc.strerror or exc}); check its permissions or re-copy the "
                         f"model folder") from None
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested beyond reason
        raise ModelError(f"{path} is not valid JSON; restore the model folder or retrain it") from None
    return check_config(config, path, ARCHITECTURES)


def check_weights(model_dir: str | Path) -> Path:
    """Path of the folder's ``model.safetensors``; refuses pickle-only folders with a `ModelError`."""
    model_dir = Path(model_dir)
    weights = model_dir / WEIGHTS_FILE
    if weights.is_file():
        return weights
    pickles = sorted(p.name for p in model_dir.glob("*") if p.suffix.lower() in _PICKLE_SUFFIXES)
    if pickles:
        raise ModelError(f"{model_dir} contains only pickle-based weights ({', '.join(pickles)}), which IACSeg "
                         f"never loads because they can run code; convert to safetensors "
                         f"(safetensors.torch.save_file(state_dict, '{WEIGHTS_FILE}')) and add {CONFIG_FILE}")
    raise ModelError(f"{model_dir} has no {WEIGHTS_FILE}; point to a complete model folder or train one")


def _recorded_hash_checked(weights: Path, config: dict[str, Any]) -> str:
    """SHA-256 of ``weights``; `ModelError` when the config records another hash (damaged or replaced weights)."""
    digest = sha256_of(weights)
    recorded = config.get("sha256")
    if isinstance(recorded, str) and recorded and recorded.lower() != digest:
        raise ModelError(f"{weights} is not the file its {CONFIG_FILE} records (SHA-256 {digest[:12]}…, recorded "
                         f"{recorded[:12]}…): it is damaged or was replaced; re-copy the model folder — if you "
                         f"replaced the weights on purpose, delete the \"sha256\" entry of {CONFIG_FILE}")
    return digest


def find_models(skipped: list[str] | None = None, extra: Iterable[str | Path] = ()) -> list[dict[str, Any]]:
    """Every model folder on the search path (``extra`` folders first): ``{"path", "name", "version", "kind", "created", "sha256", "metrics"}``.

    Damaged folders (config.json, or weights other than the ones it records) are left out; with ``skipped`` their
    one-line reasons are appended."""
    found, seen = [], set()
    for root in search_path(extra):
        if not root.is_dir():
            continue
        for cfg in sorted(root.glob(f"*/{CONFIG_FILE}")):
            folder = cfg.parent.resolve()
            if folder in seen or not (folder / WEIGHTS_FILE).is_file():
                continue
            seen.add(folder)
            try:
                found.append(describe_model(folder))
            except ModelError as exc:
                if skipped is not None:
                    skipped.append(str(exc))
                continue
    return found


def describe_model(model_dir: str | Path) -> dict[str, Any]:
    """``{"path", "name", "version", "kind", "created", "sha256", "metrics"}`` of one model folder; `ModelError`
    when its config is damaged or its weights are not the ones the config records."""
    folder = Path(model_dir).resolve()
    c = read_config(folder)
    digest = _recorded_hash_checked(folder / WEIGHTS_FILE, c)  # a damaged weights file is not listed as usable
    return {"path": str(folder), "name": c.get("name", folder.name), "version": c.get("version"),
            "kind": c.get("kind"), "created": c.get("created"), "sha256": digest, "metrics": c.get("metrics", {})}

