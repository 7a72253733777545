"""The preprocessing stage on the project's synthetic phantom (skipped when the phantom is not importable)."""

from __future__ import annotations

import numpy as np
import pytest

from iacseg.preprocess import head_mask, ica_region_box, midsagittal_plane

phantom = pytest.importorskip("iacseg.phantom")


@pytest.fixture(scope="module")
def small_phantom_on_head_rest():
    ph = phantom.make_phantom(5, matrix=128)  # seed 5: yaw ≈ -8°, with a head rest
    assert ph.truth["head_rest"]
    return ph


def test_midsagittal_plane_matches_the_phantom_truth(small_phantom_on_head_rest):
    ph = small_phantom_on_head_rest
    truth = ph.truth["midsagittal_plane"]
    n_true = np.asarray(truth["normal_lps"], float)
    n_true /= np.linalg.norm(n_true)
    plane = midsagittal_plane(ph.ct, "cpu")
    angle = np.degrees(np.arccos(min(1.0, abs(float(np.asarray(plane.normal) @ n_true)))))
    assert angle < 2.0
    assert abs(plane.signed_distance(np.asarray(truth["point_lps_mm"]))) < 2.0


def test_ica_region_holds_every_landmark_with_and_without_landmarks(small_phantom_on_head_rest):
    ph = small_phantom_on_head_rest
    plane = midsagittal_plane(ph.ct, "cpu")
    for region in (ica_region_box(ph.ct, plane, ph.landmarks), ica_region_box(ph.ct, plane)):
        ks, js, is_ = region.slices
        for lm in ph.landmarks.values():
            i, j, k = np.rint(ph.ct.grid.world_to_index(np.asarray(lm.position))).astype(int)
            assert ks.start <= k < ks.stop and js.start <= j < js.stop and is_.start <= i < is_.stop, lm.name
    mask = head_mask(ph.ct, "cpu")
    positions = np.array([lm.position for lm in ph.landmarks.values()])
    kji = np.rint(ph.ct.grid.world_to_index(positions)[:, ::-1]).astype(int)
    assert mask[tuple(kji.T)].all()  # the skull base is inside the head
