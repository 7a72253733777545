"""Which network `iacseg.train.segmenter` trains (``arch``) and where its first weights come from (``init``).

Architectures (``arch``) and the registry name each saves under:

- ``"resenc-unet"`` → ``ResEncUNet`` (`iacseg.models.unet`): from scratch with ``features``/``strides``/``blocks``;
  ``init`` = a segmenter folder (its architecture and all weights: a fine-tune) or a ``desd-encoder`` folder
  (its architecture and encoder weights; the decoder starts fresh).
- ``"vit"`` → ``ViTSegmenter`` (`iacseg.models.vit.segmenter_net`): ``init`` = an ``mae`` folder (its encoder weights
  through `encoder_state`; its patch, widths and intensity windows win, the decoder starts fresh), a ViT segmenter
  folder (a fine-tune), or none (from scratch with ``vit_config``/``vit_patch``). ``decoder`` picks the decoder.
- ``"grcsf"`` → ``GRCSF`` (`iacseg.models.networks.grcsf`, lazily imported): ``init`` = the ``mae`` folder whose frozen MAE
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
        raise InputError(f"the init model {init_dir} has no readable config.json; give a model folder made by iacseg",
                         parameter="init") from None


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
        raise InputError(f"architecture {arch} is unknown; choose one of {', '.join(ARCHS)}", parameter="arch")
    if parent is None:
        return arch or "resenc-unet"
    kind, name = parent.get("kind"), (parent.get("architecture") or {}).get("name")
    if kind == "segmenter":
        implied = next((a for a, n in ARCHITECTURE_NAMES.items() if n == name), None)
        if implied is None:
            raise InputError(f"the init model's architecture {name!r} cannot be fine-tuned here; use a segmenter "
                             f"made by `iacseg train segmenter`", parameter="init")
        if arch not in (None, implied):
            raise InputError(f"the init model is a {name} segmenter: fine-tune it with the {implied} architecture "
                             f"(or leave the architecture unset)", parameter="arch")
        return implied
    usable = [a for a, k in ENCODER_INITS.items() if k == kind]
    if not usable:
        raise InputError(f"the init model is a {kind!r} model; a segmenter starts from a segmenter, a desd-encoder "
                         f"(architecture resenc-unet) or an mae (architecture vit or grcsf)", parameter="init")
    if arch is not None and arch not in usable:
        raise InputError(f"architecture {arch} cannot start from a {kind} model; use architecture "
                         f"{' or '.join(usable)} with it, or another init model", parameter="arch")
    return arch or usable[0]


#: The ViT-only options as messages name them.
VIT_OPTION_NAMES = {"decoder": "decoder", "vit_config": "ViT configuration", "vit_patch": "ViT patch size"}


def check_request(arch: str | None, cfg: dict[str, Any], parent: dict[str, Any] | None) -> str:
    """The architecture to train (`resolve_arch`), after refusing what cannot work whatever the data: ViT options
    (decoder, vit_config, vit_patch) for another architecture, a GRCSF without its MAE, a ViT training window
    (``cfg["patch"]``, when given) that is not a multiple of the cube size. Raises `InputError`."""
    arch = resolve_arch(arch, parent)
    given = [k for k in ("decoder", "vit_config", "vit_patch") if cfg.get(k) is not None]
    if arch != "vit" and given:
        names = ", ".join(VIT_OPTION_NAMES[k] for k in given)
        raise InputError(f"{names}: only for architecture vit, not {arch}; leave {'them' if len(given) > 1 else 'it'} "
                         f"unset", parameter=given[0])
    if arch == "grcsf" and parent is None:
        raise InputError("architecture grcsf needs the MAE that computes its residual maps: give it as the init "
                         "model (made by `iacseg pretrain mae`)", parameter="init")
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
        raise InputError(f"the training window {' '.join(map(str, window))} (slices, rows, columns) must be "
                         f"a multiple of {divisor} for this network; use e.g. {' '.join(map(str, good))}",
                         parameter="patch")


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
    from ..core.files import sha256_of

    return net, {"name": parent.get("name"), "version": parent.get("version"), "kind": parent.get("kind"),
                 "sha256": sha256_of(Path(init_dir) / "model.safetensors")}  # type: ignore[arg-type]


def _resenc_unet(cfg: dict[str, Any], in_channels: int, init_dir: Any, parent: dict[str, Any] | None) -> nn.Module:
    from ..models.loading import load_state
    from ..models.networks.unet import ResEncUNet

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
            load_encoder_weights(net, init_dir)  # strict on stem.* / encoder.*; the decoder stays fresh
        else:
            net.load_state_dict(load_state(init_dir))
    except RuntimeError:
        raise InputError(f"the weights in {init_dir} do not match its ResEncUNet configuration; "
                         "fine-tune from a segmenter model folder made by iacseg train") from None
    return net


def load_encoder_weights(net: nn.Module, encoder_dir: str | Path) -> None:
    """Load a desd-encoder folder's weights (`iacseg.train.pretrain_desd`) into the encoder (``stem.*``,
    ``encoder.*``) of the `ResEncUNet` ``net``, strictly: every encoder key must be present with its shape; the
    decoder keeps its fresh initialisation."""
    from ..models.loading import load_state

    state = load_state(encoder_dir)
    expected = {k for k in net.state_dict() if k.startswith(("stem.", "encoder."))}
    if set(state) != expected:
        raise InputError(f"the encoder weights in {encoder_dir} do not fit this U-Net (missing "
                         f"{len(expected - set(state))}, extra {len(set(state) - expected)} tensors); use a "
                         f"desd-encoder folder made by `iacseg pretrain desd`")
    try:
        net.load_state_dict(state, strict=False)
    except RuntimeError:
        raise InputError(f"the encoder weights in {encoder_dir} have other shapes than its architecture says; "
                         "the folder is damaged — pre-train it again") from None


def vit_config_name(params: dict[str, Any]) -> str:
    """The ViTiac configuration ("tiny", "S", "M", "L") whose encoder sizes ``params`` has, else "custom"."""
    from ..models.networks.vit.encoder import VIT_CONFIGS

    for name, c in VIT_CONFIGS.items():
        if (c.width, c.depth, c.heads) == (params.get("width"), params.get("depth"), params.get("heads")):
            return name
    return "custom"


def _check_vit_request(cfg: dict[str, Any], params: dict[str, Any], source: str) -> None:
    """Refuse a ViT patch size / configuration (and, for a segmenter, a decoder) that disagree with the network an
    init folder brings."""
    from ..models.networks.vit.encoder import vit_config

    if source == "init segmenter" and cfg.get("decoder") not in (None, params.get("decoder")):
        raise InputError(f"decoder {cfg['decoder']} does not match the init segmenter's decoder "
                         f"{params.get('decoder')}; leave the decoder unset or start from an MAE", parameter="decoder")
    patch = cfg.get("vit_patch")
    if patch is not None and int(patch) != int(params["patch"]):
        raise InputError(f"ViT patch size {patch} does not match the {source}'s patch size {params['patch']}; leave "
                         f"the ViT patch size unset or pre-train an MAE with patch size {patch}", parameter="vit_patch")
    if cfg.get("vit_config") is not None:
        want = _named_config(cfg["vit_config"], vit_config)
        have = tuple(params[k] for k in ("width", "depth", "heads"))
        if (want.width, want.depth, want.heads) != have:
            raise InputError(f"ViT configuration {cfg['vit_config']} (width {want.width}, depth {want.depth}, heads "
                             f"{want.heads}) does not match the {source}'s encoder (width {have[0]}, depth "
                             f"{have[1]}, heads {have[2]}); leave the ViT configuration unset or use a matching MAE",
                             parameter="vit_config")


def _named_config(name: str, lookup: Any) -> Any:
    try:
        return lookup(str(name))
    except ValueError:
        raise InputError(f"ViT configuration {name} is unknown; use tiny, S, M or L", parameter="vit_config") from None


def _vit(cfg: dict[str, Any], in_channels: int, init_dir: Any, parent: dict[str, Any] | None) -> nn.Module:
    from ..models.loading import load_state
    from ..models.networks.vit.encoder import PATCH_SIZES, vit_config
    from ..models.networks.vit.mae import encoder_state
    from ..models.networks.vit.segmenter_net import ViTSegmenter, mae_segmenter_params, vit_segmenter_params

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
            raise InputError(f"ViT patch size {patch} is not supported; use 4, 8 or 16 voxels", parameter="vit_patch")
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
    """GRCSF from an MAE folder (`iacseg.models.loading.grcsf_from_mae`: its MAE frozen inside; the U-Net++ takes
    the trainer's ``features``/``strides``, other GRCSF options come from ``cfg["grcsf"]``) or a GRCSF segmenter."""
    from ..models.loading import build_architecture, grcsf_from_mae, load_state

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
