"""Checks on a model folder's ``config.json`` before anything is built from it: shape, types and ranges.

`check_config` refuses (`ModelError`, one line naming the file) a config that is not a JSON object, lacks
``kind`` or ``architecture``, names an architecture this IACSeg does not know or one of another kind, holds a
size or count that is not a whole number in range (channels, features, heads, patch, window sizes…), a
non-finite number, an intensity window with high ≤ low, or a ``threshold`` that is neither null nor a number
strictly between 0 and 1. Keys it does not know are left alone. The architecture's own constructor and the
weights file are checked after this (`iacseg.models.loading.check_model_folder`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

from ..core.contracts import LANDMARKS
from ..core.errors import ModelError

#: The network architectures each kind of model folder may hold.
KIND_ARCHITECTURES: dict[str, tuple[str, ...]] = {
    "segmenter": ("ResEncUNet", "ViTSegmenter", "GRCSF"),
    "landmarks": ("DepthSequenceTransformer",),
    "desd-encoder": ("ResEncUNetEncoder",),
    "mae": ("MAE3D",),
}
#: Largest whole number accepted anywhere in the architecture parameters (no network here comes close).
MAX_PARAM_INT = 1_000_000
#: Architecture parameters that count or size something: whole numbers ≥ 1 (or lists of them).
SIZE_PARAMS = frozenset((
    "in_channels", "features", "encoder_features", "blocks", "strides", "dim", "depth", "heads", "width",
    "decoder_width", "decoder_depth", "decoder_heads", "decoder_channels", "base_channels", "patch", "conv_kernel",
    "max_slices", "n_landmarks", "repeats", "rcu_patch", "rcu_width", "rcu_heads",
))
#: Largest patch / view edge (voxels, pixels) and HU magnitude accepted in the input preparation.
MAX_EDGE = 1024
MAX_HU = 100_000.0
MAX_CONFIG_BYTES = 16 << 20
_ADVICE = "re-copy the model folder or retrain it"


def _fail(path: Path, what: str) -> ModelError:
    return ModelError(f"{path} is not a usable model configuration: {what}; {_ADVICE}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _whole(v: Any, low: int, high: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _check_params(path: Path, value: Any, where: str, size: bool) -> None:
    """Recursively: every number finite, every whole number in 0…MAX_PARAM_INT (≥ 1 under a `SIZE_PARAMS` key)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_params(path, item, f"{where}.{key}", size or key in SIZE_PARAMS)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            _check_params(path, item, f"{where}[{n}]", size)
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        if size and not (value is None and where.endswith(("in_channels", "rcu_patch"))):
            raise _fail(path, f"{where} must hold whole numbers from 1 to {MAX_PARAM_INT}, not {_shown(value)}")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(path, f"{where} must be a finite number, not {value}")
        if size:
            raise _fail(path, f"{where} must hold whole numbers from 1 to {MAX_PARAM_INT}, not {_shown(value)}")
    elif isinstance(value, int):
        if not _whole(value, 1 if size else 0, MAX_PARAM_INT):
            low = 1 if size else 0
            raise _fail(path, f"{where} must be a whole number from {low} to {MAX_PARAM_INT}, not {value}")
    else:
        raise _fail(path, f"{where} has an unexpected value {_shown(value)}")


def _windows(v: Any) -> str | None:
    if not isinstance(v, list) or not 1 <= len(v) <= 16:
        return "a list of 1 to 16 [low, high] HU pairs"
    for w in v:
        if not (isinstance(w, list) and len(w) == 2 and all(_is_number(x) and math.isfinite(x) for x in w)):
            return "a list of [low, high] HU pairs of finite numbers"
        if not (-MAX_HU <= w[0] < w[1] <= MAX_HU):
            return f"[low, high] HU pairs with low < high within ±{MAX_HU:g} HU"
    return None


def _edges(low: int) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = isinstance(v, list) and len(v) == 3 and all(_whole(x, low, MAX_EDGE) for x in v)
        return None if ok else f"three whole numbers from {low} to {MAX_EDGE} (k, j, i voxels)"
    return check


def _number(low: float, high: float, open_low: bool = False) -> Callable[[Any], str | None]:
    wanted = f"a number above {low:g} and at most {high:g}" if open_low else f"a number from {low:g} to {high:g}"

    def check(v: Any) -> str | None:
        ok = _is_number(v) and math.isfinite(v) and (low < v if open_low else low <= v) and v <= high
        return None if ok else wanted
    return check


def _count(high: int) -> Callable[[Any], str | None]:
    return lambda v: None if _whole(v, 1, high) else f"a whole number from 1 to {high}"


