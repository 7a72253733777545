"""Training augmentation of both trainers (hyper-parameter ``"augment"``: "monai" (default) | "basic" | "none").

"monai" — MONAI transforms (and the HU-aware ones of `iacseg.train.hu_transforms`), each with its probability
(`SEGMENTER_AUGMENT`, `LANDMARK_AUGMENT`; change them with the hyper-parameter ``"augment_p"``, e.g.
``{"elastic": 0.0}``). All their randomness is seeded from the trainer's numpy generator, so a checkpoint's
generator state replays them exactly.

* Segmenter patches (HU ``[D, H, W]`` on the CT's native grid; label = calcium truth):
  spatial, applied to image and label alike (label nearest-neighbour, image linear; each transform resamples on
  its own, so a patch both rotated and deformed — 2.5 % — is resampled twice; the trainer samples the patch
  with a context margin (`SegmenterAugmenter.context`) that is cut off after them, so that rotated corners hold
  CT, not padding):
  flips along each axis, a small affine (in-plane rotation ±15°, ±5° about the other axes, scale 0.9–1.1
  per axis) and rarely a smooth low-resolution elastic deformation (a 4×6×6 random field upsampled: MONAI's
  `RandSmoothDeformd`; its 3D `Rand3DElasticd` costs ~0.35 s per 48×96×96 patch on one core);
  image only: Gaussian blur (soft kernels), Gaussian sharpening (sharp kernels), low-resolution simulation
  (down/up-sampling) and the thick-slab look along slices (`RandSlabAverage`), white and spatially correlated
  noise, a smooth additive HU field, contrast (`RandHUGamma`), intensity scale (±4 % about 0 HU) and shift
  (±15 HU).
* DST views (HU ``[D, S, S]``, every native slice; per case): slice-thickness simulation (groups of m = 2..4
  adjacent slices averaged into one, targets and spacing recomputed: `iacseg.train.slice_thickness`), an
  in-plane affine (the same for every slice: rotation ±12°, scale 0.9–1.1, shift ± ``shift_pixels``), then the
  same image-only family.

**Labels and the 130 HU rule.** The label is the calcium truth and follows every spatial transform exactly; no
appearance transform changes it. The contrast change keeps the ≥ 130 HU set unchanged. The others keep HU
meaning within what scanners differ by (scale ±4 %, shift ±15 HU, noise ≤ 15 HU, field ≤ 30 HU); blur, low
resolution and thick slabs lower the peak HU of small plaques, so the truth may then hold voxels under 130 HU —
as on a soft-kernel or thick-slice scan, whose truth is the plaque, not the blurred number. They are applied with
small probabilities (together ~40 % of patches), and at inference the ≥ 130 HU rule on the real image decides.

"basic" — the earlier behaviour (flips, HU scale ±4 %, shift ±15 HU, white noise; DST: integer in-plane
shifts and the same jitter). "none" — no augmentation (the DST's random z-crops stay, set by
``crop_probability``).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator

import numpy as np
import torch
from monai import transforms as T

from ..core.errors import InputError
from .hu_transforms import RandCorrelatedNoise, RandHUField, RandHUGamma, RandSlabAverage, seeds

AUGMENT_MODES = ("monai", "basic", "none")
AIR_HU = -1024.0
#: Context margin per side, as a fraction of the patch size (k, j, i), that a ±15° in-plane / ±5° out-of-plane
#: rotation with scale ≥ 0.9 needs so that the central patch stays inside the sampled one.
CONTEXT_FRACTION = (0.25, 0.21, 0.21)
#: … plus this much when the elastic deformation is on (it moves voxels by up to 2.5 % of the sampled size).
ELASTIC_FRACTION = 0.04

#: Probability of each segmenter transform per patch ("monai").
SEGMENTER_AUGMENT: dict[str, float] = {
    "flip": 0.5, "affine": 0.25, "elastic": 0.1, "blur": 0.15, "sharpen": 0.1, "low_resolution": 0.1,
    "thick_slab": 0.1, "noise": 0.25, "correlated_noise": 0.15, "hu_field": 0.15, "gamma": 0.3, "scale": 0.5,
    "shift": 0.5,
}
#: Probability of each DST transform per case and step ("monai").
LANDMARK_AUGMENT: dict[str, float] = {
    "slice_thickness": 0.3, "affine": 0.8, "blur": 0.15, "sharpen": 0.1, "low_resolution": 0.1, "thick_slab": 0.1,
    "noise": 0.3, "correlated_noise": 0.15, "hu_field": 0.15, "gamma": 0.3, "scale": 0.5, "shift": 0.5,
}
#: What each transform does (for the model config and card).
RANGES: dict[str, str] = {
    "flip": "each of k, j, i (image and label)",
    "affine": "MONAI RandAffined: rotation ±15° in-plane, ±5° about j and i, scale 0.9–1.1 per axis (image "
              "linear, label nearest, air outside)",
    "elastic": "MONAI RandSmoothDeformd: 4×6×6 random field upsampled, up to 2.5 % of the patch size",
    "blur": "MONAI RandGaussianSmooth, σ 0.2–0.8 voxel along slices, 0.3–1.2 in-plane (image only)",
    "sharpen": "MONAI RandGaussianSharpen, σ1 0.2–0.4, σ2 0.5–1.0, α 0.3–1.5 (image only)",
    "low_resolution": "MONAI RandSimulateLowResolution, zoom 0.5–0.85 (area down, trilinear up; image only)",
    "thick_slab": "mean of m = 2–4 neighbouring slices on the same grid (image only)",
    "slice_thickness": "DST: groups of m = 2–4 slices averaged into one (thickness ≤ 10 mm, random phase); "
                       "targets k* = ceil((z − z0')/(m·sk)) and spacing m·sk recomputed",
    "noise": "MONAI RandGaussianNoise, σ 0–15 HU",
    "correlated_noise": "white noise smoothed (σ 0.6–1.5 pixel in-plane, 0–0.6 slice), 3–15 HU",
    "hu_field": "smooth additive polynomial field (MONAI RandBiasField basis), ±5–30 HU",
    "gamma": "power law in −150…130 HU (γ 0.7–1.4) and 130…2000 HU (γ 0.8–1.25), ends fixed: ≥ 130 HU unchanged",
    "scale": "MONAI RandScaleIntensity, ×(1 ± 0.04) about 0 HU",
    "shift": "MONAI RandShiftIntensity, ±15 HU",
}
#: The DST's variants.
LANDMARK_RANGES: dict[str, str] = {
    **RANGES,
    "affine": "MONAI RandAffine in-plane, the same for every slice: rotation ±12°, scale 0.9–1.1, shift "
              "±shift_pixels (linear, air outside)",
    "blur": "MONAI RandGaussianSmooth, σ 0–0.6 slice along slices, 0.3–1.2 pixel in-plane",
}
LABEL_NOTES = {
    "segmenter": "follow every spatial transform (nearest-neighbour, each resampling on its own: a patch both "
                 "rotated and deformed is resampled twice); appearance transforms keep them; the contrast change "
                 "keeps the ≥ 130 HU set",
    "landmarks": "target slices and the spacing given to the model are recomputed on the thick-slice grid "
                 "(k* = ceil((z − z0')/sk')); the other transforms keep them",
}


def augment_settings(cfg: dict[str, Any], kind: str) -> tuple[str, dict[str, float]]:
    """``(mode, probabilities)`` from a trainer's hyper-parameters (``augment``, ``augment_p``)."""
    mode = str(cfg.get("augment", "monai"))
    if mode not in AUGMENT_MODES:
        raise InputError(f"augment must be one of {', '.join(AUGMENT_MODES)}, not {mode!r}")
    table = dict(SEGMENTER_AUGMENT if kind == "segmenter" else LANDMARK_AUGMENT)
    extra = dict(cfg.get("augment_p") or {})
    unknown = sorted(set(extra) - set(table))
    if unknown:
        raise InputError(f"augment_p names unknown transforms {unknown}; known: {', '.join(table)}")
    for k, v in extra.items():
        if not 0.0 <= float(v) <= 1.0:
            raise InputError(f"augment_p[{k!r}] = {v} is not a probability")
        table[k] = float(v)
    return mode, table


