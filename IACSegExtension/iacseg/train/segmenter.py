"""Training the calcification segmenter (ResEnc U-Net, 3D ViT or GRCSF: `iacseg.train.networks`) on ICA-region
crops of the CTs' own grids.

Each case is reduced once to an int16 HU crop around the ICA region (`iacseg.preprocess.ica_region` from the
inference plane and the truth landmarks, randomly jittered by a few mm) plus its calcium mask. Patches are
centred on calcium (``fg_fraction``), on calcium-like negatives (``hard_fraction``: `calcium_like_points`), on
other ≥ 130 HU voxels — bone — (``bone_fraction``) or anywhere in the region; augmentation by MONAI transforms
(`iacseg.train.augment`: spatial ones move image and label alike, appearance ones change the image only).
Loss = soft Dice (batch) + BCE, with optional deep supervision.
Validation runs the inference path (gated sliding window + ≥ 130 HU + no single voxels) on held-out cases and
calibrates the threshold by the rule of ``iacseg calibrate`` (`iacseg.models.calibration`: the least mean
per-case |volume difference|, Jin et al.). The training loop itself is `iacseg.train.loop`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..core.contracts import CALCIUM_HU
from ..core.progress import Progress, no_progress
from ..core.threshold import DEFAULT_THRESHOLD
from ..models.calibration import THRESHOLDS, calibrate_threshold, threshold_sweep
from ..models.output_folder import check_model_replaceable
from ..models.segmenter import DEFAULT_SEGMENTER_INPUT, expand_box, segmenter_input
from ..models.sliding import fit_window, sliding_window_proba
from .augment import SegmenterAugmenter, augment_settings
from .checkpoint import LoopState, interval
from .common import model_card, model_identity, seed_everything
from .data import Case, case_plane, is_prepared, iter_cases
from .distributed import DistContext
from .distributed import session as distributed_session
from .loop import TrainingHooks, fit, prepare_split
from .networks import (ARCHITECTURE_NAMES, build_segmenter_network, default_model_name, describe_network,
                       parent_windows, read_parent)

#: Recommended hyper-parameters for the demo segmenter (GPU: minutes; 2-core CPU: hours — see the report).
SEGMENTER_DEFAULTS: dict[str, Any] = {
    "epochs": 60, "steps_per_epoch": 100, "patch": (48, 96, 96), "batch": 2, "lr": 2e-3,
    "weight_decay": 1e-4, "val_fraction": 0.1, "val_every": 10, "features": (8, 16, 32, 64),
    "blocks": (1, 1, 2, 2), "strides": ((1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2)), "deep_supervision": True,
    "fg_fraction": 0.5, "hard_fraction": 0.2, "bone_fraction": 0.2, "roi_jitter_mm": 5.0, "augment": "monai",
    "augment_p": None,
    "checkpoint_every": "epoch", "name": "unet-demo", "version": "1.0",
}


@dataclass
class SegmenterCase:
    """Cached training tensors of one case: HU crop (int16), calcium mask, ROI inside the crop, sample points."""

    name: str
    hu: np.ndarray
    calcium: np.ndarray
    roi: tuple[slice, slice, slice]
    fg_points: np.ndarray
    bone_points: np.ndarray
    calcium_outside_roi: int
    hard_points: np.ndarray | None = None  # `calcium_like_points`, found when training starts (not cached)


#: Negatives that look like calcium rather than plain bone (`calcium_like_points`): ≥ 130 HU voxels outside the
#: ICA calcium that are dimmer than this (bone edges in partial volume, faint calcification of other vessels) …
HARD_NEGATIVE_MAX_HU = 450.0
#: … or lie in a dense 26-connected component of fewer voxels than this (calcification outside the ICA — vertebral
#: arteries, falx, choroid plexus, pineal, dura — and small bone fragments), not in the skull base's bone.
HARD_NEGATIVE_MAX_VOXELS = 3000
#: Fewer validation cases with calcium than this keep the parent's (or the default) threshold (`validate`).
MIN_CALIBRATION_CASES = 5


def _jitter_box(box: Sequence[slice], spacing_kji: Sequence[float], mm: float, shape: Sequence[int],
                rng: np.random.Generator) -> tuple[slice, slice, slice]:
    out = []
    for s, sp, n in zip(box, spacing_kji, shape):
        d = int(round(mm / sp))
        a = s.start + int(rng.integers(-d, d + 1)) if d else s.start
        b = s.stop + int(rng.integers(-d, d + 1)) if d else s.stop
        a, b = max(0, a), min(n, b)
        out.append(slice(a, max(b, a + 1)))
    return (out[0], out[1], out[2])


def prepare_segmenter_case(case: Case, patch: Sequence[int], rng: np.random.Generator,
                           roi_jitter_mm: float = 0.0, max_points: int = 4000,
                           petrous_oversampling: int = 1) -> SegmenterCase:
    """Reduce a case to its cached crop (ROI from the inference functions, context margin of half a patch).

    ``petrous_oversampling`` > 1 repeats the sample points of the petrous segment — calcium in the bony carotid
    canal and the canal's bone between the carotid-canal and petrolingual planes, the hardest place to tell
    calcium from bone — that many times, so patches centre there more often."""
    from ..preprocess import ica_region

    shape = case.ct.hu.shape
    sp = case.ct.grid.spacing[::-1]
    roi = _jitter_box(ica_region(case.ct, case_plane(case), case.landmarks), sp, roi_jitter_mm, shape, rng)
    crop = expand_box(roi, [p // 2 for p in patch], shape)
    hu = np.clip(case.ct.hu[crop], -1024, 3071).astype(np.int16)
    calcium = case.labels[crop] > 0
    inner = tuple(slice(r.start - c.start, r.stop - c.start) for r, c in zip(roi, crop))
    in_roi = np.zeros_like(calcium)
    in_roi[inner] = True
    fg = np.argwhere(calcium & in_roi)
    bone = np.argwhere((hu >= CALCIUM_HU) & ~calcium & in_roi)
    if len(fg) > max_points:
        fg = fg[rng.choice(len(fg), max_points, replace=False)]
    if len(bone) > max_points:
        bone = bone[rng.choice(len(bone), max_points, replace=False)]
    if petrous_oversampling > 1:
        fg, bone = _oversample_petrous(case, crop, fg, bone, petrous_oversampling)
    outside = int(np.count_nonzero(case.labels > 0) - np.count_nonzero(calcium & in_roi))
    return SegmenterCase(case.name, hu, calcium, inner, fg, bone, outside)  # type: ignore[arg-type]


def _oversample_petrous(case: Case, crop: Sequence[slice], fg: np.ndarray, bone: np.ndarray,
                        times: int) -> tuple[np.ndarray, np.ndarray]:
    """Repeat fg points labelled petrous and bone points at petrous heights ``times`` times (crop indices)."""
    from ..core.contracts import segment_id

    labels = case.labels[tuple(crop)]
    petrous = np.isin(labels[tuple(fg.T)], (segment_id("L", "petrous"), segment_id("R", "petrous")))
    z0, sk = case.ct.grid.origin[2], case.ct.grid.spacing[2]  # axial LPS grid: z of slice k = z0 + k·sk
    lo = min(case.landmarks[f"{s}_carotid_canal"].z_mm for s in "LR")
    hi = max(case.landmarks[f"{s}_petrolingual"].z_mm for s in "LR")
    z_bone = z0 + (bone[:, 0] + crop[0].start) * sk
    at_petrous = (z_bone >= lo - 2.0) & (z_bone <= hi + 2.0)
    fg = np.concatenate([fg] + [fg[petrous]] * (times - 1)) if petrous.any() else fg
    bone = np.concatenate([bone] + [bone[at_petrous]] * (times - 1)) if at_petrous.any() else bone
    return fg, bone


def calcium_like_points(c: SegmenterCase, rng: np.random.Generator, max_points: int = 4000) -> np.ndarray:
    """Crop indices ``[n, 3]`` of the case's hard negatives in its ROI: ≥ 130 HU voxels outside the calcium that
    are dimmer than `HARD_NEGATIVE_MAX_HU` or belong to a small dense component (`HARD_NEGATIVE_MAX_VOXELS`).

    Plain bone is most of the ≥ 130 HU voxels, so sampling "other dense voxels" uniformly almost never centres a
    patch on a vertebral-artery or dural calcification or on a thin bone edge — the false positives of the
    segmenter on unseen kernels and anatomies; these points make them a fixed share of the patches."""
    roi = c.roi
    hu = c.hu[roi]
    dense = (hu >= CALCIUM_HU) & ~c.calcium[roi]
    if not dense.any():
        return np.empty((0, 3), np.int64)
    comp, _ = ndimage.label(dense, structure=np.ones((3, 3, 3), bool))
    small = np.bincount(comp.ravel()) < HARD_NEGATIVE_MAX_VOXELS
    small[0] = False
    points = np.argwhere(dense & ((hu < HARD_NEGATIVE_MAX_HU) | small[comp])) + np.array([s.start for s in roi])
    if len(points) > max_points:
        points = points[rng.choice(len(points), max_points, replace=False)]
    return points


def _patch_size(c: SegmenterCase, patch: Sequence[int], divisor: Sequence[int]) -> tuple[int, int, int]:
    return fit_window(c.hu.shape, patch, divisor)


def sample_patch(c: SegmenterCase, size: Sequence[int], rng: np.random.Generator, fg_fraction: float,
                 bone_fraction: float, context: Sequence[int] = (0, 0, 0),
                 hard_fraction: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """One (HU patch, calcium patch) of ``size`` (k, j, i) plus ``context`` voxels on each side (for the spatial
    augmentation), air/zero padded where it leaves the crop. The centre is a calcium point (``fg_fraction``), a
    hard-negative point (``hard_fraction``, ``c.hard_points``), a bone point (``bone_fraction``) or anywhere in
    the ROI; a kind the case has no points of falls through to the next."""
    u = rng.random()
    hard = c.hard_points if c.hard_points is not None else np.empty((0, 3), np.int64)
    if u < fg_fraction and len(c.fg_points):
        centre = c.fg_points[rng.integers(len(c.fg_points))]
    elif fg_fraction <= u < fg_fraction + hard_fraction and len(hard):
        centre = hard[rng.integers(len(hard))]
    elif u < fg_fraction + hard_fraction + bone_fraction and len(c.bone_points):
        centre = c.bone_points[rng.integers(len(c.bone_points))]
    else:
        centre = np.array([rng.integers(s.start, s.stop) for s in c.roi])
    centre = centre + rng.integers(-np.asarray(size) // 4, np.asarray(size) // 4 + 1)
    full = tuple(int(p) + 2 * int(m) for p, m in zip(size, context))
    hu = np.full(full, -1024, dtype=np.int16)
    lab = np.zeros(full, dtype=bool)
    src, dst = [], []
    for ax, (n, p, m) in enumerate(zip(c.hu.shape, size, context)):
        start = int(np.clip(centre[ax] - p // 2, min(0, n - p), max(0, n - p))) - int(m)
        p = p + 2 * int(m)
        a, b = max(start, 0), min(start + p, n)
        src.append(slice(a, b))
        dst.append(slice(a - start, b - start))
    hu[tuple(dst)] = c.hu[tuple(src)]
    lab[tuple(dst)] = c.calcium[tuple(src)]
    return hu, lab


def dice_bce_loss(outputs: torch.Tensor | list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Soft Dice over the batch + BCE; deep-supervision outputs weighted 1, ½, ¼… (normalised)."""
    outs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    weights = [0.5 ** n for n in range(len(outs))]
    total = 0.0
    for w, logits in zip(weights, outs):
        t = target if logits.shape[2:] == target.shape[2:] else F.adaptive_max_pool3d(target, logits.shape[2:])
        p = torch.sigmoid(logits.float())
        dice = 1.0 - (2.0 * (p * t).sum() + 1.0) / (p.sum() + t.sum() + 1.0)
        total = total + w * (dice + F.binary_cross_entropy_with_logits(logits.float(), t))
    return total / sum(weights)


