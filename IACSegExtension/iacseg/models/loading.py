"""Building networks from model folders and loading/saving their weights (torch): the one check of a folder before
use (`check_model_folder`), `load_model`, `load_state` and the atomic `save_model`. Safetensors only, never pickle.
The torch-free side of model folders (format, search, config) is `iacseg.models.folders`."""

from __future__ import annotations

import copy
import datetime as _dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..core.errors import InputError, ModelError
from ..core.files import atomic_folder, sha256_of, write_text_atomic
from ..core.threshold import DEFAULT_THRESHOLD
from .networks import BUILDERS
from .networks.grcsf import GRCSF, MAE_KIND
from .folders import (CARD_FILE, CONFIG_FILE, DISCLAIMER, KINDS, PRETRAINED_KINDS, WEIGHTS_FILE,
                      _recorded_hash_checked, check_weights, read_config)

if TYPE_CHECKING:
    from .weights_file import Header


def build_architecture(config: dict[str, Any], source: str | Path = CONFIG_FILE) -> nn.Module:
    """The untrained module described by ``config["architecture"]`` (``source``: the config's file, for messages).

    Any failure of the architecture's constructor on these parameters is a `ModelError`."""
    arch = config.get("architecture") if isinstance(config, dict) else None
    arch = arch if isinstance(arch, dict) else {}
    builders = BUILDERS
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
    config.setdefault("threshold", DEFAULT_THRESHOLD)
    state = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    check_model_replaceable(model_dir, overwrite)  # last line of defence: never replace a user's folder
    with atomic_folder(model_dir, overwrite=overwrite) as tmp:
        # metadata holds no name/date, so the hash identifies the weights alone
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})  # one key: Rust map order varies
        config["sha256"] = sha256_of(tmp / WEIGHTS_FILE)
        write_text_atomic(tmp / CONFIG_FILE, json.dumps(config, indent=2, default=str))
        write_text_atomic(tmp / CARD_FILE, card_text)
    return Path(model_dir)


def grcsf_from_mae(mae_dir: str | Path, **params: Any) -> GRCSF:
    """A fresh `GRCSF` whose frozen MAE is the pre-trained MAE of model folder ``mae_dir`` (kind "mae", from
    ``iacseg pretrain mae``). ``params``: other `GRCSF` parameters (features, strides, repeats, rcu_levels, …;
    not ``mae``). The U-Net++ and compensation units start untrained. Raises `InputError` when the folder is not
    an MAE or its channels do not match ``in_channels``."""
    config = read_config(mae_dir)
    if config.get("kind") != MAE_KIND or (config.get("architecture") or {}).get("name") != "MAE3D":
        raise InputError(f"{mae_dir} is a {config.get('kind')!r} model, not a masked autoencoder; GRCSF needs the "
                         f"model folder of `iacseg pretrain mae` for its residual maps")
    if "mae" in params:
        raise TypeError("grcsf_from_mae takes the MAE configuration from the folder; do not pass 'mae'")
    mae_params = dict(config["architecture"]["params"])
    if params.get("in_channels") not in (None, mae_params.get("in_channels")):
        raise InputError(f"the MAE in {mae_dir} reads {mae_params.get('in_channels')} intensity channels, not "
                         f"{params['in_channels']}; train GRCSF with the MAE's intensity windows")
    net = GRCSF(mae_params, **params)
    net.mae.load_state_dict(load_state(mae_dir), strict=True)
    net.mae.requires_grad_(False)
    return net
