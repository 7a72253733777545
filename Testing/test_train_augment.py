"""Training augmentation (iacseg.train.augment): labels follow the spatial transforms exactly, appearance keeps HU
meaning, everything replays from the trainer's generator, and thick-slice DST views get the convention's targets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from iacseg.core.contracts import LANDMARKS
from iacseg.core.errors import InputError
from iacseg.core.grid import Grid
from iacseg.models.localiser import DEFAULT_LOCALISER_INPUT, landmark_target_slice, slice_to_plane_z
from iacseg.train.augment import (LANDMARK_AUGMENT, SEGMENTER_AUGMENT, SegmenterAugmenter, ViewAugmenter,
                                  augment_settings, describe_augmentation)
from iacseg.train.hu_transforms import RandHUGamma
from iacseg.train.landmarks import LandmarkCase, case_positions, prepare_landmark_case, training_sample
from iacseg.train.slice_thickness import choose_thickness, thicken
from test_train_models import toy_case

NOTHING = {k: 0.0 for k in SEGMENTER_AUGMENT}
APPEARANCE_ONLY = {k: 1.0 for k in SEGMENTER_AUGMENT} | {"flip": 0.0, "affine": 0.0, "elastic": 0.0}


@pytest.mark.parametrize("spatial", [{"flip": 0.5, "affine": 1.0}, {"flip": 0.5, "elastic": 1.0}])
def test_labels_follow_every_spatial_transform_exactly(spatial):
    """Each resampling transform (flips only permute). Three runs with the same seed on coordinate ramps give the
    source position T(v) of every output voxel (linear interpolation of a linear function is exact away from the padding, which a fourth run on a constant image
    finds); the label there must be the input label at round(T(v))."""
    shape = (12, 20, 20)
    rng = np.random.default_rng(3)
    lab = torch.from_numpy(rng.random(shape) < 0.3)[None]
    aug = SegmenterAugmenter({"augment": "monai", "augment_p": NOTHING | spatial})
    for seed in range(4):
        coords, out_lab = [], None
        for axis in range(3):
            ramp = torch.arange(shape[axis], dtype=torch.float32).reshape([-1 if a == axis else 1 for a in range(3)])
            hu = (10.0 * (ramp + 1.0)).expand(shape)[None].clone()  # 10 HU per voxel, ≥ 10 inside the patch
            out_hu, out_lab = aug(hu, lab, np.random.default_rng(seed))
            coords.append(out_hu[0].numpy() / 10.0 - 1.0)
        src = np.stack(coords, -1)
        flat, _ = aug(torch.full((1, *shape), 100.0), lab, np.random.default_rng(seed))
        inside = np.abs(flat[0].numpy() - 100.0) < 1e-3  # no padding mixed in
        not_tie = np.all(np.abs(src - np.floor(src) - 0.5) > 1e-3, axis=-1)
        idx = np.rint(src[inside & not_tie]).astype(int)
        expected = lab[0].numpy()[tuple(idx.T)]
        assert inside.mean() > 0.3
        assert np.array_equal(out_lab[0].numpy()[inside & not_tie], expected)
        assert out_lab.dtype == torch.bool


def test_appearance_transforms_keep_the_label_and_replay_from_the_generator():
    hu = torch.from_numpy(np.random.default_rng(0).normal(40, 300, (2, 8, 16, 16)).astype(np.float32))
    lab = hu > 200
    aug = SegmenterAugmenter({"augment": "monai", "augment_p": APPEARANCE_ONLY})
    a_hu, a_lab = aug(hu, lab, np.random.default_rng(11))
    b_hu, _ = aug(hu, lab, np.random.default_rng(11))
    c_hu, _ = aug(hu, lab, np.random.default_rng(12))
    assert torch.equal(a_lab, lab) and torch.isfinite(a_hu).all()
    assert torch.equal(a_hu, b_hu) and not torch.equal(a_hu, c_hu) and not torch.equal(a_hu, hu)
    none = SegmenterAugmenter({"augment": "none"})
    assert torch.equal(none(hu, lab, np.random.default_rng(0))[0], hu)


def test_contrast_change_keeps_the_130_hu_set():
    hu = torch.cat([torch.linspace(-1100, 3100, 5000), torch.tensor([129.99, 130.0, 130.01, -150.0, 2000.0])])[None]
    gamma = RandHUGamma(prob=1.0)
    for seed in range(5):
        out = gamma.set_random_state(seed)(hu)
        assert torch.equal(out >= 130, hu >= 130)
        assert torch.all(out[0, 1:5000] >= out[0, :4999])  # monotone
        assert gamma.gammas != (1.0, 1.0)


def test_settings_are_checked_and_described():
    assert augment_settings({}, "segmenter") == ("monai", SEGMENTER_AUGMENT)
    assert augment_settings({"augment_p": {"elastic": 0.0}}, "segmenter")[1]["elastic"] == 0.0
    with pytest.raises(InputError, match="augment must be"):
        augment_settings({"augment": "heavy"}, "segmenter")
    with pytest.raises(InputError, match="unknown transforms"):
        augment_settings({"augment_p": {"slice_thickness": 0.5}}, "segmenter")
    described = describe_augmentation({"augment": "monai"}, "landmarks")
    assert {t["name"] for t in described["transforms"]} == set(LANDMARK_AUGMENT)
    assert describe_augmentation({"augment": "none"}, "landmarks") == {"mode": "none"}


@pytest.mark.parametrize("m", [2, 3, 4])
def test_thick_slices_get_the_targets_of_the_slice_convention(m):
    z0, sk, n = -40.0, 1.25, 40
    grid = Grid((n, 4, 4), (1.0, 1.0, sk), (0.0, 0.0, z0))
    zs = np.random.default_rng(m).uniform(z0 + 3 * sk, z0 + (n - 6) * sk, 200)
    positions = (zs - grid.origin[2]) / grid.spacing[2]
    view = np.broadcast_to(np.arange(n, dtype=np.int16)[:, None, None], (n, 4, 4))
    for phase in range(m):
        thick, _, targets = thicken(view, positions, m, phase)
        z0_thick, sk_thick = z0 + (phase + (m - 1) / 2) * sk, m * sk
        centres = z0 + (phase + np.arange(thick.shape[0]) * m + (m - 1) / 2) * sk
        assert np.allclose(thick[:, 0, 0], (centres - z0) / sk)  # each thick slice averages its own group
        for z, k in zip(zs, targets):
            assert k == landmark_target_slice(z, z0_thick, sk_thick)  # k* = ceil((z − z0')/sk')
            assert k == np.argmax(centres >= z - 1e-9)  # the first thick slice at/above the plane
            assert -0.5 * sk_thick <= slice_to_plane_z(k, z0_thick, sk_thick) - z < 0.5 * sk_thick


def test_prepared_views_keep_exact_positions_and_samples_carry_the_thick_spacing():
    case = toy_case(4)
    input_cfg = {**DEFAULT_LOCALISER_INPUT, "fov_mm": 48.0, "size": 16}
    lc = prepare_landmark_case(case, input_cfg, 32)
    assert np.array_equal(np.ceil(case_positions(lc) - 1e-6).astype(int), lc.targets)
    legacy = LandmarkCase("old", lc.view, lc.targets, lc.spacing_mm)
    assert np.allclose(case_positions(legacy), lc.targets - 0.5)
    cfg = {"augment": "monai", "augment_p": {k: 0.0 for k in LANDMARK_AUGMENT} | {"slice_thickness": 1.0},
           "crop_probability": 0.0, "crop_margin_slices": 2, "shift_pixels": 2}
    seen = set()
    for seed in range(12):
        rng = np.random.default_rng(seed)
        x, targets, spacing = training_sample(lc, rng, cfg, input_cfg, torch.device("cpu"))
        m = round(spacing / lc.spacing_mm)
        seen.add(m)
        assert m in (2, 3, 4) and math.isclose(spacing, m * lc.spacing_mm)
        first = np.random.default_rng(seed)
        first.random()
        m_again, phase = choose_thickness(first, lc.view.shape[0], lc.spacing_mm)
        assert m_again == m and x.shape[1] == (lc.view.shape[0] - phase) // m
        _, _, expected = thicken(lc.view, lc.positions, m, phase)
        assert np.array_equal(targets, expected)
    assert len(seen) >= 2


def test_view_augmenter_moves_every_slice_alike():
    view = torch.full((6, 16, 16), -1024.0)
    view[:, 6:10, 3:13] = 1000.0  # the same bar on every slice
    aug = ViewAugmenter({"augment": "monai", "shift_pixels": 3,
                         "augment_p": {k: 0.0 for k in LANDMARK_AUGMENT} | {"affine": 1.0}})
    out = aug(view, np.random.default_rng(5))
    assert out.shape == view.shape and not torch.equal(out, view)
    assert torch.allclose(out, out[:1].expand_as(out))
    assert float(out.min()) >= -1024.5  # air outside, not water


@pytest.mark.parametrize("spatial", [{"affine": 1.0}, {"elastic": 1.0}, {"affine": 1.0, "elastic": 1.0}])
def test_the_context_margin_keeps_padding_out_of_rotated_patches(spatial):
    size = (12, 24, 24)
    aug = SegmenterAugmenter({"augment": "monai", "augment_p": NOTHING | spatial})
    margin = aug.context(size)
    big = tuple(s + 2 * m for s, m in zip(size, margin))
    for seed in range(10):
        out, lab = aug(torch.full((2, *big), 100.0), torch.ones((2, *big), dtype=torch.bool),
                       np.random.default_rng(seed), size)
        assert out.shape == lab.shape == (2, *size)
        assert torch.allclose(out, torch.tensor(100.0), atol=1e-3) and bool(lab.all())  # no air, no lost label
    plain = SegmenterAugmenter({"augment": "none"})
    assert plain.context(size) == (0, 0, 0) and SegmenterAugmenter({"augment": "monai"}).context(size) == (5, 8, 8)
    hu = torch.arange(np.prod(big), dtype=torch.float32).reshape(1, *big)
    cut = plain(hu, hu > 0, np.random.default_rng(0), size)[0]
    assert torch.equal(cut[0], hu[0, margin[0]:margin[0] + size[0], margin[1]:margin[1] + size[1],
                                  margin[2]:margin[2] + size[2]])