#: Checks of the input-preparation entries (``config["input"]``); each returns what the value should be, or None.
INPUT_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "windows_hu": _windows,
    "patch_size_kji": _edges(1),
    "roi_size_kji": _edges(1),
    "context_margin_kji": _edges(0),
    "overlap": _number(0.0, 0.95),
    "gate_min_hu": _number(-MAX_HU, MAX_HU),
    "batch": _count(256),
    "fov_mm": _number(0.0, 2000.0, open_low=True),
    "size": _count(2048),
    "dense_bone_hu": _number(-MAX_HU, MAX_HU),
    "bone_band_mm": _number(0.0, 1000.0, open_low=True),
    "landmark_offset_mm": _number(-1000.0, 1000.0),  # older model folders; not read (see core.anatomy)
}


def _check_input(path: Path, config: dict[str, Any], params: dict[str, Any]) -> None:
    if "input" not in config:
        return
    prep = config["input"]
    if not isinstance(prep, dict):
        raise _fail(path, f"'input' must be an object of input-preparation settings, not {_shown(prep)}")
    for key, check in INPUT_CHECKS.items():
        if key in prep:
            wanted = check(prep[key])
            if wanted is not None:
                raise _fail(path, f"input.{key} must be {wanted}, not {_shown(prep[key])}")
    channels = params.get("in_channels")
    if "windows_hu" in prep and isinstance(channels, int) and channels != len(prep["windows_hu"]):
        raise _fail(path, f"the network takes {channels} input channel(s) (architecture.params.in_channels) but "
                          f"input.windows_hu gives {len(prep['windows_hu'])}")


def _check_identity(path: Path, config: dict[str, Any]) -> None:
    for key in ("name", "version"):
        if key in config and not (isinstance(config[key], str) or _is_number(config[key])):
            raise _fail(path, f"'{key}' must be text, not {_shown(config[key])}")
    if "threshold" in config and config["threshold"] is not None:
        t = config["threshold"]
        if not (_is_number(t) and math.isfinite(t) and 0.0 < t < 1.0):
            raise _fail(path, f"'threshold' must be null or a probability strictly between 0 and 1, not {_shown(t)}")
    if "landmarks" in config and config.get("kind") == "landmarks":
        names = config["landmarks"]
        if not (isinstance(names, list) and len(names) == len(LANDMARKS) and set(names) == set(LANDMARKS)):
            raise _fail(path, f"'landmarks' must list the six landmarks ({', '.join(LANDMARKS)}), not "
                              f"{_shown(names)}")


def check_config(config: Any, path: str | Path, known_architectures: tuple[str, ...]) -> dict[str, Any]:
    """``config`` (the parsed ``config.json`` at ``path``) when it can describe a model; `ModelError` otherwise.

    ``known_architectures``: the architecture names this IACSeg can build."""
    path = Path(path)
    if not isinstance(config, dict):
        kind = {list: "a JSON list", str: "a JSON string"}.get(type(config), f"the JSON value {_shown(config)}")
        raise _fail(path, f"it holds {kind}, not an object with 'kind' and 'architecture'")
    kind = config.get("kind")
    if kind not in KIND_ARCHITECTURES:
        raise _fail(path, f"'kind' is {_shown(kind)}, not one of {', '.join(KIND_ARCHITECTURES)}")
    arch = config.get("architecture")
    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str):
        raise _fail(path, f"'architecture' must be an object with a 'name' and 'params', not {_shown(arch)}")
    if arch["name"] not in known_architectures:
        raise ModelError(f"{path} names the unknown model architecture {arch['name']!r}; this IACSeg knows "
                         f"{', '.join(known_architectures)} — update IACSeg or use a matching model")
    if arch["name"] not in KIND_ARCHITECTURES[kind]:
        raise _fail(path, f"a {kind} model cannot be a {arch['name']} network (a {kind} is "
                          f"{' or '.join(KIND_ARCHITECTURES[kind])})")
    params = arch.get("params", {})
    if not isinstance(params, dict):
        raise _fail(path, f"architecture.params must be an object, not {_shown(params)}")
    _check_params(path, params, "architecture.params", False)
    if kind == "landmarks" and params.get("n_landmarks", len(LANDMARKS)) != len(LANDMARKS):
        raise _fail(path, f"architecture.params.n_landmarks must be {len(LANDMARKS)}, not "
                          f"{_shown(params['n_landmarks'])}")
    _check_input(path, config, params)
    _check_identity(path, config)
    return config
