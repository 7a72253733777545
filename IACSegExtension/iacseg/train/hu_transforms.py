"""MONAI random transforms for CT in Hounsfield units, where MONAI's own ones would change what a HU value means.

All work on channel-first tensors ``[C, D, H, W]`` (D = slices) and draw every random number from their own
``self.R`` (MONAI's `RandomizableTransform`), so a `monai.transforms.Compose` seeded by the trainer replays them:

* `RandHUGamma` — contrast change as power laws inside HU bands whose ends stay put (soft tissue −150…130 HU,
  bone 130…2000 HU): the voxels ≥ 130 HU (the calcium rule) are exactly the same set before and after.
* `RandCorrelatedNoise` — Gaussian noise smoothed by a Gaussian kernel (the grain of a soft reconstruction kernel),
  rescaled to a random standard deviation in HU.
* `RandHUField` — a smooth additive field of a few tens of HU (cupping / beam-hardening look) shaped by MONAI's
  `RandBiasField` polynomial basis; additive, so air stays air and bone stays bone.
* `RandSlabAverage` — the thick-slice look on the same grid: every slice becomes the mean of ``m`` neighbours
  along D (a reconstruction with slab thickness ``m`` × spacing at the native increment).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import GaussianSmooth, RandBiasField, RandomizableTransform

from ..core.contracts import CALCIUM_HU

#: HU bands of `RandHUGamma` (ends fixed): soft tissue up to the calcium threshold, then bone.
GAMMA_BANDS = ((-150.0, float(CALCIUM_HU)), (float(CALCIUM_HU), 2000.0))


class RandHUGamma(RandomizableTransform):
    """``lo + (hi − lo)·((v − lo)/(hi − lo))^γ`` inside each band ``[lo, hi)``, identity outside (monotone)."""

    def __init__(self, prob: float, gamma_soft: Sequence[float] = (0.7, 1.4),
                 gamma_bone: Sequence[float] = (0.8, 1.25), bands: Sequence[Sequence[float]] = GAMMA_BANDS):
        super().__init__(prob)
        self.ranges = (tuple(gamma_soft), tuple(gamma_bone))
        self.bands = tuple((float(lo), float(hi)) for lo, hi in bands)
        self.gammas = (1.0, 1.0)

    def randomize(self, data: object = None) -> None:
        super().randomize(None)
        if self._do_transform:
            self.gammas = tuple(float(self.R.uniform(*r)) for r in self.ranges)  # type: ignore[assignment]

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        if randomize:
            self.randomize()
        if not self._do_transform:
            return img
        out = img
        for (lo, hi), g in zip(self.bands, self.gammas):
            inside = (img >= lo) & (img < hi)
            t = ((img - lo) / (hi - lo)).clamp(0.0, 1.0)
            out = torch.where(inside, lo + (hi - lo) * t.pow(g), out)
        return out


class RandCorrelatedNoise(RandomizableTransform):
    """Add white noise smoothed by a Gaussian (``sigma_slices`` along D, ``sigma_pixels`` in-plane), scaled to a
    standard deviation drawn from ``std_hu``."""

    def __init__(self, prob: float, std_hu: Sequence[float] = (3.0, 15.0), sigma_pixels: Sequence[float] = (0.6, 1.5),
                 sigma_slices: Sequence[float] = (0.0, 0.6)):
        super().__init__(prob)
        self.std_hu, self.sigma_pixels, self.sigma_slices = tuple(std_hu), tuple(sigma_pixels), tuple(sigma_slices)
        self.params = (0.0, 0.0, 0.0, 0)

    def randomize(self, data: object = None) -> None:
        super().randomize(None)
        if self._do_transform:
            self.params = (float(self.R.uniform(*self.std_hu)), float(self.R.uniform(*self.sigma_slices)),
                           float(self.R.uniform(*self.sigma_pixels)), int(self.R.randint(2**31 - 1)))

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        if randomize:
            self.randomize()
        if not self._do_transform:
            return img
        std, s_k, s_p, seed = self.params
        gen = torch.Generator(device=img.device).manual_seed(seed)
        noise = torch.randn(img.shape, generator=gen, device=img.device, dtype=torch.float32)
        noise = torch.as_tensor(GaussianSmooth(sigma=(s_k, s_p, s_p)[-(img.ndim - 1):])(noise))
        return img + (std / float(noise.std().clamp_min(1e-6))) * noise.to(img.dtype)


class RandHUField(RandomizableTransform):
    """Add ``a`` × p(x) HU, p a random smooth polynomial field (MONAI `RandBiasField`) scaled to max |p| = 1 and
    ``a`` drawn from ``amplitude_hu`` (positive or negative)."""

    def __init__(self, prob: float, amplitude_hu: Sequence[float] = (5.0, 30.0), degree: int = 3):
        super().__init__(prob)
        self.amplitude_hu = tuple(amplitude_hu)
        self.field = RandBiasField(degree=degree, coeff_range=(-0.5, 0.5), prob=1.0)
        self.amplitude = 0.0

    def randomize(self, data: object = None) -> None:
        super().randomize(None)
        if self._do_transform:
            self.amplitude = float(self.R.uniform(*self.amplitude_hu)) * (1.0 if self.R.rand() < 0.5 else -1.0)
            self.field.set_random_state(seed=int(self.R.randint(2**31 - 1)))

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        if randomize:
            self.randomize()
        if not self._do_transform:
            return img
        ones = torch.ones((1, *img.shape[1:]), dtype=torch.float32)
        poly = torch.log(torch.as_tensor(self.field(ones)).float())  # the bias field is exp(polynomial)
        poly = poly / poly.abs().max().clamp_min(1e-6)
        return img + (self.amplitude * poly).to(device=img.device, dtype=img.dtype)


class RandSlabAverage(RandomizableTransform):
    """Each slice (axis D) → the mean of ``m`` neighbouring slices (edges replicated), ``m`` drawn from
    ``slabs`` (inclusive): a thicker reconstruction at the same slice increment."""

    def __init__(self, prob: float, slabs: Sequence[int] = (2, 4)):
        super().__init__(prob)
        self.slabs = (int(slabs[0]), int(slabs[1]))
        self.m = 1

    def randomize(self, data: object = None) -> None:
        super().randomize(None)
        if self._do_transform:
            self.m = int(self.R.randint(self.slabs[0], self.slabs[1] + 1))

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        if randomize:
            self.randomize()
        if not self._do_transform or self.m < 2 or img.shape[1] < 2:
            return img
        m = self.m
        x = F.pad(img[None].float(), (0, 0, 0, 0, (m - 1) // 2, m - 1 - (m - 1) // 2), mode="replicate")
        return F.avg_pool3d(x, (m, 1, 1), stride=1)[0].to(img.dtype)


def seeds(rng: np.random.Generator, n: int) -> list[int]:
    """``n`` MONAI seeds drawn from the trainer's generator (so its saved state replays the transforms)."""
    return [int(s) for s in rng.integers(0, 2**31 - 1, size=n)]