def predict_crop(module: torch.nn.Module, c: SegmenterCase, input_cfg: dict[str, Any],
                 device: torch.device) -> np.ndarray:
    """Probability on the case's ROI (inside its crop) by the inference sliding window."""
    module.eval()
    hu = torch.from_numpy(c.hu.astype(np.float32)).to(device)

    def logits(x: torch.Tensor) -> torch.Tensor:
        out = module(x)
        return out[0] if isinstance(out, (list, tuple)) else out

    with torch.inference_mode():
        prob, _ = sliding_window_proba(segmenter_input(hu, input_cfg), logits, input_cfg["patch_size_kji"],
                                       overlap=float(input_cfg["overlap"]), gate=hu >= input_cfg["gate_min_hu"],
                                       batch=2, divisor=module.divisor)
    return prob.cpu().numpy()[c.roi]


def validate(module: torch.nn.Module, cases: list[SegmenterCase], input_cfg: dict[str, Any],
             device: torch.device, fallback_threshold: float | None = None) -> dict[str, Any]:
    """Dice (per-case mean and pooled) at 0.5 and at the calibrated threshold: the one calibration rule
    (`iacseg.models.calibration.calibrate_threshold`, least mean per-case |volume difference|, the grid
    `THRESHOLDS`) applied to the ROI of every validation case, as ``iacseg calibrate`` applies it to a
    development set. Volumes are in voxels of each case's grid.

    With ``fallback_threshold`` and fewer than `MIN_CALIBRATION_CASES` validation cases holding calcium, that
    threshold is kept instead (``threshold_source`` says which): a threshold fitted to two or three cases swings
    from 0.01 to 0.9 with their kernels and is no calibration — ``iacseg calibrate`` on a development set is."""
    sweeps = []
    for c in cases:
        prob = predict_crop(module, c, input_cfg, device)
        sweeps.append(threshold_sweep(prob, c.hu[c.roi].astype(np.float32), c.calcium[c.roi], THRESHOLDS))
    truth = np.array([s["truth_voxels"] for s in sweeps], dtype=np.float64)
    pred = {t: [float(s["pred_voxels"][n]) for s in sweeps] for n, t in enumerate(THRESHOLDS)}
    calibrated, _ = calibrate_threshold(pred, truth)
    source = f"calibrated on {int((truth > 0).sum())} validation cases with calcium"
    if fallback_threshold is not None and (truth > 0).sum() < MIN_CALIBRATION_CASES:
        calibrated = min(THRESHOLDS, key=lambda t: abs(t - fallback_threshold))
        source = (f"kept {calibrated:.2f}: only {int((truth > 0).sum())} validation cases with calcium "
                  f"(< {MIN_CALIBRATION_CASES}); run iacseg calibrate on a development set")

    def summary(t: float) -> tuple[float, float]:
        n = THRESHOLDS.index(t)
        inter = np.array([float(s["overlap_voxels"][n]) for s in sweeps])
        total = np.array(pred[t]) + truth
        dice = [2 * i / d if d else 1.0 for i, d in zip(inter, total)]
        return float(np.mean(dice)), float(2 * inter.sum() / max(total.sum(), 1.0))

    mean05, pooled05 = summary(0.5)
    mean_c, pooled_c = summary(calibrated)
    diff = np.array(pred[calibrated]) - truth
    return {"val_dice_mean@0.5": mean05, "val_dice_pooled@0.5": pooled05, "threshold": float(calibrated),
            "val_dice_mean": mean_c, "val_dice_pooled": pooled_c,
            "val_volume_diff_voxels": float(diff.sum()), "val_mean_abs_volume_diff_voxels": float(np.abs(diff).mean()),
            "val_cases": len(cases), "threshold_source": source}