def describe_augmentation(cfg: dict[str, Any], kind: str) -> dict[str, Any]:
    """The augmentation a model was trained with (recorded in its config and card)."""
    mode, table = augment_settings(cfg, kind)
    if mode != "monai":
        return {"mode": mode}
    ranges = RANGES if kind == "segmenter" else LANDMARK_RANGES
    return {"mode": mode, "transforms": [{"name": k, "p": p, "what": ranges[k]} for k, p in table.items() if p > 0],
            "labels": LABEL_NOTES[kind]}


@contextlib.contextmanager
def plain_tensors() -> Iterator[None]:
    """MONAI transforms return plain tensors inside (no MetaTensor bookkeeping)."""
    from monai.data import get_track_meta, set_track_meta

    before = get_track_meta()
    set_track_meta(False)
    try:
        yield
    finally:
        set_track_meta(before)


def appearance_transforms(p: dict[str, float], sigma_slices: tuple[float, float] = (0.2, 0.8)) -> T.Compose:
    """Image-only transforms (HU in, HU out) on ``[1, D, H, W]``."""
    return T.Compose([
        T.RandGaussianSmooth(sigma_x=sigma_slices, sigma_y=(0.3, 1.2), sigma_z=(0.3, 1.2), prob=p["blur"]),
        T.RandGaussianSharpen(sigma1_x=(0.2, 0.4), sigma1_y=(0.2, 0.4), sigma1_z=(0.2, 0.4), sigma2_x=(0.5, 1.0),
                              sigma2_y=(0.5, 1.0), sigma2_z=(0.5, 1.0), alpha=(0.3, 1.5), prob=p["sharpen"]),
        T.RandSimulateLowResolution(prob=p["low_resolution"], downsample_mode="area", zoom_range=(0.5, 0.85)),
        RandSlabAverage(p["thick_slab"], (2, 4)),
        T.RandGaussianNoise(prob=p["noise"], std=15.0),
        RandCorrelatedNoise(p["correlated_noise"]),
        RandHUField(p["hu_field"]),
        RandHUGamma(p["gamma"]),
        T.RandScaleIntensity(factors=0.04, prob=p["scale"]),
        T.RandShiftIntensity(offsets=15.0, prob=p["shift"]),
    ])


