"""Every kind of unusable input gives one InputError sentence that names the input and says why."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from iacseg.core.errors import InputError
from iacseg.io import CTVolume, read_ct, write_ct_series
from iacseg.core.grid import Grid
from iacseg.io.validate import check_spacing
from iacseg.io.writers import write_image


def _axial_series(folder: Path, ct: CTVolume, n: int | None = None, **options) -> list[Path]:
    g = ct.grid
    n = g.shape[0] if n is None else n
    positions = np.asarray(g.origin) + np.arange(n)[:, None] * np.array([0.0, 0.0, g.spacing[2]])
    return write_ct_series(folder, ct.hu[:n], positions, (1, 0, 0), (0, 1, 0), (g.spacing[1], g.spacing[0]),
                           slice_thickness_mm=g.spacing[2], **options)


def _nifti_header(path: Path, dims: tuple[int, int, int], data_bytes: int = 1000) -> None:
    """A NIfTI-1 file whose header declares ``dims`` int16 voxels but holds only ``data_bytes`` of data."""
    hdr = bytearray(348)
    struct.pack_into("<i", hdr, 0, 348)
    struct.pack_into("<8h", hdr, 40, 3, *dims, 1, 1, 1, 1)
    struct.pack_into("<hh", hdr, 70, 4, 16)  # int16, 16 bits
    struct.pack_into("<8f", hdr, 76, 1, 1, 1, 1, 1, 1, 1, 1)
    struct.pack_into("<ff", hdr, 108, 352.0, 1.0)  # vox_offset, scl_slope
    hdr[344:348] = b"n+1\x00"
    path.write_bytes(bytes(hdr) + b"\x00" * (4 + data_bytes))


def _image(path: Path, array: np.ndarray, spacing=None) -> Path:
    image = sitk.GetImageFromArray(array, isVector=False)
    if spacing is not None:
        image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def _make(kind: str, tmp: Path, ct: CTVolume) -> tuple[Path, dict]:
    """Build the bad input ``kind`` under ``tmp``; returns its path and read_ct keyword arguments."""
    if kind == "missing":
        return tmp / "nope.nii.gz", {}
    if kind == "empty_folder":
        (tmp / "empty").mkdir()
        return tmp / "empty", {}
    if kind == "folder_without_dicom":
        (tmp / "docs").mkdir()
        (tmp / "docs" / "notes.txt").write_text("hello")
        (tmp / "docs" / "junk.dcm").write_bytes(os.urandom(3000))
        return tmp / "docs", {}
    if kind == "text_file":
        (tmp / "notes.txt").write_text("this is not an image\n")
        return tmp / "notes.txt", {}
    if kind == "random_bytes_nii_gz":
        (tmp / "junk.nii.gz").write_bytes(gzip.compress(os.urandom(2000)))
        return tmp / "junk.nii.gz", {}
    if kind in ("truncated_nii_gz", "truncated_nii"):
        full = write_image(tmp / "full.nii", ct.hu.astype(np.int16), ct.grid, compress=False).read_bytes()
        cut = full[: len(full) // 2]
        path = tmp / ("cut.nii.gz" if kind == "truncated_nii_gz" else "cut.nii")
        path.write_bytes(gzip.compress(cut) if kind == "truncated_nii_gz" else cut)
        return path, {}
    if kind == "image_2d":
        return _image(tmp / "slice2d.nii.gz", ct.hu[20]), {}
    if kind == "image_4d":
        return _image(tmp / "series4d.nii.gz", np.stack([ct.hu] * 3)), {}
    if kind == "single_slice_file":
        return _image(tmp / "one.nrrd", ct.hu[20:21]), {}
    if kind == "single_slice_dicom":
        _axial_series(tmp / "oneslice", ct, n=1)
        return tmp / "oneslice", {}
    if kind in ("nan_voxels", "inf_voxels"):
        hu = ct.hu.copy()
        hu[20, 30, 30] = np.nan if kind == "nan_voxels" else np.inf
        return write_image(tmp / f"{kind}.nii.gz", hu, ct.grid), {}
    if kind == "tiny_spacing":
        return _image(tmp / "tiny.mha", ct.hu, (0.05, 0.05, 2.0)), {}
    if kind == "huge_spacing":
        return _image(tmp / "huge_spacing.mha", ct.hu, (0.8, 0.8, 30.0)), {}
    if kind == "dicom_slices_too_far_apart":
        far = CTVolume(ct.hu[:4], Grid((4, 64, 64), (0.8, 0.8, 25.0), ct.grid.origin))
        _axial_series(tmp / "sparse", far)
        return tmp / "sparse", {}
    if kind == "huge_declared_size":
        _nifti_header(tmp / "huge.nii", (4096, 4096, 4096))  # 128 GiB as float32; file is 1 kB
        return tmp / "huge.nii", {}
    if kind == "not_hounsfield":
        return write_image(tmp / "mr_like.nii.gz", ct.hu + 1024.0, ct.grid), {}
    if kind == "mr_series":
        _axial_series(tmp / "mr", ct, modality="MR")
        return tmp / "mr", {}
    if kind == "localizer_only":
        _axial_series(tmp / "scout", ct, n=2, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
        return tmp / "scout", {}
    if kind == "chosen_series_not_ct":
        _axial_series(tmp / "study" / "ct", ct, uid_seed=1)
        paths = _axial_series(tmp / "study" / "pet", ct, uid_seed=2, modality="PT")
        import pydicom

        return tmp / "study", {"series_uid": str(pydicom.dcmread(paths[0]).SeriesInstanceUID)}
    raise AssertionError(kind)


CASES = {  # kind → words the message must contain (besides the input's name)
    "missing": "does not exist",
    "empty_folder": "empty",
    "folder_without_dicom": "no DICOM images",
    "text_file": "not an image",
    "random_bytes_nii_gz": "could not be read",
    "truncated_nii_gz": "truncated",
    "truncated_nii": "truncated",
    "image_2d": "2D",
    "image_4d": "4D",
    "single_slice_file": "single slice",
    "single_slice_dicom": "single slice",
    "nan_voxels": "NaN or infinite",
    "inf_voxels": "NaN or infinite",
    "tiny_spacing": "spacing",
    "huge_spacing": "spacing",
    "dicom_slices_too_far_apart": "spacing 0.8 × 0.8 × 25 mm",
    "huge_declared_size": "declares 4096 × 4096 × 4096",
    "not_hounsfield": "does not look like a CT in Hounsfield units",
    "mr_series": "MR",
    "localizer_only": "localizer",
    "chosen_series_not_ct": "is PT, not CT",
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_bad_input_gives_one_clear_sentence(tmp_path, small_ct: CTVolume, kind):
    path, kwargs = _make(kind, tmp_path, small_ct)
    with pytest.raises(InputError) as err:
        read_ct(path, **kwargs)
    message = str(err.value)
    assert path.name in message, message
    assert CASES[kind] in message, message
    assert "\n" not in message and message.endswith("."), message


def test_unreadable_file_is_refused(tmp_path, small_ct: CTVolume, monkeypatch):
    # Tests may run as root, where chmod cannot make a file unreadable, so deny access through os.access.
    path = write_image(tmp_path / "locked.nii.gz", small_ct.hu, small_ct.grid)
    monkeypatch.setattr("iacseg.io.paths.os.access", lambda p, mode: False)
    with pytest.raises(InputError, match="cannot be read with your permissions") as err:
        read_ct(path)
    assert "locked.nii.gz" in str(err.value)


def test_huge_size_is_refused_before_reading_voxels(tmp_path, monkeypatch):
    _nifti_header(tmp_path / "huge.nii", (4096, 4096, 4096))

    def must_not_run(self):
        raise AssertionError("pixels were read")

    monkeypatch.setattr(sitk.ImageFileReader, "Execute", must_not_run)
    with pytest.raises(InputError, match="declares"):
        read_ct(tmp_path / "huge.nii")


@pytest.mark.parametrize("spacing", [(0.0, 1.0, 1.0), (1.0, -0.5, 1.0), (1.0, 1.0, float("nan"))])
def test_non_positive_spacing_is_refused(spacing):
    with pytest.raises(InputError, match="spacing"):
        check_spacing(Path("ct.nrrd"), spacing)


def test_sound_input_passes_the_same_checks(tmp_path, small_ct: CTVolume):
    """The checks above refuse bad inputs only: the phantom itself is read without complaint."""
    vol = read_ct(write_image(tmp_path / "ct.nii.gz", small_ct.hu, Grid(small_ct.shape, (0.8, 0.8, 2.0),
                                                                        small_ct.grid.origin)))
    assert vol.shape == small_ct.shape
