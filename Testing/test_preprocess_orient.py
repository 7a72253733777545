"""Orientation to axial LPS and world-coordinate resampling keep anatomy where it is (LPS mm)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iacseg.core.errors import InputError
from iacseg.io.volume import CTVolume
from iacseg.core.grid import Grid
from iacseg.preprocess import intensity_channels, resample_to_grid, to_axial_lps
from iacseg.core.device import resolve_device


def rotation_about_x(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


@pytest.mark.parametrize("direction", [
    np.diag([-1.0, -1.0, 1.0]),                                   # RAS-ordered NIfTI
    np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),  # sagittal stack, flipped axes
])
def test_axis_aligned_grid_is_permuted_exactly_and_voxels_keep_their_world_position(direction):
    rng = np.random.default_rng(1)
    shape = (7, 9, 11)
    src = Grid(shape, (0.8, 1.1, 2.5), (12.0, -30.0, 55.0), tuple(direction.ravel()))
    vol = CTVolume(rng.normal(0, 100, shape).astype(np.float32), src, {"modality": "CT"})
    out = to_axial_lps(vol)
    assert out.grid.is_axial_lps()
    assert sorted(out.grid.spacing) == sorted(src.spacing)
    kji = np.argwhere(np.ones(shape, bool))
    dst_ijk = out.grid.world_to_index(src.kji_to_world(kji))
    assert np.allclose(dst_ijk, np.rint(dst_ijk), atol=1e-6)  # every voxel lands exactly on a voxel
    dst_kji = np.rint(dst_ijk[:, ::-1]).astype(int)
    assert np.array_equal(out.hu[tuple(dst_kji.T)], vol.hu[tuple(kji.T)])
    assert "corrections" not in out.metadata


def sphere_volume(grid: Grid, centre_lps: np.ndarray, radius: float) -> np.ndarray:
    kji = np.argwhere(np.ones(grid.shape, bool))
    d = np.linalg.norm(grid.kji_to_world(kji) - centre_lps, axis=1)
    # soft edge (1 mm) so the centre of mass is sub-voxel accurate on any grid
    return np.where(d < radius, 1000.0, np.clip(1000.0 * (radius + 1 - d), -1024.0, 1000.0)
                    ).reshape(grid.shape).astype(np.float32)


def test_oblique_grid_is_resampled_with_the_sphere_at_the_same_world_position():
    direction = rotation_about_x(20.0)  # gantry-tilt-like obliquity
    src = Grid((30, 60, 60), (1.0, 1.0, 2.0), (-30.0, -25.0, -20.0), tuple(direction.ravel()))
    centre = src.index_to_world(np.array([31.3, 27.6, 14.2]))
    vol = CTVolume(sphere_volume(src, centre, 9.0), src, {"modality": "CT"})
    out = to_axial_lps(vol, device="cpu")
    assert out.grid.is_axial_lps()
    assert out.grid.spacing == (1.0, 1.0, 2.0)
    weight = np.clip(out.hu, 0, None)
    kji = np.argwhere(weight > 0)
    found = (out.grid.kji_to_world(kji) * weight[tuple(kji.T)][:, None]).sum(0) / weight.sum()
    assert np.linalg.norm(found - centre) < 0.5
    assert out.hu.min() == pytest.approx(-1024.0, abs=1.0)  # air outside the tilted source
    assert any("oblique" in note for note in out.metadata["corrections"])


def test_nearest_resampling_keeps_label_values():
    labels = np.zeros((20, 30, 30), np.uint8)
    labels[5:10, 5:15, 5:15] = 3
    labels[12:18, 15:25, 10:28] = 7
    src = Grid(labels.shape, (1.0, 1.0, 1.5), (0.0, 0.0, 0.0))
    shifted = Grid(labels.shape, (1.0, 1.0, 1.5), (2.0, -3.0, 3.0))  # whole voxels: exact copy
    out = resample_to_grid(labels, src, shifted, order=0)
    assert out.dtype == np.uint8
    assert np.array_equal(out[:-2, 3:, :-2], labels[2:, :-3, 2:])
    oblique = Grid(labels.shape, (0.7, 0.7, 1.0), (3.0, -2.0, 1.0), tuple(rotation_about_x(15.0).ravel()))
    out = resample_to_grid(labels, src, oblique, order=0)
    assert set(np.unique(out)) <= {0, 3, 7} and {3, 7} <= set(np.unique(out))
    back = resample_to_grid(out, oblique, src, order=0)
    core = np.zeros_like(labels, bool)
    core[7:9, 8:12, 8:12] = True
    assert np.all(back[core] == 3)


def test_cuda_request_without_a_gpu_is_a_clear_input_error():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(InputError, match="no CUDA GPU is available"):
        resolve_device("cuda")


def test_intensity_windows_clip_and_scale_to_unit_range():
    hu = torch.tensor([-1000.0, 0.0, 50.0, 100.0, 2000.0])
    ch = intensity_channels(hu, [(0.0, 100.0), (-1000.0, 1000.0)])
    assert ch.shape == (2, 5)
    assert torch.allclose(ch[0], torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    assert torch.allclose(ch[1], torch.tensor([0.0, 0.5, 0.525, 0.55, 1.0]))
