"""Which network `iacseg.train.segmenter` trains (``--arch``) and where its first weights come from (``--init``).

Architectures (``arch``) and the registry name each saves under:

- ``"resenc-unet"`` → ``ResEncUNet`` (`iacseg.models.unet`): from scratch with ``features``/``strides``/``blocks``;
  ``init`` = a segmenter folder (its architecture and all weights: a fine-tune) or a ``desd-encoder`` folder
  (its architecture and encoder weights; the decoder starts fresh).
- ``"vit"`` → ``ViTSegmenter`` (`iacseg.models.vit.segmenter_net`): ``init`` = an ``mae`` folder (its encoder weights
  through `encoder_state`; its patch, widths and intensity windows win, the decoder starts fresh), a ViT segmenter
  folder (a fine-tune), or none (from scratch with ``vit_config``/``vit_patch``). ``decoder`` picks the decoder.
- ``"grcsf"`` → ``GRCSF`` (`iacseg.models.grcsf`, lazily imported): ``init`` = the ``mae`` folder whose frozen MAE
  computes the residual maps (required), or a GRCSF segmenter folder (a fine-tune).

``arch`` None means: the init folder's architecture (an mae folder → "vit"), else "resenc-unet".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from ..core.errors import InputError

ARCHS = ("resenc-unet", "vit", "grcsf")
#: Registry architecture name saved for each ``arch``.
ARCHITECTURE_NAMES = {"resenc-unet": "ResEncUNet", "vit": "ViTSegmenter", "grcsf": "GRCSF"}
#: ViT options (hyper-parameter keys) and their values when neither the call nor an init folder sets them.
VIT_DEFAULTS: dict[str, Any] = {"vit_config": "S", "vit_patch": 8, "decoder": "unetr", "decoder_channels": 16}
#: Kinds of pre-trained model folders each architecture can start from (besides a segmenter of its own kind).
ENCODER_INITS = {"resenc-unet": "desd-encoder", "vit": "mae", "grcsf": "mae"}


def read_parent(init_dir: str | Path | None) -> dict[str, Any] | None:
    """``config.json`` of the ``init`` model folder (None without one)."""
    if not init_dir:
        return None
    path = Path(init_dir) / "config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise InputError(f"--init {init_dir} has no readable config.json; give a model folder made by iacseg") from None


def parent_windows(parent: dict[str, Any] | None) -> list[list[float]] | None:
    """Intensity windows (HU) the new network must use: a pre-trained encoder's (desd-encoder, mae), which learnt
    on them; None for a segmenter parent or none (the trainer's defaults)."""
    if parent is None or parent.get("kind") == "segmenter":
        return None
    windows = (parent.get("input") or {}).get("windows_hu")
    return [list(map(float, w)) for w in windows] if windows else None


def resolve_arch(arch: str | None, parent: dict[str, Any] | None) -> str:
    """The architecture to train: ``arch`` when given (checked against the init folder), else implied by it."""
    if arch is not None and arch not in ARCHS:
        raise InputError(f"--arch {arch} is unknown; choose one of {', '.join(ARCHS)}")
    if parent is None:
        return arch or "resenc-unet"
    kind, name = parent.get("kind"), (parent.get("architecture") or {}).get("name")
    if kind == "segmenter":
        implied = next((a for a, n in ARCHITECTURE_NAMES.items() if n == name), None)
        if implied is None:
            raise InputError(f"the init model's architecture {name!r} cannot be fine-tuned here; use a segmenter "
                             f"made by `iacseg train segmenter`")
        if arch not in (None, implied):
            raise InputError(f"the init model is a {name} segmenter: fine-tune it with --arch {implied} (or leave "
                             f"--arch out)")
        return implied
    usable = [a for a, k in ENCODER_INITS.items() if k == kind]
    if not usable:
        raise InputError(f"the init model is a {kind!r} model; a segmenter starts from a segmenter, a desd-encoder "
                         f"(--arch resenc-unet) or an mae (--arch vit or grcsf)")
    if arch is not None and arch not in usable:
        raise InputError(f"--arch {arch} cannot start from a {kind} model; use --arch {' or '.join(usable)} with it, "
                         f"or another --init")
    return arch or usable[0]


def check_request(arch: str | None, cfg: dict[str, Any], parent: dict[str, Any] | None) -> str:
    """The architecture to train (`resolve_arch`), after refusing what cannot work whatever the data: ViT options
    (decoder, vit_config, vit_patch) for another architecture, a GRCSF without its MAE, a ViT training window
    (``cfg["patch"]``, when given) that is not a multiple of the cube size. Raises `InputError`."""
    arch = resolve_arch(arch, parent)
    given = [k for k in ("decoder", "vit_config", "vit_patch") if cfg.get(k) is not None]
    if arch != "vit" and given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise InputError(f"{flags} only apply to --arch vit, not --arch {arch}; leave them out")
    if arch == "grcsf" and parent is None:
        raise InputError("--arch grcsf needs the MAE that computes its residual maps: give --init MAE_FOLDER "
                         "(made by `iacseg pretrain mae`)")
    if arch == "vit":
        params = (parent or {}).get("architecture", {}).get("params", {})
        if parent is not None:
            _check_vit_request(cfg, params, "MAE" if parent.get("kind") == "mae" else "init segmenter")
        cube = int(params.get("patch") or cfg.get("vit_patch") or VIT_DEFAULTS["vit_patch"])
        if cfg.get("patch") is not None:
            _check_window(cfg["patch"], (cube, cube, cube))
    return arch


def _check_window(window: Any, divisor: Any) -> None:
    window, divisor = tuple(int(w) for w in window), tuple(int(d) for d in divisor)
    if any(w % d for w, d in zip(window, divisor)):
        good = tuple(max(d, round(w / d) * d) for w, d in zip(window, divisor))
        raise InputError(f"the training window --patch {' '.join(map(str, window))} (slices, rows, columns) must be "
                         f"a multiple of {divisor} for this network; use e.g. {' '.join(map(str, good))}")


def build_segmenter_network(arch: str | None, cfg: dict[str, Any], in_channels: int,
                            init_dir: str | Path | None) -> tuple[nn.Module, dict[str, Any] | None]:
    """The untrained (or initialised) segmenter network and the record of its parent model.

    ``cfg``: the trainer's hyper-parameters; the architecture actually built is written back into it (``arch``;
    resenc-unet: ``features``/``strides``/``blocks``; vit: ``vit_config``/``vit_patch``/``decoder``).
    ``in_channels``: intensity windows of the input (a pre-trained encoder's own, see `parent_windows`).
    Returns ``(net on the CPU, {"name", "version", "kind", "sha256"} of the init folder or None)``.
    Raises `InputError` for combinations that cannot work (wrong kind of init folder, mismatched weights, ViT
    options for another architecture, a training window that is not a multiple of the network's divisor)."""
    parent = read_parent(init_dir)
    arch = check_request(arch, cfg, parent)
    cfg["arch"] = arch
    if arch == "resenc-unet":
        net = _resenc_unet(cfg, in_channels, init_dir, parent)
    elif arch == "vit":
        net = _vit(cfg, in_channels, init_dir, parent)
    else:
        net = _grcsf(cfg, in_channels, init_dir, parent)
    _check_window(cfg["patch"], net.divisor)
    if parent is None:
        return net, None
    from ..models.registry import sha256_file

    return net, {"name": parent.get("name"), "version": parent.get("version"), "kind": parent.get("kind"),
                 "sha256": sha256_file(Path(init_dir) / "model.safetensors")}  # type: ignore[arg-type]


def _resenc_unet(cfg: dict[str, Any], in_channels: int, init_dir: Any, parent: dict[str, Any] | None) -> nn.Module:
    from ..models.registry import load_state
    from ..models.unet import ResEncUNet

    if parent is not None:  # fine-tune or encoder transfer: the parent's architecture
        arch = parent["architecture"]["params"]
        cfg.update(features=tuple(arch["features"]), strides=tuple(map(tuple, arch["strides"])),
                   blocks=tuple(arch["blocks"]))
    net = ResEncUNet(in_channels, cfg["features"], cfg["strides"], cfg["blocks"],
                     deep_supervision=cfg["deep_supervision"])
    if parent is None:
        return net
    try:
        if parent.get("kind") == "desd-encoder":
            from .pretrain_desd import load_encoder_weights

            load_encoder_weights(net, init_dir)  # strict on stem.* / encoder.*; the decoder stays fresh
        else:
            net.load_state_dict(load_state(init_dir))
    except RuntimeError:
        raise InputError(f"the weights in {init_dir} do not match its ResEncUNet configuration; "
                         "fine-tune from a segmenter model folder made by iacseg train") from None
    return net


def vit_config_name(params: dict[str, Any]) -> str:
    """The ViTiac configuration ("tiny", "S", "M", "L") whose encoder sizes ``params`` has, else "custom"."""
    from ..models.vit.encoder import VIT_CONFIGS

    for name, c in VIT_CONFIGS.items():
        if (c.width, c.depth, c.heads) == (params.get("width"), params.get("depth"), params.get("heads")):
            return name
    return "custom"


def _check_vit_request(cfg: dict[str, Any], params: dict[str, Any], source: str) -> None:
    """Refuse --vit-patch / --vit-config (and, for a segmenter, --decoder) that disagree with the network an init
    folder brings."""
    from ..models.vit.encoder import vit_config

    if source == "init segmenter" and cfg.get("decoder") not in (None, params.get("decoder")):
        raise InputError(f"--decoder {cfg['decoder']} does not match the init segmenter's decoder "
                         f"{params.get('decoder')}; leave --decoder out or start from an MAE")
    patch = cfg.get("vit_patch")
    if patch is not None and int(patch) != int(params["patch"]):
        raise InputError(f"--vit-patch {patch} does not match the {source}'s patch size {params['patch']}; leave "
                         f"--vit-patch out or pre-train an MAE with --patch {patch}")
    if cfg.get("vit_config") is not None:
        want = _named_config(cfg["vit_config"], vit_config)
        have = tuple(params[k] for k in ("width", "depth", "heads"))
        if (want.width, want.depth, want.heads) != have:
            raise InputError(f"--vit-config {cfg['vit_config']} (width {want.width}, depth {want.depth}, heads "
                             f"{want.heads}) does not match the {source}'s encoder (width {have[0]}, depth "
                             f"{have[1]}, heads {have[2]}); leave --vit-config out or use a matching MAE")


def _named_config(name: str, lookup: Any) -> Any:
    try:
        return lookup(str(name))
    except ValueError:
        raise InputError(f"--vit-config {name} is not a ViT configuration; use tiny, S, M or L") from None


def _vit(cfg: dict[str, Any], in_channels: int, init_dir: Any, parent: dict[str, Any] | None) -> nn.Module:
    from ..models.registry import load_state
    from ..models.vit.encoder import PATCH_SIZES, vit_config
    from ..models.vit.mae import encoder_state
    from ..models.vit.segmenter_net import ViTSegmenter, mae_segmenter_params, vit_segmenter_params

    decoder = cfg.get("decoder") or VIT_DEFAULTS["decoder"]
    channels = int(cfg.get("decoder_channels") or VIT_DEFAULTS["decoder_channels"])
    if parent is not None and parent.get("kind") == "segmenter":  # fine-tune a ViT segmenter: its architecture
        params = dict(parent["architecture"]["params"])  # check_request compared it with the options given
    elif parent is not None:  # an MAE: its encoder, patch and windows; a fresh decoder
        params = mae_segmenter_params(parent["architecture"]["params"], decoder, channels)
        if int(params["in_channels"]) != int(in_channels):
            raise InputError(f"the MAE in {init_dir} takes {params['in_channels']} intensity windows but the "
                             f"segmenter input has {in_channels}; use the MAE's windows")
    else:
        patch = int(cfg.get("vit_patch") or VIT_DEFAULTS["vit_patch"])
        if patch not in PATCH_SIZES:
            raise InputError(f"--vit-patch {patch} is not supported; use 4, 8 or 16 voxels")
        _named_config(cfg.get("vit_config") or VIT_DEFAULTS["vit_config"], vit_config)
        params = vit_segmenter_params(cfg.get("vit_config") or VIT_DEFAULTS["vit_config"], patch, decoder,
                                      in_channels, channels)
    try:
        net = ViTSegmenter(**{**params, "deep_supervision": bool(cfg["deep_supervision"])})
    except ValueError as exc:
        raise InputError(f"this ViT segmenter cannot be built: {exc}") from None
    try:
        if parent is not None and parent.get("kind") == "segmenter":
            net.load_state_dict(load_state(init_dir))
        elif parent is not None:
            net.encoder.load_state_dict(encoder_state(load_state(init_dir)))
    except RuntimeError:
        raise InputError(f"the weights in {init_dir} do not match its {parent['architecture']['name']} "  # type: ignore[index]
                         f"configuration; the folder is damaged or mixed — use one made by iacseg") from None
    cfg.update(vit_config=vit_config_name(net.config), vit_patch=net.patch, decoder=net.decoder_name)
    return net


def _grcsf(cfg: dict[str, Any], in_channels: int, init_dir: Any, parent: dict[str, Any] | None) -> nn.Module:
    """GRCSF from an MAE folder (`iacseg.models.grcsf.grcsf_from_mae`: its MAE frozen inside; the U-Net++ takes
    the trainer's ``features``/``strides``, other GRCSF options come from ``cfg["grcsf"]``) or a GRCSF segmenter."""
    from ..models.registry import build_architecture, load_state

    try:
        from ..models.grcsf import grcsf_from_mae
    except ImportError:
        raise InputError("GRCSF is not available in this IACSeg (iacseg.models.grcsf is missing); update IACSeg or "
                         "train --arch vit or resenc-unet") from None
    assert parent is not None  # check_request refused a GRCSF without its MAE
    try:
        if parent.get("kind") == "segmenter":  # fine-tune a GRCSF segmenter: its architecture, MAE included
            net = build_architecture(parent)
            net.load_state_dict(load_state(init_dir))
        else:
            options = {"features": tuple(cfg["features"]), "strides": tuple(map(tuple, cfg["strides"])),
                       **dict(cfg.get("grcsf") or {})}
            net = grcsf_from_mae(init_dir, in_channels=int(in_channels), **options)
    except RuntimeError:
        raise InputError(f"the weights in {init_dir} do not match its {parent['architecture']['name']} "
                         f"configuration; the folder is damaged or mixed — use one made by iacseg") from None
    except ValueError as exc:
        raise InputError(f"this GRCSF cannot be built: {exc}") from None
    net.deep_supervision = bool(cfg["deep_supervision"])
    return net


def default_model_name(arch: str, cfg: dict[str, Any]) -> str | None:
    """Default name of a new model of ``arch`` (None: the trainer's own default, "unet-demo")."""
    if arch == "vit":
        return f"vit-{cfg['vit_config']}-p{cfg['vit_patch']}-{cfg['decoder']}"
    if arch == "grcsf":
        return "grcsf"
    return None


def describe_network(arch: str, net: nn.Module) -> tuple[str, str]:
    """(model-card title, method paragraph) of a trained segmenter of ``arch``."""
    common = ("Dice + BCE loss, patches oversampled on calcium and bone, threshold calibrated to the smallest "
              "volume difference on held-out cases (Jin et al.).")
    if arch == "vit":
        c = net.config  # type: ignore[union-attr]
        return (f"Calcification segmenter (3D ViT, {c['decoder']} decoder)",
                f"3D ViT encoder (width {c['width']}, depth {c['depth']}, heads {c['heads']}, cubes of {c['patch']}³ "
                f"voxels as tokens, fixed 3D sin-cos positions) with the {c['decoder']} segmentation decoder "
                f"(Jin et al.) on the CT's own grid; " + common)
    if arch == "grcsf":
        return ("Calcification segmenter (GRCSF)",
                "U-Net++ on the CT channels guided by frozen-MAE residual maps through patch cross-attention, with "
                "global compensation of the skip connections (Wang et al., 3D adaptation); " + common)
    return ("Calcification segmenter (ResEnc U-Net)",
            "nnU-Net-style residual-encoder 3D U-Net on the CT's own grid, Dice + BCE loss, patches "
            "oversampled on calcium and bone, threshold calibrated to the smallest volume difference on "
            "held-out cases (Jin et al.).")
