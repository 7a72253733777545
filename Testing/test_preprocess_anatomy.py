"""Head mask, midsagittal plane and ICA region on small synthetic heads with known pose and a head rest."""

from __future__ import annotations

import math

import numpy as np
import pytest

from iacseg.core.plane import MidsagittalPlane
from iacseg.core.landmarks import Landmark
from iacseg.preprocess import centroid_plane, head_mask, ica_region, ica_region_box, midsagittal_plane, skull_mask
from test_preprocess_synthetic import SKULL_BASE_Z, make_head


def plane_errors(plane: MidsagittalPlane, normal: np.ndarray, point: np.ndarray) -> tuple[float, float]:
    """(angle between normals °, distance of the true plane point from the found plane mm)."""
    n = np.asarray(plane.normal) / np.linalg.norm(plane.normal)
    angle = math.degrees(math.acos(min(1.0, abs(float(n @ normal)))))
    return angle, abs(float(plane.signed_distance(point)))


@pytest.fixture(scope="module")
def tilted_head_on_rest():
    return make_head(yaw=7.3, roll=-5.6, offset=(6.4, 2.0, -3.3), head_rest=True)


def test_head_mask_keeps_the_head_and_excludes_the_head_rest(tilted_head_on_rest):
    s = tilted_head_on_rest
    mask = head_mask(s.vol, "cpu")
    assert np.count_nonzero(mask & s.head) / np.count_nonzero(s.head) > 0.98
    assert np.count_nonzero(mask & s.head_rest) == 0
    assert np.count_nonzero(mask & ~s.head) < 0.01 * np.count_nonzero(s.head)
    bone = skull_mask(s.vol, "cpu")
    assert np.count_nonzero(bone & s.head_rest) == 0
    assert np.count_nonzero(bone) > 0.9 * np.count_nonzero((s.vol.hu > 300) & s.head)


@pytest.mark.parametrize("yaw,roll,offset", [(7.3, -5.6, (6.4, 2.0, -3.3)), (-9.6, 9.2, (-5.5, 0.0, 4.0)),
                                             (2.4, 3.7, (8.0, -4.0, 0.0))])
def test_midsagittal_plane_recovers_pose_despite_a_head_rest(yaw, roll, offset):
    s = make_head(yaw, roll, offset, head_rest=True, seed=3)
    plane = midsagittal_plane(s.vol, "cpu")
    angle, distance = plane_errors(plane, s.normal, s.centre)
    assert angle < 1.5 and distance < 1.5
    assert plane.normal[0] > 0  # points to the patient's left (+x in LPS)
    assert plane.method == "centroid+symmetry"
    assert plane.details["symmetry_score"] > plane.details["initial_symmetry_score"]
    # the published rule (largest bright component = the head rest here) misplaces the plane
    naive = centroid_plane(s.vol, "cpu", skull_choice="largest")
    naive_angle, naive_distance = plane_errors(naive, s.normal, s.centre)
    assert naive_distance > distance + 3.0 and naive_angle > angle + 2.0


def test_ica_region_from_landmarks_covers_their_heights_and_both_sides(tilted_head_on_rest):
    s = tilted_head_on_rest
    plane = midsagittal_plane(s.vol, "cpu")
    z = {"carotid_canal": -25.0, "petrolingual": -12.0, "anterior_clinoid": 8.0}
    landmarks = {f"{side}_{kind}": Landmark(f"{side}_{kind}", z_mm, (0.0, 0.0, z_mm))
                 for side in "LR" for kind, z_mm in z.items()}
    landmarks["R_carotid_canal"].z_mm = -28.0
    ks, js, is_ = ica_region(s.vol, plane, landmarks)
    grid = s.vol.grid
    z_lo = grid.index_to_world(np.array([0, 0, ks.start]))[2]
    z_hi = grid.index_to_world(np.array([0, 0, ks.stop - 1]))[2]
    assert z_lo <= -28.0 - 30.0 + grid.spacing[2] and z_hi >= 8.0 + 25.0 - grid.spacing[2]
    assert z_hi - z_lo < 28.0 + 8.0 + 55.0 + 2 * grid.spacing[2]
    # both ICAs (≈15–30 mm either side of the plane, AP within ±20 mm of the head centre) are inside the box
    for side in (-1, 1):
        for z_mm in (-40.0, 0.0, 25.0):
            for dy in (-20.0, 20.0):
                p = s.centre + side * 28.0 * s.normal + np.array([0.0, dy, z_mm - s.centre[2]])
                i, j, k = np.rint(grid.world_to_index(p)).astype(int)
                assert ks.start <= k < ks.stop and js.start <= j < js.stop and is_.start <= i < is_.stop


def test_ica_region_without_landmarks_is_centred_on_the_skull_base(tilted_head_on_rest):
    s = tilted_head_on_rest
    plane = midsagittal_plane(s.vol, "cpu")
    region = ica_region_box(s.vol, plane)
    assert region.method == "skull_base_bone"
    true_base_z = s.centre[2] + SKULL_BASE_Z  # the plate is level within a few mm for this small roll
    assert abs(region.skull_base_z_mm - true_base_z) < 8.0
    lo, hi = region.box_mm["min_lps_mm"], region.box_mm["max_lps_mm"]
    assert lo[2] < true_base_z - 40 and hi[2] > true_base_z + 40
    assert hi[0] - lo[0] > 85.0


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_gives_the_same_plane_and_resampling_as_cpu(tilted_head_on_rest):
    from iacseg.core.grid import Grid
    from iacseg.preprocess import resample_to_grid

    s = tilted_head_on_rest
    cpu, gpu = midsagittal_plane(s.vol, "cpu"), midsagittal_plane(s.vol, "cuda")
    angle, distance = plane_errors(gpu, np.asarray(cpu.normal), np.asarray(cpu.point))
    assert angle < 0.3 and distance < 0.3
    dst = Grid((40, 50, 60), (1.3, 1.3, 2.1), (-40.0, -50.0, -30.0))
    a = resample_to_grid(s.vol.hu, s.vol.grid, dst, order=1, fill=-1024.0, device="cpu")
    b = resample_to_grid(s.vol.hu, s.vol.grid, dst, order=1, fill=-1024.0, device="cuda")
    assert np.abs(a - b).max() < 0.5
    assert np.array_equal(head_mask(s.vol, "cpu"), head_mask(s.vol, "cuda"))


def test_a_thick_head_rest_close_to_the_skin_is_still_left_out():
    s = make_head(6.2, -4.7, (5.0, 2.0, -1.0), head_rest=True, rest_inner_radius=96.0)
    assert np.count_nonzero(head_mask(s.vol, "cpu") & s.head_rest) == 0
    angle, distance = plane_errors(midsagittal_plane(s.vol, "cpu"), s.normal, s.centre)
    assert angle < 1.5 and distance < 1.5
