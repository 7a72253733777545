"""Segmenter training samples calcium-like negatives (issue 10): calcification outside the ICA and dim bone
edges, which uniform sampling of "other ≥ 130 HU voxels" almost never reaches because plain bone dominates."""

from __future__ import annotations

import numpy as np

from iacseg.train.segmenter import (HARD_NEGATIVE_MAX_HU, SEGMENTER_DEFAULTS, SegmenterCase, calcium_like_points,
                                    sample_patch)


def skull_base_case() -> SegmenterCase:
    """A 40×80×80 crop: a large dense bone block with a dim partial-volume rim, an isolated small calcification
    outside the ICA (a distractor), and one ICA plaque."""
    hu = np.full((40, 80, 80), 35, np.int16)
    hu[5:35, 5:35, 5:35] = 1500            # bone: one big dense component
    hu[5:35, 5:35, 35] = 300               # its dim rim (partial volume), connected to it
    hu[18:21, 60:63, 60:63] = 700          # distractor: 27 dense voxels, isolated
    hu[18:21, 60:63, 20:23] = 400          # ICA plaque (the truth)
    calcium = np.zeros(hu.shape, bool)
    calcium[18:21, 60:63, 20:23] = True
    bone = np.argwhere((hu >= 130) & ~calcium)
    return SegmenterCase("toy", hu, calcium, (slice(0, 40), slice(0, 80), slice(0, 80)),
                         np.argwhere(calcium), bone, 0)


def test_hard_negatives_are_the_distractor_and_the_dim_rim_never_bone_interior_or_calcium():
    c = skull_base_case()
    pts = calcium_like_points(c, np.random.default_rng(0))
    hu = c.hu[tuple(pts.T)]
    assert not c.calcium[tuple(pts.T)].any()
    assert (hu >= 130).all()
    # every distractor voxel and every rim voxel is a hard negative; no voxel of the bone's dense interior is
    assert {tuple(p) for p in np.argwhere(c.hu == 700)} <= {tuple(p) for p in pts}
    assert {tuple(p) for p in np.argwhere(c.hu == 300)} <= {tuple(p) for p in pts}
    assert (hu < HARD_NEGATIVE_MAX_HU).sum() + (hu == 700).sum() == len(pts)


def test_hard_negative_patches_hold_calcium_like_voxels_where_bone_sampling_rarely_does():
    c = skull_base_case()
    c.hard_points = calcium_like_points(c, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    size = (8, 16, 16)

    def calcium_like(hu: np.ndarray) -> bool:
        return bool(np.isin(hu, (300, 700)).any())

    hard = [sample_patch(c, size, rng, fg_fraction=0.0, bone_fraction=0.0, hard_fraction=1.0)[0] for _ in range(40)]
    bone = [sample_patch(c, size, rng, fg_fraction=0.0, bone_fraction=1.0)[0] for _ in range(40)]
    assert all(calcium_like(hu) for hu in hard)
    assert sum(calcium_like(hu) for hu in bone) < 30
    assert sum((hu == 1500).all() for hu in bone) > 5  # bone sampling: many patches are nothing but bone


def test_a_case_without_hard_negatives_falls_back_to_bone_points_and_defaults_keep_calcium_half():
    c = skull_base_case()
    c.hard_points = np.empty((0, 3), np.int64)
    hu, _ = sample_patch(c, (8, 16, 16), np.random.default_rng(2), 0.0, 0.0, hard_fraction=1.0)
    assert hu.shape == (8, 16, 16)
    d = SEGMENTER_DEFAULTS
    assert d["fg_fraction"] == 0.5 and d["hard_fraction"] > 0
    assert d["fg_fraction"] + d["hard_fraction"] + d["bone_fraction"] < 1.0
