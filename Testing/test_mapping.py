"""Segment mapping: side from the midsagittal plane, part from the landmark planes (DESIGN rule)."""

from __future__ import annotations

import numpy as np
import pytest

from iacseg.core.plane import MidsagittalPlane
from iacseg.core.contracts import SEGMENT_IDS
from iacseg.core.errors import InputError
from iacseg.core.grid import Grid
from iacseg.mapping import check_landmark_order, flat_nonzero, relabel, segment_labels

HEIGHTS = {"L_carotid_canal": 10.0, "L_petrolingual": 20.0, "L_anterior_clinoid": 30.0,
           "R_carotid_canal": 12.0, "R_petrolingual": 22.0, "R_anterior_clinoid": 32.0}
STRAIGHT = MidsagittalPlane((0.0, 0.0, 0.0), (1.0, 0.0, 0.0))


def _axial_grid() -> Grid:
    # 1 mm voxels; x = i - 10, y = j - 5, z = k  (LPS mm)
    return Grid((40, 10, 20), (1.0, 1.0, 1.0), (-10.0, -5.0, 0.0))


def test_every_part_on_both_sides_of_an_axial_grid() -> None:
    grid = _axial_grid()
    mask = np.zeros(grid.shape, bool)
    expected = {}
    for i, side in ((15, "L"), (4, "R")):  # x = +5 → left, x = -6 → right
        for k, part in ((5, "cervical"), (15, "petrous"), (25, "cavernous"), (35, "supraclinoid")):
            mask[k, 5, i] = True
            expected[(k, 5, i)] = SEGMENT_IDS[f"{side}_{part}"]
    labels = segment_labels(mask, grid, STRAIGHT, HEIGHTS)
    assert labels.dtype == np.uint8 and labels.shape == grid.shape
    assert {tuple(p): int(labels[tuple(p)]) for p in np.argwhere(labels)} == expected


def test_plane_heights_are_lower_bounds_of_the_cranial_part() -> None:
    grid = _axial_grid()
    mask = np.zeros(grid.shape, bool)
    mask[[9, 10, 19, 20, 29, 30], 5, 15] = True  # left side, z = 9, 10, 19, 20, 29, 30
    labels = segment_labels(mask, grid, STRAIGHT, HEIGHTS)
    assert labels[[9, 10, 19, 20, 29, 30], 5, 15].tolist() == [1, 2, 2, 3, 3, 4]


def test_voxel_exactly_on_the_midsagittal_plane_is_right() -> None:
    grid = _axial_grid()
    mask = np.zeros(grid.shape, bool)
    mask[5, 5, 10] = True  # x = 0
    assert segment_labels(mask, grid, STRAIGHT, HEIGHTS)[5, 5, 10] == SEGMENT_IDS["R_cervical"]


def test_tilted_grid_uses_each_voxels_world_height() -> None:
    # k axis tilted 45° towards +y: z of voxel (i, j, k) = (j + k) / sqrt(2) * 2 mm steps
    c = np.cos(np.radians(45.0))
    direction = np.array([[1, 0, 0], [0, c, -c], [0, c, c]])  # columns: i → +x, j → (+y,+z), k → (-y,+z)
    grid = Grid((20, 20, 4), (1.0, 2.0, 2.0), (1.0, 0.0, 0.0), tuple(direction.ravel()))
    mask = np.zeros(grid.shape, bool)
    mask[:, :, 2] = True  # x = 3 → left
    labels = segment_labels(mask, grid, STRAIGHT, HEIGHTS)
    kk, jj = np.meshgrid(np.arange(20), np.arange(20), indexing="ij")
    z = (2.0 * jj + 2.0 * kk) * c
    expected = 1 + (z >= 10) + (z >= 20).astype(int) + (z >= 30)
    assert np.array_equal(labels[:, :, 2], expected)


def test_yawed_plane_decides_the_side() -> None:
    grid = _axial_grid()
    yawed = MidsagittalPlane((0.0, 0.0, 0.0), (np.cos(np.radians(30)), np.sin(np.radians(30)), 0.0))
    mask = np.zeros(grid.shape, bool)
    # x = +2, y = -4 → (2*0.866 - 4*0.5) < 0 → right, although x > 0;  x = -2, y = +4 → left
    mask[5, 1, 12] = True
    mask[5, 9, 8] = True
    labels = segment_labels(mask, grid, yawed, HEIGHTS)
    assert labels[5, 1, 12] == SEGMENT_IDS["R_cervical"]
    assert labels[5, 9, 8] == SEGMENT_IDS["L_cervical"]


def test_relabel_after_moving_a_landmark_changes_only_voxels_between_the_heights() -> None:
    grid = _axial_grid()
    mask = np.zeros(grid.shape, bool)
    mask[:, 3:7, 12:18] = True  # a left column, all heights
    mask[:, 3:7, 2:8] = True  # a right column
    before = segment_labels(mask, grid, STRAIGHT, HEIGHTS)
    moved = dict(HEIGHTS, L_petrolingual=25.5)
    after = relabel(before, grid, STRAIGHT, moved)
    changed = np.argwhere(before != after)
    assert len(changed) > 0
    z = changed[:, 0]
    assert np.all((z >= 20) & (z < 25.5)) and np.all(changed[:, 2] >= 12)  # left only, between old and new
    assert np.all(before[before != after] == SEGMENT_IDS["L_cavernous"])
    assert np.all(after[before != after] == SEGMENT_IDS["L_petrous"])
    assert np.array_equal(after > 0, mask)


def test_out_of_order_landmarks_name_the_side() -> None:
    with pytest.raises(InputError, match="out of order on the right"):
        check_landmark_order(dict(HEIGHTS, R_petrolingual=40.0))
    with pytest.raises(InputError, match="out of order on the left"):
        segment_labels(np.zeros((2, 2, 2), bool), Grid((2, 2, 2), (1, 1, 1), (0, 0, 0)), STRAIGHT,
                       dict(HEIGHTS, L_carotid_canal=20.0))


def test_missing_landmark_is_an_input_error() -> None:
    partial = {k: v for k, v in HEIGHTS.items() if k != "L_anterior_clinoid"}
    with pytest.raises(InputError, match="L_anterior_clinoid"):
        check_landmark_order(partial)


def test_flat_nonzero_matches_numpy_for_odd_sizes() -> None:
    rng = np.random.default_rng(1)
    for shape in [(3, 5, 7), (8, 8, 8), (1, 1, 1)]:
        a = (rng.random(shape) > 0.9).astype(np.uint8) * 3
        assert np.array_equal(flat_nonzero(a), np.flatnonzero(a))
        assert np.array_equal(flat_nonzero(a > 0), np.flatnonzero(a))
    b = np.asfortranarray(rng.random((4, 6, 5)) > 0.7)
    assert np.array_equal(flat_nonzero(b), np.flatnonzero(b))
