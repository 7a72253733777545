"""Model folders: ``model.safetensors`` + ``config.json`` + ``MODEL_CARD.md``; safetensors only, never pickle.

``config.json`` holds ``name``, ``version``, ``kind`` ("segmenter" | "landmarks" | a `PRETRAINED_KINDS` encoder),
``architecture`` (``{"name": ..., "params": {...}}``), the input preparation (intensity windows, patch size,
field of view…), ``threshold``, training data description and hash, metrics, ``created`` and a ``disclaimer``.

Search path for model names (first match wins): ``$IACSEG_MODEL_PATH`` (os.pathsep-separated folders),
``$IACSEG_HOME/models`` (default ``~/.iacseg/models``), then the shipped models, package data in
``iacseg/models/shipped/`` (`iacseg.core.locations`).
The default model of each kind (used when none is named) is set by `iacseg.models.defaults`.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from ..core.errors import ModelError
from ..core.files import atomic_folder, write_text_atomic

if TYPE_CHECKING:
    from .weights_file import Header

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
    from ..core.locations import shipped_models_dir, user_models_dir

    dirs = [Path(p).expanduser() for p in os.environ.get("IACSEG_MODEL_PATH", "").split(os.pathsep) if p]
    dirs.append(user_models_dir())
    dirs.append(shipped_models_dir())
    return dirs


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
    return check_config(config, path, tuple(_architectures()))


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


def build_architecture(config: dict[str, Any], source: str | Path = CONFIG_FILE) -> nn.Module:
    """The untrained module described by ``config["architecture"]`` (``source``: the config's file, for messages).

    Any failure of the architecture's constructor on these parameters is a `ModelError`."""
    arch = config.get("architecture") if isinstance(config, dict) else None
    arch = arch if isinstance(arch, dict) else {}
    builders = _architectures()
    if arch.get("name") not in builders:
        raise ModelError(f"unknown model architecture {arch.get('name')!r} in {source}; this IACSeg knows "
                         f"{', '.join(builders)} — update IACSeg or use a matching model")
    params = arch.get("params", {})
    try:
        return builders[arch["name"]](dict(params))
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 — a constructor refusing these parameters, whatever its error type
        why = " ".join(str(exc).split())[:160]
        raise ModelError(f"the {arch['name']} parameters in {source} do not fit this IACSeg ({why}); re-copy the "
                         f"model folder, update IACSeg or retrain the model") from None


#: Largest number of values (parameters + buffers) a model folder's architecture may need (4 GB of float32).
MAX_MODEL_VALUES = 1 << 30


def _check_architecture(config: dict[str, Any], config_path: Path, weights: Path, header: "Header") -> None:
    """Build the architecture on the meta device (no memory), compare it with the weights file's ``header``, and
    check its size and the inference window against it."""
    from .weights_file import check_shapes

    with torch.device("meta"):
        module = build_architecture(config, config_path)
    values = sum(t.numel() for t in module.parameters()) + sum(t.numel() for t in module.buffers())
    if values > MAX_MODEL_VALUES:
        raise ModelError(f"the architecture in {config_path} needs {values / 1e9:.1f} billion values, far more than "
                         f"any IACSeg model; re-copy the model folder or retrain it")
    check_shapes(module.state_dict(), header, weights, config_path)
    divisor = getattr(module, "divisor", None)
    patch = (config.get("input") or {}).get("patch_size_kji")
    if patch is not None and divisor is not None and any(int(p) % int(d) for p, d in zip(patch, divisor)):
        raise ModelError(f"{config_path}: input.patch_size_kji {list(patch)} is not a multiple of the network's "
                         f"divisor {list(divisor)}; re-copy the model folder or retrain it")


def _recorded_hash_checked(weights: Path, config: dict[str, Any]) -> str:
    """SHA-256 of ``weights``; `ModelError` when the config records another hash (damaged or replaced weights)."""
    digest = sha256_file(weights)
    recorded = config.get("sha256")
    if isinstance(recorded, str) and recorded and recorded.lower() != digest:
        raise ModelError(f"{weights} is not the file its {CONFIG_FILE} records (SHA-256 {digest[:12]}…, recorded "
                         f"{recorded[:12]}…): it is damaged or was replaced; re-copy the model folder — if you "
                         f"replaced the weights on purpose, delete the \"sha256\" entry of {CONFIG_FILE}")
    return digest


#: Folders that passed `check_model_folder`, by path, kind and the identity of their two files (size, mtime, inode):
#: a batch checks each model once, not before every case and again on loading; any change to a file re-checks it.
_CHECKED: dict[tuple, dict[str, Any]] = {}


def _file_identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def check_model_folder(model_dir: str | Path, kind: str | None = None) -> dict[str, Any]:
    """The single check of a model folder before it is used; returns its config (``sha256`` = the weights' hash).

    In order: the folder exists; ``model.safetensors`` is there (pickle-only folders refused); ``config.json`` is a
    usable configuration (`read_config`) of ``kind`` when given; the weights file is whole (header against size)
    and matches the SHA-256 recorded in the config; the architecture builds from its parameters and every tensor
    of the weights has the shape it needs. Nothing large is allocated. Each failure is one `ModelError` line
    naming the file and what to do. A folder whose files have not changed since it passed is not checked again."""
    model_dir = Path(model_dir)
    key = (str(model_dir.resolve()), kind, _file_identity(model_dir / WEIGHTS_FILE),
           _file_identity(model_dir / CONFIG_FILE))
    if key in _CHECKED:
        return copy.deepcopy(_CHECKED[key])
    if not model_dir.is_dir():
        raise ModelError(f"model folder {model_dir} does not exist; check the path or the model name")
    weights = check_weights(model_dir)
    config = read_config(model_dir)
    if kind is not None and config.get("kind") != kind:
        raise ModelError(f"{model_dir} is a {config.get('kind')!r} model but a {kind!r} model is needed here")
    from .weights_file import read_header

    header = read_header(weights)  # a truncated file is named as such before its hash is compared
    digest = _recorded_hash_checked(weights, config)
    _check_architecture(config, model_dir / CONFIG_FILE, weights, header)
    config["sha256"] = digest
    _CHECKED[key] = copy.deepcopy(config)
    return config


def load_model(model_dir: str | Path, device: torch.device | str | None = None,
               kind: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Build the architecture from ``config.json`` and load ``model.safetensors`` (never ``torch.load``).

    The folder is checked first (`check_model_folder`). Returns ``(module in eval mode on device, config)`` with
    ``config["sha256"]`` set to the weights' hash (a null ``threshold`` is dropped: the default 0.5 applies)."""
    from .weights_file import load_weights

    config = check_model_folder(model_dir, kind)
    if "threshold" in config and config["threshold"] is None:
        del config["threshold"]
    weights = Path(model_dir) / WEIGHTS_FILE
    module = build_architecture(config, Path(model_dir) / CONFIG_FILE)
    state = load_weights(weights)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        why = " ".join(str(exc).split())[:200]
        raise ModelError(f"the weights in {weights} do not match its {CONFIG_FILE} ({why}); the folder is damaged "
                         f"or mixed — re-copy the model folder or retrain it") from None
    return module.to(device or "cpu").eval(), config


def load_state(model_dir: str | Path) -> dict[str, torch.Tensor]:
    """The raw safetensors state dict of a model folder (CPU tensors); `ModelError` naming a damaged file."""
    from .weights_file import load_weights

    return load_weights(check_weights(model_dir))


def save_model(model_dir: str | Path, module: nn.Module, config: dict[str, Any], card_text: str,
               overwrite: bool = True) -> Path:
    """Write ``model_dir`` atomically: weights (safetensors), ``config.json`` (with ``sha256``), model card.

    Missing ``created``/``disclaimer``/``threshold`` entries are filled in. An existing non-empty ``model_dir`` is
    replaced only with ``overwrite`` and only when it is an earlier IACSeg model folder (`InputError` otherwise;
    `iacseg.models.output_folder`). Returns the folder path."""
    from safetensors.torch import save_file

    from .output_folder import check_model_replaceable

    if config.get("kind") not in KINDS + PRETRAINED_KINDS:
        raise ValueError(f"config['kind'] must be one of {KINDS + PRETRAINED_KINDS}")
    if "architecture" not in config:
        raise ValueError("config needs an 'architecture' entry")
    config = dict(config)
    config.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    config.setdefault("disclaimer", DISCLAIMER)
    config.setdefault("threshold", 0.5)
    state = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    check_model_replaceable(model_dir, overwrite)  # last line of defence: never replace a user's folder
    with atomic_folder(model_dir, overwrite=overwrite) as tmp:
        # metadata holds no name/date, so the hash identifies the weights alone
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})  # one key: Rust map order varies
        config["sha256"] = sha256_file(tmp / WEIGHTS_FILE)
        write_text_atomic(tmp / CONFIG_FILE, json.dumps(config, indent=2, default=str))
        write_text_atomic(tmp / CARD_FILE, card_text)
    return Path(model_dir)


def find_models(skipped: list[str] | None = None) -> list[dict[str, Any]]:
    """Every model folder on the search path: ``{"path", "name", "version", "kind", "created", "sha256", "metrics"}``.

    Damaged folders (config.json, or weights other than the ones it records) are left out; with ``skipped`` their
    one-line reasons are appended."""
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
