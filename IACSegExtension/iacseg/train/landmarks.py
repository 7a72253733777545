"""Training the landmark localiser (Depth-Sequence Transformer) on whole slice sequences.

Each case is reduced once — by the inference input function `iacseg.models.localiser.localiser_input` — to
an int16 HU view ``[D, S, S]`` (all native slices, plane-centred in-plane view) and six target slices
k* = ceil((z − z0)/sk) (and each landmark's exact position (z − z0)/sk, for re-gridding). Augmentation
(`iacseg.train.augment`): slice-thickness simulation (targets and spacing recomputed on the thick grid:
`iacseg.train.slice_thickness`), random z-crops that keep every target inside (so the padding amount, hence
absolute position, changes), an in-plane affine and MONAI appearance transforms per case. Loss: per-landmark
cross-entropy over slices (summed). Validation: MAE in slices and the share within ±1 slice (argmax). The training
loop itself is `iacseg.train.loop`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..core.contracts import LANDMARKS
from ..models.networks.dst import DepthSequenceTransformer, decode_slices, landmark_loss
from ..models.inputs import window_channels
from ..models.localiser import DEFAULT_LOCALISER_INPUT, localiser_input
from ..models.output_folder import check_model_replaceable
from ..core.errors import InputError
from ..core.progress import Progress, no_progress
from .augment import ViewAugmenter, augment_settings
from .checkpoint import LoopState, interval
from .common import model_card, model_identity, seed_everything
from .data import case_plane, is_prepared, iter_cases, landmark_slices
from .slice_thickness import choose_thickness, thicken
from .distributed import DistContext
from .distributed import session as distributed_session
from .loop import TrainingHooks, fit, prepare_split

#: Recommended hyper-parameters for the demo localiser.
LANDMARK_DEFAULTS: dict[str, Any] = {
    "epochs": 150, "batch": 4, "lr": 5e-4, "weight_decay": 0.05, "val_fraction": 0.1,
    "encoder_features": (16, 32, 48, 64, 96), "dim": 128, "depth": 4, "heads": 4, "conv_kernel": 5,
    "max_slices": 320, "positional": "sinusoidal", "use_cls": False, "spacing_embedding": True, "dropout": 0.1,
    "fov_mm": 160.0, "size": 128, "crop_probability": 0.8, "crop_margin_slices": 3, "shift_pixels": 8,
    "augment": "monai", "augment_p": None, "checkpoint_every": "epoch", "name": "dst-demo", "version": "1.0",
}


@dataclass
class LandmarkCase:
    """Cached DST input of one case: HU view (int16 ``[D, S, S]``), targets (slices in the view), slice spacing and
    each landmark's exact position (z − z0)/sk in slices of the view (target = ceil(position) before clipping;
    None in caches made before it was kept: then target − 0.5, the plane height of the target slice)."""

    name: str
    view: np.ndarray
    targets: np.ndarray
    spacing_mm: float
    positions: np.ndarray | None = None


def prepare_landmark_case(case: Any, input_cfg: dict[str, Any], max_slices: int) -> LandmarkCase:
    """Reduce a case to its cached DST input (targets outside the view are clipped to its ends)."""
    view, offset = localiser_input(case.ct, case_plane(case), input_cfg, max_slices)
    targets = np.clip(landmark_slices(case, LANDMARKS) - offset, 0, view.shape[0] - 1)
    z0, sk = float(case.ct.grid.origin[2]), float(case.ct.grid.spacing[2])
    positions = np.array([(case.landmarks[n].z_mm - z0) / sk - offset for n in LANDMARKS], dtype=np.float64)
    hu = view.round().clamp(-1024, 3071).to(torch.int16).cpu().numpy()
    return LandmarkCase(case.name, hu, targets, sk, positions)


def case_positions(c: LandmarkCase) -> np.ndarray:
    """Each landmark's position in slices of the view (the target's plane height when not kept)."""
    return np.asarray(c.positions, dtype=np.float64) if c.positions is not None else c.targets - 0.5


def random_crop(c: LandmarkCase, rng: np.random.Generator, margin: int) -> tuple[int, int]:
    """Slice range [a, b) keeping every target at least ``margin`` slices from the cut ends."""
    return crop_range(c.targets, c.view.shape[0], rng, margin)


def crop_range(targets: np.ndarray, D: int, rng: np.random.Generator, margin: int) -> tuple[int, int]:
    """`random_crop` of a view of ``D`` slices with these ``targets``."""
    lo, hi = int(targets.min()), int(targets.max())
    a = int(rng.integers(0, max(0, lo - margin) + 1))
    b = int(rng.integers(min(D, hi + margin + 1), D + 1))
    return a, max(b, a + 1)


def shift_in_plane(view: torch.Tensor, dy: int, dx: int, fill: float = -1024.0) -> torch.Tensor:
    """Translate ``[D, S, S]`` by (dy, dx) pixels, filling with air."""
    out = torch.full_like(view, fill)
    S = view.shape[1:]
    ys, yd = (slice(0, S[0] - dy), slice(dy, S[0])) if dy >= 0 else (slice(-dy, S[0]), slice(0, S[0] + dy))
    xs, xd = (slice(0, S[1] - dx), slice(dx, S[1])) if dx >= 0 else (slice(-dx, S[1]), slice(0, S[1] + dx))
    out[:, yd, xd] = view[:, ys, xs]
    return out


def training_sample(c: LandmarkCase, rng: np.random.Generator, cfg: dict[str, Any], input_cfg: dict[str, Any],
                    device: torch.device, augmenter: ViewAugmenter | None = None
                    ) -> tuple[torch.Tensor, np.ndarray, float]:
    """One augmented (input ``[C, D', S, S]``, targets, slice spacing mm) triple (`iacseg.train.augment`)."""
    aug = augmenter or ViewAugmenter(cfg)
    view, targets, spacing = c.view, c.targets, float(c.spacing_mm)
    if aug.mode == "monai" and rng.random() < aug.p["slice_thickness"]:
        choice = choose_thickness(rng, view.shape[0], spacing)
        if choice is not None:
            m, phase = choice
            view, _, targets = thicken(view, case_positions(c), m, phase)
            spacing *= m
    a, b = (0, view.shape[0])
    if rng.random() < cfg["crop_probability"]:
        a, b = crop_range(targets, view.shape[0], rng, cfg["crop_margin_slices"])
    hu = torch.from_numpy(view[a:b].astype(np.float32)).to(device)
    if aug.mode == "monai":
        hu = aug(hu, rng)
    elif aug.mode == "basic":
        s = int(cfg["shift_pixels"])
        if s:
            hu = shift_in_plane(hu, int(rng.integers(-s, s + 1)), int(rng.integers(-s, s + 1)))
        hu = hu * float(rng.uniform(0.96, 1.04)) + float(rng.uniform(-15, 15))
        hu = hu + float(rng.uniform(0, 10)) * torch.randn_like(hu)
    return window_channels(hu, input_cfg["windows_hu"]), targets - a, spacing


def evaluate_landmarks(model: DepthSequenceTransformer, cases: Sequence[LandmarkCase], input_cfg: dict[str, Any],
                       device: torch.device) -> dict[str, float]:
    """MAE (slices), share within ±1 slice, top-1 accuracy and mean confidence over held-out cases."""
    model.eval()
    errors, conf = [], []
    with torch.inference_mode():
        for c in cases:
            x = window_channels(torch.from_numpy(c.view.astype(np.float32)).to(device), input_cfg["windows_hu"])
            logits, _ = model([x], torch.tensor([c.spacing_mm], device=device))
            dec = decode_slices(logits, torch.tensor([c.view.shape[0]], device=device))
            errors.append(np.abs(dec["slice"][0].cpu().numpy() - c.targets))
            conf.append(dec["confidence"][0].cpu().numpy())
    err = np.concatenate(errors) if errors else np.zeros(0)
    return {"val_mae_slices": float(err.mean()) if err.size else float("nan"),
            "val_within_1_slice": float((err <= 1).mean()) if err.size else float("nan"),
            "val_top1": float((err == 0).mean()) if err.size else float("nan"),
            "val_mean_confidence": float(np.concatenate(conf).mean()) if conf else float("nan"),
            "val_cases": len(cases)}


def _prepare_cases(data: Any, input_cfg: dict[str, Any], max_slices: int, phantom_options: dict[str, Any] | None,
                   progress: Progress) -> list[LandmarkCase]:
    if is_prepared(data, LandmarkCase):  # cached tensors made elsewhere (e.g. in parallel workers)
        return list(data)
    cases = []
    for n, case in enumerate(iter_cases(data, phantom_options)):
        cases.append(prepare_landmark_case(case, input_cfg, max_slices))
        progress("prepare", 0.0, f"case {n + 1}: {case.name}")
    return cases


def _parent_config(init_dir: str | Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """The parent localiser's config; copies its architecture and field of view into ``cfg``."""
    from ..models.folders import read_config

    parent = read_config(init_dir)
    if parent.get("kind") != "landmarks" or (parent.get("architecture") or {}).get("name") != "DepthSequenceTransformer":
        raise InputError(f"{init_dir} is not a landmark (DST) model; fine-tune the localiser from a landmarks "
                         "model folder made by iacseg train")
    cfg.update({k: v for k, v in parent["architecture"]["params"].items() if k != "in_channels"})
    cfg.update(fov_mm=float(parent.get("input", {}).get("fov_mm", cfg["fov_mm"])),
               size=int(parent.get("input", {}).get("size", cfg["size"])))
    return parent


def train_landmarks(data: Any, out_dir: str | Path, *, epochs: int = 150, batch: int = 4, lr: float = 5e-4,
                    device: Any = "auto", seed: int = 0, val_fraction: float = 0.1, val_every: int = 5,
                    progress: Progress = no_progress, phantom_options: dict[str, Any] | None = None,
                    val_data: Any = None, init: str | Path | None = None, name: str | None = None,
                    version: str | None = None, resume: bool = False, overwrite: bool = True,
                    **hp: Any) -> Path:
    """Train a DST landmark localiser and save it as a model folder at ``out_dir`` (returns its path).

    One epoch = every training case once (shuffled) in batches of ``batch``. ``val_data``: the validation cases;
    when given, all of ``data`` trains (no random split). ``init``: a landmarks model folder to fine-tune (its
    architecture, field of view and weights). ``name``/``version`` default to "dst-demo" "1.0", or for a
    fine-tune to the parent's name and its version's last number + 1. Other keys of `LANDMARK_DEFAULTS`
    (architecture, fov_mm, size, crop and shift, augment, augment_p, checkpoint_every) may be given; ``augment``:
    "monai" | "basic" | "none" (`iacseg.train.augment`). A checkpoint is kept in ``<out_dir>.checkpoint`` every
    ``checkpoint_every`` steps or each epoch; ``resume=True`` continues from it (`iacseg.train.checkpoint`).
    Under ``torchrun`` every rank runs the same steps on its own shuffles (DDP; effective batch = ``batch`` ×
    world size); rank 0 validates and saves. ``out_dir`` is refused before any work when it is a non-empty folder
    other than an earlier IACSeg model folder, which is replaced only with ``overwrite``
    (`iacseg.models.output_folder`)."""
    cfg = {**LANDMARK_DEFAULTS, **hp, "epochs": epochs, "batch": batch, "lr": lr, "seed": seed,
           "val_fraction": val_fraction, "val_every": val_every}
    augment_settings(cfg, "landmarks"), interval(cfg["checkpoint_every"])  # refuse bad values before any work
    check_model_replaceable(out_dir, overwrite)  # before any work: never a user's folder (see the docstring)
    with distributed_session(device) as ctx:
        return _fit(ctx, data, Path(out_dir), cfg, progress if ctx.is_main else no_progress, phantom_options,
                    val_data, init, name, version, resume, overwrite)


def _fit(ctx: DistContext, data: Any, out_dir: Path, cfg: dict[str, Any], progress: Progress,
         phantom_options: dict[str, Any] | None, val_data: Any, init_dir: str | Path | None, name: str | None,
         version: str | None, resume: bool, overwrite: bool = True) -> Path:
    """The localiser's part of the training: its cases, network and hooks; `iacseg.train.loop.fit` does the rest."""
    dev = ctx.device
    rng = seed_everything(cfg["seed"])
    t0 = time.time()
    parent = _parent_config(init_dir, cfg) if init_dir else None
    cfg["name"], cfg["version"] = model_identity(cfg, parent, name, version)
    input_cfg = {**DEFAULT_LOCALISER_INPUT, "fov_mm": float(cfg["fov_mm"]), "size": int(cfg["size"])}
    train_cases, val_cases, all_cases = prepare_split(
        lambda source, is_val: _prepare_cases(source, input_cfg, int(cfg["max_slices"]), phantom_options, progress),
        data, val_data, cfg["val_fraction"], cfg["seed"])
    arch_keys = ("encoder_features", "dim", "depth", "heads", "conv_kernel", "max_slices", "positional", "use_cls",
                 "spacing_embedding", "dropout")
    params = {k: cfg[k] for k in arch_keys + ("mlp_ratio", "n_landmarks") if k in cfg}
    net = DepthSequenceTransformer(in_channels=len(input_cfg["windows_hu"]), **params).to(dev)
    if init_dir:
        from ..models.loading import load_state
        from ..core.files import sha256_of

        try:
            net.load_state_dict(load_state(init_dir))
        except RuntimeError:
            raise InputError(f"the weights in {init_dir} do not match its DST configuration; fine-tune from a "
                             "landmarks model folder made by iacseg train") from None
        cfg["parent"] = {"name": parent.get("name"), "version": parent.get("version"),  # type: ignore[union-attr]
                         "sha256": sha256_of(Path(init_dir) / "model.safetensors")}
    hooks = _hooks(net, cfg, input_cfg, train_cases, val_cases, dev)
    return fit(ctx, net, hooks, cfg, train_cases, val_cases, all_cases, rng, t0, out_dir, progress, resume,
               overwrite, data, phantom_options, val_data is not None)


def _hooks(net: DepthSequenceTransformer, cfg: dict[str, Any], input_cfg: dict[str, Any],
           train_cases: list[LandmarkCase], val_cases: list[LandmarkCase], dev: torch.device) -> TrainingHooks:
    augmenter = ViewAugmenter(cfg)
    batch_size = cfg["batch"]
    arch = {"name": "DepthSequenceTransformer", "params": {"in_channels": len(input_cfg["windows_hu"]), **net.config}}

    def batch(rng: np.random.Generator, loop: LoopState, step_in_epoch: int) -> tuple[Any, ...]:
        order = loop.order or []
        chosen = [train_cases[i] for i in order[step_in_epoch * batch_size:(step_in_epoch + 1) * batch_size]]
        samples = [training_sample(c, rng, cfg, input_cfg, dev, augmenter) for c in chosen]
        xs = [x for x, _, _ in samples]
        targets = torch.tensor(np.stack([t for _, t, _ in samples]), device=dev)
        n_slices = torch.tensor([x.shape[1] for x in xs], device=dev)
        spacing = torch.tensor([sp for _, _, sp in samples], device=dev)
        return xs, targets, n_slices, spacing

    def loss(model: torch.nn.Module, b: tuple[Any, ...], amp: Any) -> torch.Tensor:
        xs, targets, n_slices, spacing = b
        with amp():
            logits, _ = model(xs, spacing)
        return landmark_loss(logits.float(), targets, n_slices)

    def model_config(net: torch.nn.Module, metrics: dict[str, Any],
                     record: dict[str, Any]) -> tuple[dict[str, Any], str]:
        config = {
            "name": cfg["name"], "version": cfg["version"], "kind": "landmarks",
            "architecture": arch,
            "input": input_cfg, "landmarks": list(LANDMARKS),
            "slice_convention": "target k* = ceil((z - z0)/sk); predicted plane z = z0 + (k - 0.5)*sk",
            "n_parameters": int(sum(p.numel() for p in net.parameters())),
            "metrics": metrics,
            "training": record,
        }
        card = model_card("Landmark localiser (Depth-Sequence Transformer)", config,
                          "Slice index of the six ICA landmark planes (L/R carotid canal, petrolingual ligament, "
                          "anterior clinoid) on an axial non-contrast head CT, splitting each ICA into cervical | "
                          "petrous | cavernous | supraclinoid.",
                          "DST (Hou et al.): slice-wise 3D CNN encoder with stride (1, 2, 2), one token per native "
                          "slice, left-padding with attention mask, convolution-enhanced self-attention blocks, six "
                          "softmax distributions over slices trained with cross-entropy.")
        return config, card

    return TrainingHooks(
        kind="landmarks", architecture=arch, input_cfg=input_cfg,
        steps_per_epoch=max(1, int(np.ceil(len(train_cases) / batch_size))), clip_norm=5.0, batch=batch, loss=loss,
        validate=lambda module: evaluate_landmarks(module, val_cases, input_cfg, dev),  # type: ignore[arg-type]
        score=lambda m: [m["val_mae_slices"], -m["val_within_1_slice"]], higher_is_better=False,
        describe_validation=lambda m: (f" val MAE {m['val_mae_slices']:.2f} slices, "
                                       f"≤1 slice {m['val_within_1_slice']:.1%}"),
        model_config=model_config,
        start_epoch=lambda rng: rng.permutation(len(train_cases)).tolist())
