"""Tiny synthetic heads for the preprocessing tests (built here so the tests do not depend on the phantom).

A head is mirror-symmetric about its own midsagittal plane but not front–back or top–bottom: an ellipsoid
skin (40 HU) around a ~7 mm skull shell (1000 HU) around brain (35 HU), a dense skull-base plate (1500 HU),
two anterior lateral bright blobs and a posterior midline ridge. It is turned by a known yaw (about z) and
roll (about y) and shifted; an optional head rest — a bright curved slab behind the occiput, fixed to the
table (not turned with the head) and larger than the skull — sits a few mm off the skin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iacseg.io.volume import CTVolume
from iacseg.core.grid import Grid
from iacseg.preprocess.hemisphere import plane_normal

SKIN = np.array([75.0, 95.0, 82.0])   # semi-axes (mm) in the head frame: x left, y posterior, z superior
SKULL = SKIN - 5.0
BRAIN = SKULL - 7.0
SKULL_BASE_Z = -30.0                  # head-frame height of the dense plate (mm)


@dataclass
class SyntheticHead:
    vol: CTVolume
    centre: np.ndarray        # LPS mm: a point of the true midsagittal plane
    normal: np.ndarray        # true plane normal (patient left)
    head: np.ndarray          # bool [k,j,i]: inside the skin
    head_rest: np.ndarray     # bool [k,j,i]: the head rest (empty when absent)


def head_frame(points: np.ndarray, centre: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """World LPS (…, 3) → head-frame coordinates (x along ``normal``, y ≈ posterior, z ≈ superior)."""
    e1 = normal / np.linalg.norm(normal)
    e2 = np.array([0.0, 1.0, 0.0]) - e1[1] * e1
    e2 /= np.linalg.norm(e2)
    e3 = np.cross(e1, e2)
    return (points - centre) @ np.stack([e1, e2, e3], axis=1)


def make_head(yaw: float = 0.0, roll: float = 0.0, offset=(0.0, 0.0, 0.0), *, spacing=(2.0, 2.0, 2.0),
              shape=(110, 130, 120), head_rest: bool = False, noise: float = 10.0, seed: int = 0,
              rest_inner_radius: float = 104.0) -> SyntheticHead:
    """A synthetic head CT on an axial LPS grid (``shape`` is (nk, nj, ni), ``spacing`` (si, sj, sk) mm).

    The head rest's inner radius is measured from a vertical axis 95 mm in front of the back of the skin.
    """
    nk, nj, ni = shape
    origin = -np.array([(ni - 1) * spacing[0], (nj - 1) * spacing[1], (nk - 1) * spacing[2]]) / 2
    grid = Grid(shape, spacing, tuple(origin))
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    world = grid.index_to_world(np.stack([i, j, k], axis=-1).reshape(-1, 3).astype(float))
    centre = np.array([0.0, -10.0, 20.0]) + np.asarray(offset, float)
    normal = plane_normal(yaw, roll)
    h = head_frame(world, centre, normal)
    hx, hy, hz = h.T
    inside = lambda axes: ((h / axes) ** 2).sum(axis=1) <= 1.0  # noqa: E731
    hu = np.full(len(h), -1000.0)
    skin, skull, brain = inside(SKIN), inside(SKULL), inside(BRAIN)
    hu[skin] = 40.0
    hu[skull] = 1000.0
    hu[brain] = 35.0
    plate = brain & (np.abs(hz - SKULL_BASE_Z) < 4) & (np.abs(hx) < 45) & (np.abs(hy) < 35)
    hu[plate] = 1500.0
    blobs = brain & (((hx - 30) ** 2 + (hy + 45) ** 2 + (hz - 10) ** 2 < 64)
                     | ((hx + 30) ** 2 + (hy + 45) ** 2 + (hz - 10) ** 2 < 64))
    hu[blobs] = 900.0
    ridge = brain & (np.abs(hx) < 3) & (hy > 50) & (np.abs(hz + 5) < 25)
    hu[ridge] = 800.0
    rest = np.zeros(len(h), bool)
    if head_rest:  # world frame: cylinder shell about a vertical axis through the table centre, behind the head
        rx, ry, rz = world[:, 0] - 0.0, world[:, 1] - (-10.0), world[:, 2]
        r = np.hypot(rx, ry)
        rest = (r > rest_inner_radius) & (r < 120) & (ry > 35) & (rz > -100) & (rz < 100)
        hu[rest] = 1000.0
    rng = np.random.default_rng(seed)
    hu = hu + rng.normal(0.0, noise, len(hu)) if noise else hu
    vol = CTVolume(hu.reshape(shape).astype(np.float32), grid, {"modality": "CT"})
    return SyntheticHead(vol, centre, normal, skin.reshape(shape), rest.reshape(shape))


def test_synthetic_head_has_a_rest_bigger_than_the_skull():
    s = make_head(head_rest=True, noise=0.0)
    skull_voxels = np.count_nonzero((s.vol.hu >= 1000) & s.head)
    assert np.count_nonzero(s.head_rest) > skull_voxels > 0