def _prepare_cases(data: Any, patch: Sequence[int], rng: np.random.Generator, roi_jitter_mm: float,
                   phantom_options: dict[str, Any] | None, progress: Progress) -> list[SegmenterCase]:
    if is_prepared(data, SegmenterCase):  # cached tensors made elsewhere (e.g. in parallel workers)
        return list(data)
    cases = []
    for n, case in enumerate(iter_cases(data, phantom_options)):
        cases.append(prepare_segmenter_case(case, patch, rng, roi_jitter_mm))
        progress("prepare", 0.0, f"case {n + 1}: {case.name}")
    return cases


def train_segmenter(data: Any, out_dir: str | Path, *, epochs: int = 60, steps_per_epoch: int = 100,
                    patch: Sequence[int] = (48, 96, 96), batch: int = 2, lr: float = 2e-3, device: Any = "auto",
                    seed: int = 0, val_fraction: float = 0.1, val_every: int = 10,
                    progress: Progress = no_progress, phantom_options: dict[str, Any] | None = None,
                    val_data: Any = None, init: str | Path | None = None, name: str | None = None,
                    version: str | None = None, resume: bool = False, overwrite: bool = True,
                    **hp: Any) -> Path:
    """Train a calcification segmenter and save it as a model folder at ``out_dir``.

    ``data``: see `iacseg.train.data`. ``patch`` (k, j, i voxels) is also the inference window (a multiple of the
    network's divisor). ``val_data``: the validation cases (same kinds of source); when given, all of ``data``
    trains and no random split is made (its ROIs are not jittered, as at inference). The network: ``arch``
    "resenc-unet" (default) | "vit" | "grcsf", with ``decoder``/``vit_config``/``vit_patch``/``decoder_channels``
    for "vit" (`iacseg.train.networks`). ``init``: a segmenter model folder to fine-tune (its architecture and
    weights), a ``desd-encoder`` folder (`iacseg.train.pretrain_desd`: its architecture, its intensity windows and
    encoder weights; the decoder starts fresh and the new model counts as a fresh one), or an ``mae`` folder
    (vit: its encoder weights, patch and windows; grcsf: the MAE of its residual maps). ``name``/``version`` of
    the new model default to "unet-demo" (vit: "vit-S-p8-unetr" etc., grcsf: "grcsf") "1.0", or for a fine-tune
    to the parent's name and its version's last number + 1. Other keys of `SEGMENTER_DEFAULTS`
    (features, blocks, strides, deep_supervision, weight_decay, fg_fraction, hard_fraction, bone_fraction,
    roi_jitter_mm, augment, augment_p, checkpoint_every, time_budget_s) may be given. ``augment``: "monai" |
    "basic" | "none" (`iacseg.train.augment`). A checkpoint is kept in ``<out_dir>.checkpoint`` every
    ``checkpoint_every`` steps or each epoch ("epoch"); ``resume=True`` continues from it
    (`iacseg.train.checkpoint`). Under ``torchrun`` the ranks train one model with DDP (`iacseg.train.distributed`;
    effective batch = ``batch`` × world size); rank 0 validates and saves. ``out_dir`` is refused before any work
    when it is a non-empty folder other than an earlier IACSeg model folder, which is replaced only with
    ``overwrite`` (`iacseg.models.output_folder`).
    Returns the model folder path (on every rank)."""
    cfg = {**SEGMENTER_DEFAULTS, **hp, "epochs": epochs, "steps_per_epoch": steps_per_epoch, "patch": tuple(patch),
           "batch": batch, "lr": lr, "seed": seed, "val_fraction": val_fraction, "val_every": val_every}
    augment_settings(cfg, "segmenter"), interval(cfg["checkpoint_every"])  # refuse bad values before any work
    check_model_replaceable(out_dir, overwrite)  # before any work: never a user's folder (see the docstring)
    with distributed_session(device) as ctx:
        return _fit(ctx, data, Path(out_dir), cfg, progress if ctx.is_main else no_progress, phantom_options,
                    val_data, init, name, version, resume, overwrite)