class SegmenterAugmenter:
    """``(hu [B, D, H, W] float HU, label [B, D, H, W] bool, rng) → (hu, label)`` for the chosen mode."""

    def __init__(self, cfg: dict[str, Any]):
        self.mode, self.p = augment_settings(cfg, "segmenter")
        self._rigid_t: T.Compose | None = None
        self._elastic_t: dict[tuple[tuple[int, ...], str], T.RandSmoothDeformd] = {}  # per patch size and device
        self._appearance = appearance_transforms(self.p) if self.mode == "monai" else None

    def _rigid(self) -> T.Compose:
        """Flips and the affine (any size)."""
        if self._rigid_t is None:
            deg, keys, p = math.pi / 180.0, ["image", "label"], self.p
            self._rigid_t = T.Compose(
                [T.RandFlipd(keys, prob=p["flip"], spatial_axis=a) for a in range(3)] + [
                    T.RandAffined(keys, prob=p["affine"], rotate_range=(15 * deg, 5 * deg, 5 * deg),
                                  scale_range=(0.1, 0.1, 0.1), mode=("bilinear", "nearest"), padding_mode="zeros")])
        return self._rigid_t

    def _elastic(self, size: tuple[int, ...], device: torch.device) -> T.RandSmoothDeformd:
        """The smooth elastic deformation of patches of ``size`` (MONAI builds its grid for one size)."""
        key = (tuple(size), str(device))
        if key not in self._elastic_t:
            self._elastic_t[key] = T.RandSmoothDeformd(
                ["image", "label"], spatial_size=size, rand_size=(4, 6, 6), prob=self.p["elastic"], def_range=0.05,
                field_mode="trilinear", align_corners=True, grid_mode=("bilinear", "nearest"),
                grid_padding_mode="zeros", grid_align_corners=True, device=device)
        return self._elastic_t[key]

    def margins(self, size: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Context voxels per side (k, j, i) that the affine and the elastic deformation each need."""
        on = self.mode == "monai"
        affine = tuple(int(np.ceil(f * n)) if on and self.p["affine"] else 0 for f, n in zip(CONTEXT_FRACTION, size))
        elastic = tuple(int(np.ceil(ELASTIC_FRACTION * n)) + 1 if on and self.p["elastic"] else 0 for n in size)
        return affine, elastic

    def context(self, size: tuple[int, ...]) -> tuple[int, int, int]:
        """Voxels to sample beyond each side of a patch of ``size`` (k, j, i) for the spatial transforms."""
        affine, elastic = self.margins(size)
        return tuple(a + e for a, e in zip(affine, elastic))  # type: ignore[return-value]

    def __call__(self, hu: torch.Tensor, lab: torch.Tensor, rng: np.random.Generator,
                 size: tuple[int, ...] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Patches ``[B, *size]`` (default: the input's size) cut from the middle of the augmented inputs."""
        size = tuple(size or hu.shape[1:])
        if self.mode == "none":
            return _middle(hu, size), _middle(lab, size)
        if self.mode == "basic":
            return basic_augment(_middle(hu, size), _middle(lab, size), rng)
        inner = tuple(n + 2 * e for n, e in zip(size, self.margins(size)[1]))
        out_hu, out_lab = [], []
        with plain_tensors():
            for b in range(hu.shape[0]):
                s_rigid, s_elastic, s_look = seeds(rng, 3)
                # spatial transforms pad with zeros: shift HU so that zero is air
                d = self._rigid().set_random_state(s_rigid)({"image": hu[b][None] - AIR_HU,
                                                             "label": lab[b][None].float()})
                d = {k: _middle(torch.as_tensor(v), inner) for k, v in d.items()}  # the elastic needs less context
                if self.p["elastic"]:
                    d = self._elastic(tuple(d["image"].shape[1:]), hu.device).set_random_state(s_elastic)(d)
                image = _middle(torch.as_tensor(d["image"]), size) + AIR_HU
                image = torch.as_tensor(self._appearance.set_random_state(s_look)(image))  # type: ignore[union-attr]
                out_hu.append(image[0].to(hu.dtype))
                out_lab.append(_middle(torch.as_tensor(d["label"]), size)[0] > 0.5)
        return torch.stack(out_hu), torch.stack(out_lab)


def _middle(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """The central ``size`` of the last dimensions of ``x`` (dimensions already smaller stay whole)."""
    cut = tuple(slice((n - min(n, s)) // 2, (n - min(n, s)) // 2 + min(n, s)) for n, s in zip(x.shape[-len(size):], size))
    return x[(Ellipsis, *cut)]


class ViewAugmenter:
    """DST: in-plane affine and appearance of one HU view ``[D, S, S]`` (per case: the same for every slice)."""

    def __init__(self, cfg: dict[str, Any]):
        self.mode, self.p = augment_settings(cfg, "landmarks")
        if self.mode == "monai":
            s, deg = float(cfg.get("shift_pixels", 0)), math.pi / 180.0
            self._affine = T.RandAffine(prob=self.p["affine"], rotate_range=12 * deg, scale_range=(0.1, 0.1),
                                        translate_range=(s, s), mode="bilinear", padding_mode="zeros")
            self._appearance = appearance_transforms(self.p, sigma_slices=(0.0, 0.6))

    def __call__(self, view: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """``view`` HU ``[D, S, S]`` → augmented HU ``[D, S, S]`` ("monai" mode only)."""
        s_affine, s_look = seeds(rng, 2)
        with plain_tensors():
            # 2D affine with the slices as channels: every slice moves alike; zero padding = air after the shift
            v = torch.as_tensor(self._affine.set_random_state(s_affine)(view - AIR_HU)) + AIR_HU
            v = torch.as_tensor(self._appearance.set_random_state(s_look)(v[None]))[0]
        return v.to(view.dtype)


def basic_augment(hu: torch.Tensor, lab: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The earlier segmenter augmentation: random flips along k, j, i and HU scale/offset/noise jitter."""
    for axis in (1, 2, 3):
        if rng.random() < 0.5:
            hu, lab = hu.flip(axis), lab.flip(axis)
    scale = torch.tensor(rng.uniform(0.96, 1.04, (hu.shape[0], 1, 1, 1)), dtype=hu.dtype, device=hu.device)
    offset = torch.tensor(rng.uniform(-15, 15, (hu.shape[0], 1, 1, 1)), dtype=hu.dtype, device=hu.device)
    noise = float(rng.uniform(0.0, 12.0))
    return hu * scale + offset + noise * torch.randn_like(hu), lab
