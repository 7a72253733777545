"""DICOM series: write_ct_series → read_ct gives the CT's HU at the right world positions.

Covers what scanners do to a series: files in any order and names, rescale slope/intercept, padding,
gantry tilt (a sheared stack), a missing slice, duplicates, several series in one folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from iacseg.core.errors import InputError
from iacseg.io import CTVolume, read_ct, write_ct_series


def write_volume_dicom(vol: CTVolume, folder: Path, keep: slice | list[int] | None = None, **options) -> list[Path]:
    """Write ``vol`` (axial grid) as a DICOM series; ``keep`` selects which slices are written."""
    g = vol.grid
    d = g.direction_matrix
    k = np.arange(g.shape[0])
    positions = np.asarray(g.origin) + k[:, None] * g.spacing[2] * d[:, 2]
    index = np.arange(g.shape[0])[keep] if keep is not None else k
    options.setdefault("slice_thickness_mm", g.spacing[2])
    return write_ct_series(folder, vol.hu[index], positions[index], d[:, 0], d[:, 1],
                           (g.spacing[1], g.spacing[0]), **options)


def test_series_round_trip_any_file_order(tmp_path, small_ct: CTVolume, sphere_phantom):
    paths = write_volume_dicom(small_ct, tmp_path / "raw", shuffle_seed=7, kernel="H30s", manufacturer="ACME")
    numbers = [pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber for p in paths]
    assert numbers != sorted(numbers)  # instance numbers do not follow the slices
    # Scatter the files over nested folders, names without extension, in reverse slice order.
    series = tmp_path / "study"
    for s, p in enumerate(paths):
        target = series / f"part{s % 3}" / f"IM{len(paths) - s:04d}"
        target.parent.mkdir(parents=True, exist_ok=True)
        p.rename(target)
    (series / "README.txt").write_text("not dicom")

    vol = read_ct(series)
    np.testing.assert_array_equal(vol.hu, small_ct.hu)
    assert vol.grid.same_geometry(small_ct.grid)
    np.testing.assert_allclose(sphere_phantom.centroid(vol), sphere_phantom.centre, atol=0.3)
    meta = vol.metadata
    assert meta["modality"] == "CT" and meta["source_format"] == "dicom"
    assert meta["kernel"] == "H30s" and meta["manufacturer"] == "ACME"
    assert meta["slice_thickness_mm"] == 2.0 and meta["gantry_tilt_deg"] == 0.0
    assert meta["series_uid"] == pydicom.dcmread(next(series.rglob("IM*"))).SeriesInstanceUID
    assert meta["corrections"] == []
    assert "PHANTOM" not in repr(meta)  # no patient identifiers copied


def test_written_series_is_valid_for_simpleitk(tmp_path, small_ct: CTVolume):
    write_volume_dicom(small_ct, tmp_path / "s", rescale_slope=2.0, rescale_intercept=-1024.0)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "s")))
    image = reader.Execute()
    assert image.GetSize() == (64, 64, 40)
    np.testing.assert_allclose(image.GetOrigin(), small_ct.grid.origin, atol=1e-4)
    assert np.abs(sitk.GetArrayFromImage(image) - small_ct.hu).max() <= 1.0


def test_single_file_reads_its_whole_series(tmp_path, small_ct: CTVolume):
    paths = write_volume_dicom(small_ct, tmp_path / "s")
    vol = read_ct(paths[5])
    assert vol.grid.same_geometry(small_ct.grid)


def test_rescale_slope_and_intercept(tmp_path, small_ct: CTVolume):
    write_volume_dicom(small_ct, tmp_path / "s", rescale_slope=2.0, rescale_intercept=-1024.0)
    stored = pydicom.dcmread(sorted((tmp_path / "s").iterdir())[20]).pixel_array
    assert stored.max() < 1100  # really stored at half scale
    vol = read_ct(tmp_path / "s")
    assert np.abs(vol.hu - small_ct.hu).max() <= 1.0  # rounding to the nearest 2 HU step


@pytest.mark.parametrize("padding_value, intercept, tagged", [(-2000, 0.0, True), (-3024, 0.0, False),
                                                              (-2000, -1024.0, True)])
def test_padding_becomes_air(tmp_path, small_ct: CTVolume, padding_value, intercept, tagged):
    outside = np.zeros(small_ct.shape, bool)
    outside[:, :, :6] = True  # outside the reconstruction circle
    hu = small_ct.hu.copy()
    if tagged:
        write_ct_kw = dict(padding_value=padding_value, padding_mask=outside)
    else:
        hu[outside] = padding_value  # no PixelPaddingValue tag: recognised by being far below air
        write_ct_kw = {}
    write_volume_dicom(CTVolume(hu, small_ct.grid), tmp_path / "s", rescale_intercept=intercept, **write_ct_kw)
    vol = read_ct(tmp_path / "s")
    np.testing.assert_array_equal(vol.hu[outside], -1024.0)
    np.testing.assert_array_equal(vol.hu[~outside], small_ct.hu[~outside])
    text = " ".join(vol.metadata["corrections"])
    assert "padding" in text and "air" in text
    if tagged:
        assert str(padding_value) in text


def test_gantry_tilt_is_corrected(tmp_path, sphere_phantom):
    tilt = np.radians(20.0)
    rows = cols = 64
    si = sj = 0.8
    table_step = 2.0  # table moves along z between slices; the image plane is tilted about the x axis
    row_dir = np.array([1.0, 0.0, 0.0])
    col_dir = np.array([0.0, np.cos(tilt), np.sin(tilt)])
    start = np.array([-25.2, -25.0, 10.0])
    positions = start + np.arange(40)[:, None] * np.array([0.0, 0.0, table_step])
    j, i = np.mgrid[:rows, :cols]
    pixel_offsets = i[..., None] * si * row_dir + j[..., None] * sj * col_dir  # [rows, cols, 3] mm
    slices = np.stack([sphere_phantom.render(p + pixel_offsets) for p in positions])
    write_ct_series(tmp_path / "tilted", slices, positions, row_dir, col_dir, (sj, si), slice_thickness_mm=2.0,
                    gantry_tilt_deg=20.0)

    vol = read_ct(tmp_path / "tilted")
    d = vol.grid.direction_matrix
    np.testing.assert_allclose(d.T @ d, np.eye(3), atol=1e-6)  # orthogonal grid
    assert vol.grid.spacing[2] == pytest.approx(table_step * np.cos(tilt), rel=1e-3)
    np.testing.assert_allclose(sphere_phantom.centroid(vol), sphere_phantom.centre, atol=0.5)
    assert vol.metadata["gantry_tilt_deg"] == pytest.approx(20.0, abs=0.1)
    assert any("gantry tilt 20.0°" in c for c in vol.metadata["corrections"])
    # Without the correction (slices simply stacked along the normal) the sphere would be far off.
    naive = CTVolume(slices, vol.grid.__class__(slices.shape, vol.grid.spacing, vol.grid.origin, vol.grid.direction))
    assert np.linalg.norm(sphere_phantom.centroid(naive) - sphere_phantom.centre) > 5.0


def test_missing_slice_gives_regular_grid(tmp_path, small_ct: CTVolume, sphere_phantom):
    keep = [k for k in range(40) if k != 17]
    write_volume_dicom(small_ct, tmp_path / "s", keep=keep)
    vol = read_ct(tmp_path / "s", allow_gaps=True)  # refused without: see test_input_safety.py
    assert vol.grid.same_geometry(small_ct.grid)  # 40 slices every 2.0 mm from the same origin
    np.testing.assert_array_equal(vol.hu[keep], small_ct.hu[keep])
    np.testing.assert_allclose(vol.hu[17], (small_ct.hu[16] + small_ct.hu[18]) / 2, atol=1e-3)
    np.testing.assert_allclose(sphere_phantom.centroid(vol), sphere_phantom.centre, atol=0.5)
    assert "uneven slice spacing (2.0–4.0 mm) resampled to 2.0 mm" in vol.metadata["corrections"]
    assert any("gap" in w for w in vol.metadata["warnings"])


def test_duplicate_slice_is_dropped_with_warning(tmp_path, small_ct: CTVolume):
    write_volume_dicom(small_ct, tmp_path / "s", keep=list(range(40)) + [12], uid_seed=3)
    vol = read_ct(tmp_path / "s")
    assert vol.grid.same_geometry(small_ct.grid)
    np.testing.assert_array_equal(vol.hu, small_ct.hu)
    assert any("same position" in w for w in vol.metadata["warnings"])


def _two_series(tmp_path: Path, ct: CTVolume) -> tuple[Path, str, str]:
    folder = tmp_path / "study"  # both series side by side in one flat folder
    big = write_volume_dicom(ct, folder, uid_seed=1, series_description="thin")
    small = write_volume_dicom(ct, folder, keep=slice(0, 40, 2), uid_seed=2, series_description="thick")
    assert len(list(folder.iterdir())) == 60
    uid = lambda p: str(pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID)  # noqa: E731
    return folder, uid(big[0]), uid(small[0])


def test_largest_ct_series_is_chosen(tmp_path, small_ct: CTVolume):
    folder, big_uid, small_uid = _two_series(tmp_path, small_ct)
    vol = read_ct(folder)
    assert vol.metadata["series_uid"] == big_uid and vol.shape[0] == 40
    assert any("series UID" in w and small_uid in w for w in vol.metadata["warnings"])


def test_series_uid_is_honoured(tmp_path, small_ct: CTVolume):
    folder, _, small_uid = _two_series(tmp_path, small_ct)
    vol = read_ct(folder, series_uid=small_uid)
    assert vol.metadata["series_uid"] == small_uid and vol.shape[0] == 20
    assert vol.grid.spacing[2] == pytest.approx(4.0)


def test_unknown_series_uid_lists_the_available_ones(tmp_path, small_ct: CTVolume):
    folder, big_uid, small_uid = _two_series(tmp_path, small_ct)
    with pytest.raises(InputError) as err:
        read_ct(folder, series_uid="1.2.3.4")
    assert "1.2.3.4" in str(err.value) and big_uid in str(err.value) and small_uid in str(err.value)


def test_mr_and_localizer_series_are_passed_over(tmp_path, small_ct: CTVolume):
    folder = tmp_path / "study"
    write_volume_dicom(small_ct, folder / "mr", uid_seed=4, modality="MR")  # more slices than the CT
    write_volume_dicom(small_ct, folder / "scout", keep=slice(0, 3), uid_seed=5,
                       image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    write_volume_dicom(small_ct, folder / "ct", keep=slice(0, 30), uid_seed=6)
    vol = read_ct(folder)
    assert vol.metadata["modality"] == "CT" and vol.shape[0] == 30
