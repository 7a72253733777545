"""Model folders: ``model.safetensors`` + ``config.json`` + ``MODEL_CARD.md``; safetensors only, never pickle.

``config.json`` holds ``name``, ``version``, ``kind`` ("segmenter" | "landmarks" | a `PRETRAINED_KINDS` encoder),
``architecture`` (``{"name": ..., "params": {...}}``), the input preparation (intensity windows, patch size,
field of view…), ``threshold``, training data description and hash, metrics, ``created`` and a ``disclaimer``.

Search path for model names (first match wins): ``$IACSEG_MODEL_PATH`` (os.pathsep-separated folders),
``$IACSEG_HOME/models`` (default ``~/.iacseg/models``), then the repository's ``Resources/Models``.
The default model of each kind (used when none is named) is set by `iacseg.models.defaults`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import ModelError
from ..outputs.atomic import atomic_folder, write_text_atomic

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "MODEL_CARD.md"
KINDS = ("segmenter", "landmarks")
#: Kinds of pre-trained encoders: saved, listed and loadable, but never a default nor run by ``iacseg segment``
#: (their weights initialise a segmenter: ``iacseg train segmenter --init``).
PRETRAINED_KINDS = ("desd-encoder", "mae")
DEFAULT_MODELS = {"segmenter": "unet-demo", "landmarks": "dst-demo"}
DISCLAIMER = "synthetic data — not for clinical use"
_PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl")


def _architectures() -> dict[str, Callable[[dict[str, Any]], nn.Module]]:
    from .dst import build_dst
    from .grcsf import build_grcsf
    from .unet import build_unet, build_unet_encoder
    from .vit.mae import build_mae
    from .vit.segmenter_net import build_vit_segmenter

    return {"ResEncUNet": build_unet, "DepthSequenceTransformer": build_dst, "ResEncUNetEncoder": build_unet_encoder,
            "MAE3D": build_mae, "ViTSegmenter": build_vit_segmenter,
            "GRCSF": build_grcsf}


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def search_path() -> list[Path]:
    """Folders searched for model names, in order."""
    import iacseg

    dirs = [Path(p).expanduser() for p in os.environ.get("IACSEG_MODEL_PATH", "").split(os.pathsep) if p]
    from .defaults import iacseg_home

    dirs.append(iacseg_home() / "models")
    dirs.append(Path(iacseg.__file__).resolve().parents[2] / "Resources" / "Models")
    return dirs


def read_config(model_dir: str | Path) -> dict[str, Any]:
    """``config.json`` of a model folder; `ModelError` when missing or unreadable."""
    path = Path(model_dir) / CONFIG_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{model_dir} has no {CONFIG_FILE}; a model folder needs {WEIGHTS_FILE}, "
                         f"{CONFIG_FILE} and {CARD_FILE} — train one with `iacseg train` or pick another") from None
    except ValueError:
        raise ModelError(f"{path} is not valid JSON; restore the model folder or retrain it") from None


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


def build_architecture(config: dict[str, Any]) -> nn.Module:
    """The untrained module described by ``config["architecture"]``."""
    arch = config.get("architecture") or {}
    builders = _architectures()
    if arch.get("name") not in builders:
        raise ModelError(f"unknown model architecture {arch.get('name')!r}; this IACSeg knows "
                         f"{', '.join(builders)} — update IACSeg or use a matching model")
    try:
        return builders[arch["name"]](dict(arch.get("params", {})))
    except TypeError as exc:
        raise ModelError(f"the model's architecture parameters do not fit this IACSeg ({exc}); "
                         f"update IACSeg or retrain the model") from None


def load_model(model_dir: str | Path, device: torch.device | str | None = None,
               kind: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Build the architecture from ``config.json`` and load ``model.safetensors`` (never ``torch.load``).

    Returns ``(module in eval mode on device, config)`` with ``config["sha256"]`` set to the weights' hash."""
    from safetensors.torch import load_file

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelError(f"model folder {model_dir} does not exist; check the path or the model name")
    weights = check_weights(model_dir)
    config = read_config(model_dir)
    if kind is not None and config.get("kind") != kind:
        raise ModelError(f"{model_dir} is a {config.get('kind')!r} model but a {kind!r} model is needed here")
    module = build_architecture(config)
    try:
        state = load_file(str(weights), device="cpu")
        module.load_state_dict(state, strict=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise ModelError(f"the weights in {weights} do not match its {CONFIG_FILE} ({str(exc)[:200]}); "
                         f"the folder is damaged or mixed — retrain or re-download it") from None
    config["sha256"] = sha256_file(weights)
    return module.to(device or "cpu").eval(), config


def load_state(model_dir: str | Path) -> dict[str, torch.Tensor]:
    """The raw safetensors state dict of a model folder (CPU tensors)."""
    from safetensors.torch import load_file

    return load_file(str(check_weights(model_dir)), device="cpu")


def save_model(model_dir: str | Path, module: nn.Module, config: dict[str, Any], card_text: str,
               overwrite: bool = True) -> Path:
    """Write ``model_dir`` atomically: weights (safetensors), ``config.json`` (with ``sha256``), model card.

    Missing ``created``/``disclaimer``/``threshold`` entries are filled in. Returns the folder path."""
    from safetensors.torch import save_file

    if config.get("kind") not in KINDS + PRETRAINED_KINDS:
        raise ValueError(f"config['kind'] must be one of {KINDS + PRETRAINED_KINDS}")
    if "architecture" not in config:
        raise ValueError("config needs an 'architecture' entry")
    config = dict(config)
    config.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    config.setdefault("disclaimer", DISCLAIMER)
    config.setdefault("threshold", 0.5)
    state = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    with atomic_folder(model_dir, overwrite=overwrite) as tmp:
        # metadata holds no name/date, so the hash identifies the weights alone
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})  # one key: Rust map order varies
        config["sha256"] = sha256_file(tmp / WEIGHTS_FILE)
        write_text_atomic(tmp / CONFIG_FILE, json.dumps(config, indent=2, default=str))
        write_text_atomic(tmp / CARD_FILE, card_text)
    return Path(model_dir)


