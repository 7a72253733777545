"""Bad input at the command line: non-zero exit, one clear line on stderr, no output folder left behind."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from iacseg.cli.main import main
from iacseg.core.grid import Grid
from iacseg.io.writers import write_image


def _ct_like(shape=(12, 32, 32), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hu = np.full(shape, -1000.0, np.float32)
    hu[:, 6:26, 6:26] = 40 + rng.normal(0, 5, (shape[0], 20, 20))
    return hu


def _nifti_header_only(path: Path, dims: tuple[int, int, int]) -> None:
    """A NIfTI-1 header declaring ``dims`` int16 voxels, with (almost) no data behind it."""
    hdr = bytearray(348)
    struct.pack_into("<i", hdr, 0, 348)
    struct.pack_into("<8h", hdr, 40, 3, dims[0], dims[1], dims[2], 1, 1, 1, 1)
    struct.pack_into("<h", hdr, 70, 4)  # datatype int16
    struct.pack_into("<h", hdr, 72, 16)  # bitpix
    struct.pack_into("<8f", hdr, 76, 1, 1, 1, 1, 1, 1, 1, 1)
    struct.pack_into("<f", hdr, 108, 352.0)  # vox_offset
    struct.pack_into("<f", hdr, 112, 1.0)  # scl_slope
    hdr[344:348] = b"n+1\x00"
    path.write_bytes(bytes(hdr) + b"\x00" * 4 + b"\x00" * 1000)


def _make(kind: str, tmp: Path) -> Path:
    g = Grid((12, 32, 32), (0.5, 0.5, 2.0), (0, 0, 0))
    if kind == "missing":
        return tmp / "nope.nii.gz"
    if kind == "empty_folder":
        (tmp / "empty").mkdir()
        return tmp / "empty"
    if kind == "text_file":
        p = tmp / "notes.txt"
        p.write_text("this is not an image\n")
        return p
    if kind == "random_bytes_nii":
        p = tmp / "junk.nii.gz"
        p.write_bytes(gzip.compress(os.urandom(2000)))
        return p
    if kind == "truncated_nifti":
        p = tmp / "full.nii.gz"
        write_image(p, _ct_like().astype(np.int16), g)
        raw = gzip.decompress(p.read_bytes())
        q = tmp / "truncated.nii"
        q.write_bytes(raw[: len(raw) // 2])
        return q
    if kind == "image_2d":
        import SimpleITK as sitk

        p = tmp / "flat.nii.gz"
        sitk.WriteImage(sitk.GetImageFromArray(_ct_like()[0]), str(p))
        return p
    if kind == "nan_voxels":
        hu = _ct_like()
        hu[3, 10, 10] = np.nan
        p = tmp / "nan.nii.gz"
        write_image(p, hu, g)
        return p
    if kind == "single_slice":
        p = tmp / "one.nii.gz"
        write_image(p, _ct_like((1, 32, 32)), Grid((1, 32, 32), (0.5, 0.5, 2.0), (0, 0, 0)))
        return p
    if kind == "absurd_spacing":
        p = tmp / "spacing.nii.gz"
        write_image(p, _ct_like(), Grid((12, 32, 32), (0.5, 0.5, 80.0), (0, 0, 0)))
        return p
    if kind == "huge_declared_size":
        p = tmp / "huge.nii"
        _nifti_header_only(p, (30000, 30000, 30000))
        return p
    if kind == "not_hu":
        p = tmp / "mr_like.nii.gz"
        write_image(p, np.abs(_ct_like()) + 100, g)
        return p
    if kind in ("mr_series", "localizer_only"):
        from iacseg.io.dicom_write import write_ct_series

        folder = tmp / kind
        n = 1 if kind == "localizer_only" else 12
        slices = _ct_like((n, 32, 32))
        positions = np.array([[0.0, 0.0, 2.0 * k] for k in range(n)])
        kw = {"modality": "MR"} if kind == "mr_series" else {"image_type": ("ORIGINAL", "PRIMARY", "LOCALIZER")}
        write_ct_series(folder, slices, positions, (1, 0, 0), (0, 1, 0), (0.5, 0.5), slice_thickness_mm=2.0, **kw)
        return folder
    raise AssertionError(kind)


BAD_INPUTS = ["missing", "empty_folder", "text_file", "random_bytes_nii", "truncated_nifti", "image_2d",
              "nan_voxels", "single_slice", "absurd_spacing", "huge_declared_size", "not_hu", "mr_series",
              "localizer_only"]


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_bad_input_gives_one_clear_line_and_no_output(kind, tmp_path, capsys):
    src = _make(kind, tmp_path)
    out = tmp_path / "out" / "case"
    code = main(["segment", str(src), "-o", str(out), "--progress", "none"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("iacseg: error: ")
    assert "Traceback" not in err
    assert not out.exists()
    assert not any(p.name.startswith(".case") for p in (tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_unreadable_file_is_refused(tmp_path, capsys, monkeypatch):
    # Tests run as root, for whom chmod cannot make a file unreadable; simulate the permission check instead.
    p = tmp_path / "ct.nii.gz"
    write_image(p, _ct_like(), Grid((12, 32, 32), (0.5, 0.5, 2.0), (0, 0, 0)))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, *a, **k: False if Path(path) == p else real_access(path, mode))
    code = main(["segment", str(p), "-o", str(tmp_path / "out"), "--progress", "none"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "permission" in err.lower() and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_bad_threshold_is_refused_before_any_work(tmp_path, capsys):
    code = main(["segment", str(tmp_path / "x.nii.gz"), "-o", str(tmp_path / "o"), "--threshold", "1.7"])
    assert code == 2 and "threshold" in capsys.readouterr().err


def test_existing_output_folder_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("a reader's file")
    code = main(["segment", str(tmp_path / "x.nii.gz"), "-o", str(out), "--progress", "none"])
    assert code == 2 and "already exists" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "a reader's file"
