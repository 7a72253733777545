"""read_ct on image files: the HU values and the world positions a user wrote come back unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from iacseg.io import CTVolume, read_ct
from iacseg.core.grid import Grid
from iacseg.io.writers import write_image

METADATA_KEYS = {"modality", "source_format", "series_uid", "slice_thickness_mm", "gantry_tilt_deg", "kernel",
                 "manufacturer", "corrections", "warnings"}


@pytest.mark.parametrize("name, fmt", [("ct.nii.gz", "nifti"), ("ct.nii", "nifti"), ("ct.nrrd", "nrrd"),
                                       ("ct.nhdr", "nrrd"), ("ct.mha", "metaimage"), ("ct.mhd", "metaimage")])
def test_image_file_round_trip(tmp_path, small_ct: CTVolume, sphere_phantom, name, fmt):
    write_image(tmp_path / name, small_ct.hu, small_ct.grid)
    vol = read_ct(tmp_path / name)
    assert vol.hu.dtype == np.float32
    np.testing.assert_array_equal(vol.hu, small_ct.hu)
    assert vol.grid.same_geometry(small_ct.grid)
    np.testing.assert_allclose(sphere_phantom.centroid(vol), sphere_phantom.centre, atol=0.3)
    assert METADATA_KEYS <= set(vol.metadata)
    assert vol.metadata["source_format"] == fmt
    assert vol.metadata["corrections"] == [] and vol.metadata["warnings"] == []


def test_integer_file_is_read_as_float_hu(tmp_path, small_ct: CTVolume):
    write_image(tmp_path / "ct.nii.gz", small_ct.hu.astype(np.int16), small_ct.grid)
    vol = read_ct(str(tmp_path / "ct.nii.gz"))  # a str path works too
    assert vol.hu.dtype == np.float32
    np.testing.assert_array_equal(vol.hu, small_ct.hu)


def test_flipped_axes_keep_world_positions(tmp_path, sphere_phantom):
    # i runs towards patient right, j anterior: the array is stored flipped but the anatomy is where it was.
    direction = np.diag([-1.0, -1.0, 1.0])
    grid = Grid((40, 64, 64), (0.8, 0.8, 2.0), (25.2, 20.4, 10.0), tuple(direction.ravel()))
    ct = sphere_phantom.volume(grid)
    write_image(tmp_path / "flipped.nrrd", ct.hu, grid)
    vol = read_ct(tmp_path / "flipped.nrrd")
    np.testing.assert_allclose(vol.grid.direction_matrix, direction, atol=1e-6)
    np.testing.assert_allclose(sphere_phantom.centroid(vol), sphere_phantom.centre, atol=0.3)


def test_padding_below_minus_1500_becomes_air(tmp_path, small_ct: CTVolume):
    hu = small_ct.hu.copy()
    hu[:, :5, :] = -3024.0  # outside the scan field of view
    write_image(tmp_path / "padded.nii.gz", hu, small_ct.grid)
    vol = read_ct(tmp_path / "padded.nii.gz")
    assert vol.hu.min() == -1024.0
    np.testing.assert_array_equal(vol.hu[:, :5, :], -1024.0)
    np.testing.assert_array_equal(vol.hu[:, 5:, :], small_ct.hu[:, 5:, :])
    assert any("padding" in c for c in vol.metadata["corrections"])


def test_progress_is_reported(tmp_path, small_ct: CTVolume):
    write_image(tmp_path / "ct.mha", small_ct.hu, small_ct.grid)
    calls = []
    read_ct(tmp_path / "ct.mha", progress=lambda stage, fraction, message="": calls.append((stage, fraction)))
    assert calls[0] == ("read", 0.0) and calls[-1] == ("read", 1.0)