def find_models() -> list[dict[str, Any]]:
    """Every model folder on the search path: ``{"path", "name", "version", "kind", "created", "sha256", "metrics"}``."""
    found, seen = [], set()
    for root in search_path():
        if not root.is_dir():
            continue
        for cfg in sorted(root.glob(f"*/{CONFIG_FILE}")):
            folder = cfg.parent.resolve()
            if folder in seen or not (folder / WEIGHTS_FILE).is_file():
                continue
            seen.add(folder)
            try:
                found.append(describe_model(folder))
            except ModelError:
                continue
    return found


def describe_model(model_dir: str | Path) -> dict[str, Any]:
    """``{"path", "name", "version", "kind", "created", "sha256", "metrics"}`` of one model folder."""
    folder = Path(model_dir).resolve()
    c = read_config(folder)
    return {"path": str(folder), "name": c.get("name", folder.name), "version": c.get("version"),
            "kind": c.get("kind"), "created": c.get("created"),
            "sha256": sha256_file(folder / WEIGHTS_FILE), "metrics": c.get("metrics", {})}


def default_model_dir(kind: str) -> Path:
    """Folder of the default model of ``kind``: the one set by ``iacseg models promote`` (`iacseg.models.defaults`),
    else the shipped demo model ("segmenter" → unet-demo, "landmarks" → dst-demo)."""
    if kind not in DEFAULT_MODELS:
        raise ValueError(f"kind must be one of {KINDS}")
    return resolve_model(None, kind)


def resolve_model(name_or_path: str | Path | None, kind: str) -> Path:
    """A model folder from a path or a model name looked up on the search path; None or "" → the default model
    of ``kind`` (promoted one, else the shipped demo)."""
    if name_or_path is None or str(name_or_path) == "":
        from .defaults import promoted_model_dir

        promoted = promoted_model_dir(kind) if kind in DEFAULT_MODELS else None
        if promoted is not None:
            return promoted
        name_or_path = DEFAULT_MODELS[kind]
    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir():
        return candidate
    if len(candidate.parts) == 1:
        for root in search_path():
            if (root / candidate).is_dir():
                return root / candidate
    where = ", ".join(str(p) for p in search_path())
    raise ModelError(f"no {kind} model {str(name_or_path)!r} found (looked in {where}); give a model folder path, "
                     f"set IACSEG_MODEL_PATH, or train one with `iacseg train`")
