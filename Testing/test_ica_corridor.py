"""Calcium in the ICA box that cannot be ICA (midline, far above the clinoids) is dropped from the network's result."""

import numpy as np

from iacseg.core.plane import MidsagittalPlane
from iacseg.core.grid import Grid
from iacseg.preprocess import outside_ica_corridor

LANDMARKS = {"L_carotid_canal": -20.0, "R_carotid_canal": -21.0, "L_petrolingual": -8.0, "R_petrolingual": -9.0,
             "L_anterior_clinoid": 4.0, "R_anterior_clinoid": 2.0}


def _mark(mask, grid, xyz):
    ijk = np.rint(grid.world_to_index(np.asarray([xyz], float))[0]).astype(int)
    mask[ijk[2], ijk[1], ijk[0]] = True
    return ijk


def test_midline_and_high_calcium_are_outside_while_both_icas_are_kept():
    grid = Grid((100, 100, 100), (1.0, 1.0, 1.0), (-50.0, -50.0, -50.0))
    # a head rolled by 10°: the midline is not x = 0
    roll = np.deg2rad(10.0)
    plane = MidsagittalPlane((2.0, 0.0, 0.0), (np.cos(roll), 0.0, np.sin(roll)))
    mask = np.zeros(grid.shape, bool)
    along = np.array([-np.sin(roll), 0.0, np.cos(roll)])  # within the plane, upwards
    falx = _mark(mask, grid, np.array([2.0, 10.0, 0.0]) + 20.0 * along)           # on the midline
    pineal = _mark(mask, grid, np.array([2.0, 20.0, 0.0]) + 30.0 * along)         # midline and high
    plexus = _mark(mask, grid, (18.0, 25.0, 4.0 + 20.0 + 6.0))                    # lateral, 26 mm above the clinoid
    left_cav = _mark(mask, grid, (14.0, -2.0, 0.0))
    right_supra = _mark(mask, grid, (-10.0, -5.0, 2.0 + 15.0))                    # 15 mm above, ~ 12 mm from the midline
    right_cerv = _mark(mask, grid, (-28.0, 5.0, -35.0))

    out = outside_ica_corridor(mask, grid, plane, LANDMARKS)

    def at(m, ijk):
        return bool(m[ijk[2], ijk[1], ijk[0]])

    assert at(out["midline"], falx) and at(out["midline"], pineal)
    assert at(out["above_ica"], pineal) and at(out["above_ica"], plexus) and not at(out["midline"], plexus)
    for ica in (left_cav, right_supra, right_cerv):
        assert not at(out["midline"], ica) and not at(out["above_ica"], ica)
    assert not (out["midline"] & ~mask).any() and not (out["above_ica"] & ~mask).any()


def test_tilted_grid_uses_world_heights():
    # a gantry-tilted (sheared) grid: slice k is not one height; the rule must use each voxel's world z
    t = np.deg2rad(20.0)
    direction = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(t), 0.0], [0.0, np.sin(t), 1.0]])
    direction /= np.linalg.norm(direction, axis=0)
    grid = Grid((60, 100, 40), (1.0, 1.0, 1.0), (-20.0, -50.0, 0.0), tuple(direction.ravel()))
    plane = MidsagittalPlane((0.0, 0.0, 0.0), (1.0, 0.0, 0.0))
    mask = np.zeros(grid.shape, bool)
    k = 5
    mask[k, :, 35] = True  # one slice, x = +15 mm: its world z runs from about -12 to +50 mm
    out = outside_ica_corridor(mask, grid, plane, LANDMARKS)
    xyz = grid.index_to_world(np.stack([np.full(100, 35), np.arange(100), np.full(100, k)], axis=1).astype(float))
    expected = xyz[:, 2] > max(LANDMARKS["L_anterior_clinoid"], LANDMARKS["R_anterior_clinoid"]) + 20.0
    assert expected.any() and (~expected).any()
    assert np.array_equal(out["above_ica"][k, :, 35], expected)
    assert not out["midline"].any()


def test_empty_mask():
    grid = Grid((4, 4, 4), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    out = outside_ica_corridor(np.zeros(grid.shape, bool), grid, MidsagittalPlane((0, 0, 0), (1, 0, 0)), LANDMARKS)
    assert not out["midline"].any() and not out["above_ica"].any()