def _fit(ctx: DistContext, data: Any, out_dir: Path, cfg: dict[str, Any], progress: Progress,
         phantom_options: dict[str, Any] | None, val_data: Any, init_dir: str | Path | None, name: str | None,
         version: str | None, resume: bool, overwrite: bool = True) -> Path:
    """The segmenter's part of the training: its cases, network and hooks; `iacseg.train.loop.fit` does the rest."""
    rng = seed_everything(cfg["seed"])
    t0 = time.time()
    train_cases, val_cases, all_cases = prepare_split(
        lambda source, is_val: _prepare_cases(source, cfg["patch"], rng, 0.0 if is_val else cfg["roi_jitter_mm"],
                                              phantom_options, progress),
        data, val_data, cfg["val_fraction"], cfg["seed"])
    input_cfg = {**DEFAULT_SEGMENTER_INPUT, "patch_size_kji": list(cfg["patch"])}
    parent = read_parent(init_dir)
    windows = parent_windows(parent)
    if windows is not None:  # a pre-trained encoder learnt on its own intensity windows; the new model is fresh
        input_cfg["windows_hu"] = windows
    net, parent_record = build_segmenter_network(cfg.get("arch"), cfg, len(input_cfg["windows_hu"]), init_dir)
    net = net.to(ctx.device)
    fine_tune = parent is not None and parent.get("kind") == "segmenter"
    cfg["name"] = default_model_name(cfg["arch"], cfg) or cfg["name"]
    cfg["name"], cfg["version"] = model_identity(cfg, parent if fine_tune else None, name, version)
    if parent_record is not None:
        cfg["parent"] = parent_record
    fallback = float(parent.get("threshold", DEFAULT_THRESHOLD)) if fine_tune else DEFAULT_THRESHOLD
    hooks = _hooks(net, cfg, input_cfg, train_cases, val_cases, ctx.device, fallback)
    return fit(ctx, net, hooks, cfg, train_cases, val_cases, all_cases, rng, t0, out_dir, progress, resume,
               overwrite, data, phantom_options, val_data is not None)


