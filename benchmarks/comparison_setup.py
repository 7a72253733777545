"""What `compare_segmenters.py` runs: scale presets, the rows (one trained segmenter each), seeds, overrides.

Pure Python (no torch, no SimpleITK): the runner and its test import it.

Seeds. Training and validation phantoms come from 20000–29999 (train first, then validation), held-out phantoms
from 80000–89999. Both ranges avoid the seeds used elsewhere: the demo models' training seeds (< 20000), the
development set 60001–60008, the acceptance phantoms 70001–70010 and the demo 90001.

Rows. ``unet`` (ResEnc U-Net from scratch, the baseline), ``unet-desd`` (the same U-Net, encoder from DeSD
self-distillation), ``vit-scratch-p<P>-<decoder>`` (a ViT segmenter without pre-training), ``vit-mae-p<P>-<decoder>``
(ViT encoder from an MAE of cube size P, one row per decoder), ``grcsf-mae-p<P>`` (GRCSF whose residual maps come
from that MAE). The reference row ``default`` — the current default segmenter — is evaluated on the same held-out
phantoms and never trained here.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from typing import Any, Sequence

TRAIN_SEEDS = (20000, 29999)
HELDOUT_SEEDS = (80000, 89999)
#: Seed sets reserved for other purposes: never used by the comparison (checked by `phantom_seeds`).
RESERVED_SEEDS = {"acceptance": range(70001, 70011), "fresh acceptance": range(71001, 71011),
                  "development": range(60001, 60009), "demo": range(90001, 90002)}
DECODERS = ("unetr", "sfpn", "upscale-transposed", "upscale-nearest", "mae")

_COMMON: dict[str, Any] = {
    "lr": 2e-3, "vit_lr": 5e-4, "batch": 2, "seed": 0, "roi_jitter_mm": 5.0, "tilt_every": 0,
    "mae_patches": (4, 8), "decoders": DECODERS, "scratch_patch": 8, "scratch_decoder": "unetr",
    "grcsf_mae_patch": 8, "grcsf": {}, "mae_lr": 5e-4, "bootstrap": 1000, "workers": 1, "time_budget_s": 0,
    "val_every": 1, "note": "",
}
#: Scale presets. ``phantom``: `iacseg.phantom.make_phantom` options of every phantom ({} = full-size phantoms:
#: 512² matrix, slice thickness drawn from 0.625–5 mm); ``window``: training patch = inference window (k, j, i
#: voxels, a multiple of every network's divisor); ``epochs`` × ``steps``: segmenter training; ``mae_*`` and
#: ``desd_*``: pre-training (shared by the rows that need it); ``vit_config``: ViTiac configuration.
PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {**_COMMON, "n_train": 6, "n_val": 2, "n_heldout": 4, "phantom": {"matrix": 192, "slice_mm": 5.0},
              "window": (16, 32, 32), "epochs": 5, "steps": 30, "vit_config": "tiny", "decoder_channels": 8,
              "grcsf": {"repeats": 2}, "mae_epochs": 5, "mae_steps": 30, "mae_batch": 2, "mae_roi": (16, 32, 32),
              "desd_epochs": 5, "desd_steps": 30, "desd_batch": 2, "desd_patch": (16, 32, 32)},
    # cpu: what a 2-core CPU does in about an hour. Full-size phantoms at 2.5 mm (the default segmenter's
    # conditions); every row gets the same wall-clock training budget (time_budget_s, checked after each epoch)
    # rather than the same number of steps; patch 4 is left out (``note``, printed in the table).
    "cpu": {**_COMMON, "n_train": 16, "n_val": 4, "n_heldout": 8, "phantom": {"slice_mm": 2.5},
            "window": (32, 64, 64), "epochs": 40, "steps": 20, "time_budget_s": 200, "val_every": 3,
            "vit_config": "S", "decoder_channels": 16, "mae_patches": (8,),
            "note": "patch-4 ViT rows are not in this preset: a ViT-S at patch 4 takes ~4.5 s per training step "
                    "on a 2-core CPU (60 steps in the budget; validation of 4 cases 6.5 min) and ~95 s to segment "
                    "one case, so its five rows would take about two hours; run them with --scale gpu",
            "mae_epochs": 30, "mae_steps": 40, "mae_batch": 4, "mae_roi": (16, 32, 32),
            "desd_epochs": 6, "desd_steps": 40, "desd_batch": 4, "desd_patch": (32, 64, 64), "workers": 2},
    "gpu": {**_COMMON, "n_train": 120, "n_val": 12, "n_heldout": 24, "phantom": {}, "tilt_every": 7, "val_every": 5,
            "window": (48, 96, 96), "epochs": 40, "steps": 100, "vit_config": "S", "decoder_channels": 16,
            "mae_epochs": 60, "mae_steps": 100, "mae_batch": 8, "mae_roi": (32, 64, 64),
            "desd_epochs": 20, "desd_steps": 100, "desd_batch": 8, "desd_patch": (32, 64, 64), "workers": 14},
}


@dataclass(frozen=True)
class Row:
    """One line of the comparison: a segmenter to train (``arch`` None: the default model, not trained)."""

    name: str
    label: str
    method: str
    arch: str | None = None
    decoder: str | None = None
    vit_patch: int | None = None
    pretrained: str | None = None  # key of the shared pre-trained model it starts from ("mae-p8", "desd")


DEFAULT_ROW = Row("default", "default (shipped)", "the current default segmenter, as shipped (not retrained here)")


def all_rows(settings: dict[str, Any]) -> list[Row]:
    """Every trainable row for ``settings`` (MAE patches, decoders, the scratch ViT and GRCSF's MAE patch)."""
    rows = [Row("unet", "ResEnc U-Net (baseline)", "ResEnc U-Net from scratch", "resenc-unet"),
            Row("unet-desd", "ResEnc U-Net + DeSD", "ResEnc U-Net, encoder pre-trained by DeSD self-distillation",
                "resenc-unet", pretrained="desd")]
    p, d = int(settings["scratch_patch"]), str(settings["scratch_decoder"])
    rows.append(Row(f"vit-scratch-p{p}-{d}", f"ViT-{settings['vit_config']} p{p} {d}, from scratch",
                    f"ViT segmenter (patch {p}, {d} decoder) without pre-training", "vit", d, p))
    for p in settings["mae_patches"]:
        for d in settings["decoders"]:
            rows.append(Row(f"vit-mae-p{p}-{d}", f"ViT-{settings['vit_config']} p{p} {d}, MAE",
                            f"ViT segmenter (patch {p}, {d} decoder), encoder from the MAE p{p}", "vit", d, int(p),
                            f"mae-p{int(p)}"))
    g = int(settings["grcsf_mae_patch"])
    rows.append(Row(f"grcsf-mae-p{g}", f"GRCSF (MAE p{g})", f"GRCSF, residual maps from the MAE p{g}", "grcsf",
                    pretrained=f"mae-p{g}"))
    return rows


def select_rows(rows: Sequence[Row], only: str | None) -> list[Row]:
    """The rows whose names match ``only`` (comma-separated names or shell patterns such as ``vit-mae-p4-*``), in
    catalogue order; all rows for None/"". `ValueError` naming the pattern that matches nothing."""
    if not only:
        return list(rows)
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    for pattern in patterns:
        if pattern != DEFAULT_ROW.name and not any(fnmatch.fnmatchcase(r.name, pattern) for r in rows):
            raise ValueError(f"--only {pattern} matches no row; rows are: {', '.join(r.name for r in rows)}")
    return [r for r in rows if any(fnmatch.fnmatchcase(r.name, p) for p in patterns)]


def pretrained_needed(rows: Sequence[Row]) -> list[str]:
    """The shared pre-trained models the ``rows`` start from, each once, in first-use order."""
    return list(dict.fromkeys(r.pretrained for r in rows if r.pretrained))


def _coerce(key: str, text: str, default: Any) -> Any:
    """``text`` as the type of the preset's ``default`` (tuples from "16,32,32", dicts from JSON)."""
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, tuple):
            items = [s.strip() for s in text.split(",") if s.strip()]
            kind = type(default[0]) if default else str
            return tuple(kind(s) for s in items)
        if isinstance(default, dict):
            value = json.loads(text)
            if not isinstance(value, dict):
                raise ValueError
            return value
        return text
    except ValueError:
        expected = f"{type(default).__name__} like {format_value(default)}"
        raise ValueError(f"--set {key}={text}: expected {expected}") from None


def format_value(value: Any) -> str:
    """A setting as `--set` takes it (tuples comma-separated, dicts as JSON)."""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def resolve_settings(scale: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The preset of ``scale`` with ``KEY=VALUE`` overrides applied (values typed like the preset's).
    `ValueError` for an unknown scale or key, or a value of the wrong type."""
    if scale not in PRESETS:
        raise ValueError(f"--scale {scale} is unknown; choose one of {', '.join(PRESETS)}")
    settings = dict(PRESETS[scale])
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise ValueError(f"--set {item}: write KEY=VALUE, e.g. epochs=3")
        if key not in settings:
            raise ValueError(f"--set {key}: no such setting; settings are {', '.join(sorted(settings))}")
        settings[key] = _coerce(key, text.strip(), settings[key])
    bad = [d for d in settings["decoders"] if d not in DECODERS]
    if bad:
        raise ValueError(f"decoders {bad} are unknown; choose from {', '.join(DECODERS)}")
    if any(int(p) not in (4, 8, 16) for p in (*settings["mae_patches"], settings["scratch_patch"],
                                               settings["grcsf_mae_patch"])):
        raise ValueError("ViT/MAE patch sizes must be 4, 8 or 16 voxels")
    return settings


def phantom_seeds(settings: dict[str, Any]) -> dict[str, list[int]]:
    """``{"train", "val", "heldout"}`` seed lists; `ValueError` when they leave their ranges or touch a reserved
    seed (see module docstring)."""
    n_train, n_val, n_held = (int(settings[k]) for k in ("n_train", "n_val", "n_heldout"))
    if n_train < 1 or n_val < 1 or n_held < 1:
        raise ValueError("n_train, n_val and n_heldout must each be at least 1 (validation calibrates the threshold)")
    train = list(range(TRAIN_SEEDS[0], TRAIN_SEEDS[0] + n_train))
    val = list(range(train[-1] + 1, train[-1] + 1 + n_val))
    held = list(range(HELDOUT_SEEDS[0], HELDOUT_SEEDS[0] + n_held))
    if val[-1] > TRAIN_SEEDS[1] or held[-1] > HELDOUT_SEEDS[1]:
        raise ValueError(f"too many phantoms: training + validation must fit {TRAIN_SEEDS[0]}–{TRAIN_SEEDS[1]}, "
                         f"held-out {HELDOUT_SEEDS[0]}–{HELDOUT_SEEDS[1]}")
    used = set(train) | set(val) | set(held)
    for what, seeds in RESERVED_SEEDS.items():
        if used & set(seeds):
            raise ValueError(f"the seeds would touch the {what} phantoms ({seeds.start}–{seeds.stop - 1})")
    return {"train": train, "val": val, "heldout": held}


def phantom_options(settings: dict[str, Any], seed: int) -> dict[str, Any]:
    """`make_phantom` options of one phantom: the preset's, plus a gantry tilt (10–25°) on every
    ``tilt_every``-th seed (0: none)."""
    options = dict(settings["phantom"])
    every = int(settings["tilt_every"])
    if every > 0 and seed % every == 3 % every:
        options["tilt_deg"] = float(10 + seed % 16)
    return options


def describe_phantoms(settings: dict[str, Any]) -> str:
    """How the phantoms were made, in words (matrix, slice thickness, tilts)."""
    p = settings["phantom"]
    matrix = f"{p['matrix']}² matrix" if "matrix" in p else "512² matrix"
    slices = f"{p['slice_mm']} mm slices" if "slice_mm" in p else "slice thickness drawn from 0.625–5 mm"
    extra = ", ".join(f"{k} {v}" for k, v in p.items() if k not in ("matrix", "slice_mm"))
    tilt = f", every {settings['tilt_every']}th gantry-tilted" if int(settings["tilt_every"]) > 0 else ""
    return f"{matrix}, {slices}{', ' + extra if extra else ''}{tilt}"


def phantoms_reduced(settings: dict[str, Any]) -> bool:
    """Whether the phantoms leave the default segmenter's training conditions (512² matrix, slices 0.625–5 mm)."""
    p = settings["phantom"]
    return int(p.get("matrix", 512)) != 512 or not 0.625 <= float(p.get("slice_mm", 2.5)) <= 5.0