def _hooks(net: torch.nn.Module, cfg: dict[str, Any], input_cfg: dict[str, Any], train_cases: list[SegmenterCase],
           val_cases: list[SegmenterCase], dev: torch.device,
           fallback_threshold: float = DEFAULT_THRESHOLD) -> TrainingHooks:
    augmenter = SegmenterAugmenter(cfg)
    arch_name = ARCHITECTURE_NAMES[cfg["arch"]]
    if cfg.get("hard_fraction", 0.0) > 0:
        points_rng = np.random.default_rng(cfg["seed"])
        for c in train_cases:
            if c.hard_points is None:
                c.hard_points = calcium_like_points(c, points_rng)

    def batch(rng: np.random.Generator, loop: LoopState, step_in_epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        c = train_cases[int(rng.integers(len(train_cases)))]
        size = _patch_size(c, cfg["patch"], net.divisor)
        margin = augmenter.context(size)
        pairs = [sample_patch(c, size, rng, cfg["fg_fraction"], cfg["bone_fraction"], margin,
                              cfg.get("hard_fraction", 0.0))
                 for _ in range(cfg["batch"])]
        hu = torch.from_numpy(np.stack([p[0] for p in pairs]).astype(np.float32)).to(dev)
        lab = torch.from_numpy(np.stack([p[1] for p in pairs])).to(dev)
        hu, lab = augmenter(hu, lab, rng, size)
        return torch.stack([segmenter_input(h, input_cfg) for h in hu]), lab

    def loss(model: torch.nn.Module, b: tuple[torch.Tensor, torch.Tensor], amp: Any) -> torch.Tensor:
        x, lab = b
        with amp():
            return dice_bce_loss(model(x), lab[:, None].float())

    def model_config(net: torch.nn.Module, metrics: dict[str, Any],
                     record: dict[str, Any]) -> tuple[dict[str, Any], str]:
        net.deep_supervision = False
        arch_params = dict(net.config)
        if "deep_supervision" in arch_params:  # saved for inference: one full-resolution output
            arch_params["deep_supervision"] = False
        config = {
            "name": cfg["name"], "version": cfg["version"], "kind": "segmenter",
            "architecture": {"name": arch_name, "params": arch_params},
            "input": input_cfg, "threshold": float(metrics.get("threshold", DEFAULT_THRESHOLD)), "min_hu": CALCIUM_HU,
            "n_parameters": int(sum(p.numel() for p in net.parameters())),
            "metrics": metrics,
            "training": record,
        }
        title, method = describe_network(cfg["arch"], net)
        card = model_card(title, config,
                          "Probability of intracranial ICA calcification per voxel inside the ICA region of an axial "
                          "non-contrast head CT; thresholded at the calibrated threshold, ≥ 130 HU, single voxels "
                          "removed.", method)
        return config, card

    return TrainingHooks(
        kind="segmenter", architecture={"name": arch_name, "params": net.config}, input_cfg=input_cfg,
        steps_per_epoch=cfg["steps_per_epoch"], clip_norm=12.0, batch=batch, loss=loss,
        validate=lambda module: validate(module, val_cases, input_cfg, dev, fallback_threshold),
        score=lambda m: [m["val_dice_mean"]], higher_is_better=True,
        describe_validation=lambda m: f" val Dice {m['val_dice_mean']:.3f} (threshold {m['threshold']:.2f})",
        model_config=model_config)
