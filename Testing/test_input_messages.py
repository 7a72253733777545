"""Wrong or unhelpful messages (hardening issue): for every input a tester reported, the user gets either a result
with its QC status, or exit 2 and one line that says what is wrong with *their* input and what to do — never
"landmarks out of order" when they placed no landmark, never "single slice" for many images, "decompress" for
files without pixels, "empty" for a DICOMDIR-only folder, "does not exist" for a symlink loop, or "0 × 0 × 0" for
NaN spacing. `iacseg phantom -o` never replaces a user's folder.

Every input is generated here and small: NIfTI / NRRD / MetaImage through SimpleITK, DICOM through
`write_ct_series`, heads from the classic phantom at 64 × 64 pixels and 4 mm slices.
"""

from __future__ import annotations

import json
import os
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from iacseg.cli.main import main
from iacseg.io import CTVolume
from iacseg.core.grid import Grid
from iacseg.io.dicom_write import write_ct_series
from iacseg.io.writers import write_image
from iacseg.phantom import make_phantom

WRONG_BLAME = "landmarks out of order"


def _segment(path: Path, out: Path, capsys) -> tuple[int, list[str]]:
    code = main(["segment", str(path), "-o", str(out), "--progress", "none", "--device", "cpu"])
    return code, capsys.readouterr().err.strip().splitlines()


def _refused(path: Path, tmp_path: Path, capsys, *words: str) -> str:
    """Run ``segment`` on ``path``: exit 2, one line holding every one of ``words``, no output folder."""
    code, err = _segment(path, tmp_path / "out", capsys)
    assert code == 2, err
    assert len(err) == 1, err
    line = err[0]
    assert line.startswith("iacseg: error: "), line
    for word in words:
        assert word in line, (word, line)
    assert WRONG_BLAME not in line and "internal error" not in line
    assert not (tmp_path / "out").exists()
    return line


def _nifti(path: Path, hu: np.ndarray, spacing=(3.0, 3.0, 3.0), direction=None, origin=(0.0, 0.0, 0.0)) -> Path:
    grid = Grid(hu.shape, spacing, origin, direction if direction is not None else (1, 0, 0, 0, 1, 0, 0, 0, 1))
    return write_image(path, np.round(hu).astype(np.int16), grid)


def _rot_x(deg: float) -> np.ndarray:
    """Rotation about the left-right axis (a head nodding) by ``deg`` degrees."""
    a = np.radians(deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


@pytest.fixture(scope="module")
def head() -> CTVolume:
    """A small upright phantom head CT (≈ 39 × 64 × 64 voxels, 3.6 × 3.6 × 4 mm, axial LPS)."""
    return make_phantom(70401, slice_mm=4.0, matrix=64, fov_mm=230.0, noise_hu=6.0).ct


def _posed(path: Path, head: CTVolume, rotation: np.ndarray, flip_z: bool = False) -> Path:
    """``head`` written with its axes turned by ``rotation`` (a wrong or a real pose; world = rotation · grid)."""
    g = head.grid
    hu = head.hu[::-1] if flip_z else head.hu
    return _nifti(path, hu, g.spacing, tuple((rotation @ g.direction_matrix).ravel()), g.origin)


# ---------------------------------------------------------------- not a head CT that IACSeg can read


def _body(path: Path) -> Path:
    shape, spacing = (24, 128, 128), 3.2
    y, x = np.meshgrid((np.arange(128) - 63.5) * spacing, (np.arange(128) - 63.5) * spacing, indexing="ij")
    hu = np.full(shape, -1000.0)
    hu[:, (x / 175) ** 2 + (y / 120) ** 2 <= 1] = 40  # a trunk 350 mm wide
    for cx, cy, r, value in ((-80, -10, 55, -850), (80, -10, 55, -850), (0, 60, 18, 700)):  # lungs, spine
        hu[:, (x - cx) ** 2 + (y - cy) ** 2 <= r * r] = value
    return _nifti(path, hu, (spacing, spacing, 5.0))


NOT_A_HEAD = {
    "noise_cube": ("no head found", "random noise"),
    "all_air": ("no head found", "only air"),
    "body_ct": ("body CT",),
    "soft_tissue_without_bone": ("no skull found", "bone"),
    "two_slices": ("covers only 8 mm", "2 slices", "whole CT series"),
    "upside_down": ("upside down", "orientation"),
    "upside_down_turned": ("upside down", "orientation"),
}


@pytest.mark.parametrize("kind", sorted(NOT_A_HEAD))
def test_what_is_not_a_readable_head_ct_is_named_as_such(kind, tmp_path, capsys, head):
    if kind == "noise_cube":
        hu = np.random.default_rng(0).uniform(-1000, 1000, (40, 64, 64))
        hu[0, 0, 0] = -1000
        path = _nifti(tmp_path / "noise.nii.gz", hu)
    elif kind == "all_air":
        path = _nifti(tmp_path / "air.nii.gz", np.full((40, 64, 64), -1000.0))
    elif kind == "body_ct":
        path = _body(tmp_path / "body.nii.gz")
    elif kind == "soft_tissue_without_bone":  # a head-sized ball of water: tissue, but no skull
        z, y, x = np.indices((40, 64, 64)) - np.array([20, 32, 32])[:, None, None, None]
        path = _nifti(tmp_path / "water.nii.gz", np.where(x**2 + y**2 + z**2 <= 24**2, 10.0, -1000.0))
    elif kind == "two_slices":
        k = head.shape[0] // 2
        path = _nifti(tmp_path / "two.nii.gz", head.hu[k:k + 2], head.grid.spacing, origin=head.grid.origin)
    elif kind == "upside_down":  # the slice order reversed: a NIfTI whose z axis has the wrong sign
        path = _posed(tmp_path / "flipped.nii.gz", head, np.eye(3), flip_z=True)
    else:  # turned 180° about the left-right axis by a wrong orientation header
        path = _posed(tmp_path / "turned.nii.gz", head, _rot_x(180.0))
    line = _refused(path, tmp_path, capsys, "is not a head CT that IACSeg can read", *NOT_A_HEAD[kind])
    assert "give" in line or "fix" in line  # what to do


def test_a_low_resolution_head_is_not_called_random_noise():
    from iacseg.preprocess import analyse_head
    from iacseg.quality.scan_checks import MAX_STRUCTURE_RATIO, structure_ratio

    # 2.4 mm pixels: no block averaging, and a field of view mostly tissue (the scan ends below the clinoids)
    low = make_phantom(80006, truncate="top", matrix=96, fov_mm=230.0).ct
    assert structure_ratio(analyse_head(low).mean_hu) < 1.3
    noise = np.random.default_rng(1).normal(40.0, 300.0, (40, 64, 64)).astype(np.float32)
    noise_ct = CTVolume(noise, Grid(noise.shape, (3.0, 3.0, 3.0), (0.0, 0.0, 0.0)), {})
    assert structure_ratio(analyse_head(noise_ct).mean_hu) > MAX_STRUCTURE_RATIO


@pytest.mark.parametrize("pitch", [0.0, 30.0, -30.0])
def test_an_upright_or_tilted_head_is_processed_with_its_qc_status(pitch, tmp_path, capsys, head):
    path = _posed(tmp_path / "head.nii.gz", head, _rot_x(pitch))
    code, err = _segment(path, tmp_path / "out", capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["qc"]["status"] in ("ok", "review", "unusable")
    assert WRONG_BLAME not in "\n".join(err)


# ---------------------------------------------------------------- DICOM folders


def _series(folder: Path, n: int = 10) -> list[Path]:
    hu = np.full((n, 32, 32), -1000.0, np.float32)
    hu[:, 6:26, 6:26] = 40
    positions = np.column_stack([np.zeros(n), np.zeros(n), np.arange(n) * 2.0])
    return write_ct_series(folder, hu, positions, (1, 0, 0), (0, 1, 0), (0.5, 0.5), slice_thickness_mm=2.0)


def _edit(paths: list[Path], change) -> None:
    import pydicom

    for n, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about the invalid values these tests write
            change(ds, n)
        ds.save_as(path)


def _dicom_case(kind: str, tmp_path: Path) -> Path:
    folder = tmp_path / kind
    if kind == "dicomdir_only":
        folder.mkdir()
        (folder / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)
        return folder
    if kind == "dicomdir_and_readme":
        folder.mkdir()
        (folder / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)
        (folder / "README.TXT").write_text("viewer on this disc\n")
        return folder
    paths = _series(folder, 49 if kind.startswith("49") else 10)
    if kind == "49_images_each_its_own_series":
        _edit(paths, lambda ds, n: setattr(ds, "SeriesInstanceUID", f"1.2.826.0.1.3680043.9.7.{n + 1}"))
    elif kind == "49_images_each_its_own_orientation":
        def turn(ds, n):
            a = np.radians(3.0 * n)
            ds.ImageOrientationPatient = [1, 0, 0, 0, float(np.cos(a)), float(np.sin(a))]
        _edit(paths, turn)
    elif kind == "no_pixel_data":
        _edit(paths, lambda ds, n: delattr(ds, "PixelData"))
    elif kind == "nan_pixel_spacing":
        _edit(paths, lambda ds, n: setattr(ds, "PixelSpacing", ["nan", "nan"]))
    elif kind == "no_position":
        _edit(paths, lambda ds, n: delattr(ds, "ImagePositionPatient"))
    return folder


DICOM_CASES = {
    "dicomdir_only": (("only a DICOMDIR index", "no image files", "give the folder with the images"), ("empty",)),
    "dicomdir_and_readme": (("only a DICOMDIR index", "give the folder with the images"), ("empty",)),
    "49_images_each_its_own_series": (("49 CT images", "series of its own", "SeriesInstanceUID"),
                                      ("single slice",)),
    "49_images_each_its_own_orientation": (("49 images", "do not stack"), ("single slice",)),
    "no_pixel_data": (("no pixel data", "PixelData missing", "re-export the series with its images"),
                      ("gdcmconv", "decompress")),
    "nan_pixel_spacing": (("PixelSpacing", "not hold valid numbers", "NaN"), ("lacks",)),
    "no_position": (("no ImagePositionPatient",), ("PixelSpacing",)),
}


@pytest.mark.parametrize("kind", sorted(DICOM_CASES))
def test_a_dicom_folder_that_cannot_be_read_is_refused_with_its_real_reason(kind, tmp_path, capsys):
    present, absent = DICOM_CASES[kind]
    line = _refused(_dicom_case(kind, tmp_path), tmp_path, capsys, *present)
    for word in absent:
        assert word not in line, (word, line)


# ---------------------------------------------------------------- paths and headers


def _nan_nifti(path: Path) -> Path:
    write_image(path, np.full((10, 32, 32), -1000, np.int16), Grid((10, 32, 32), (1, 1, 1), (0, 0, 0)),
                compress=False)
    raw = bytearray(path.read_bytes())
    struct.pack_into("<3f", raw, 80, np.nan, np.nan, np.nan)  # pixdim[1:4]
    path.write_bytes(bytes(raw))
    return path


def _patched(path: Path, old: bytes, new: bytes) -> Path:
    if path.suffix == ".mha":
        sitk.WriteImage(sitk.GetImageFromArray(np.full((10, 32, 32), -1000, np.int16)), str(path))
    else:
        write_image(path, np.full((10, 32, 32), -1000, np.int16), Grid((10, 32, 32), (1, 1, 1), (0, 0, 0)))
    raw = path.read_bytes()
    assert old in raw, raw[:300]
    path.write_bytes(raw.replace(old, new, 1))
    return path


@pytest.mark.parametrize("kind", ["nifti", "nrrd", "metaimage"])
def test_nan_spacing_is_called_nan_not_zero(kind, tmp_path, capsys):
    if kind == "nifti":
        path = _nan_nifti(tmp_path / "nan.nii")
    elif kind == "nrrd":
        path = _patched(tmp_path / "nan.nrrd", b"space directions: (1,0,0) (0,1,0) (0,0,1)",
                        b"space directions: (nan,0,0) (0,nan,0) (0,0,nan)")
    else:
        path = _patched(tmp_path / "nan.mha", b"ElementSpacing = 1 1 1", b"ElementSpacing = nan nan nan")
    line = _refused(path, tmp_path, capsys, "not a finite number")
    assert "0 × 0 × 0" not in line and "1 × 1 × 1" not in line


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_a_symlink_loop_is_called_a_loop(tmp_path, capsys):
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    line = _refused(tmp_path / "a", tmp_path, capsys, "symlink loop", "point to the real file or folder")
    assert "does not exist" not in line


# ---------------------------------------------------------------- iacseg phantom -o: never a user's folder

PHANTOM = ["--seed", "3", "--matrix", "32", "--slice-mm", "5", "--progress", "none"]


def _phantom(out, capsys) -> tuple[int, list[str]]:
    code = main(["phantom", "-o", str(out), *PHANTOM])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("where", ["current", "home", "root"])
def test_phantom_refuses_the_current_home_and_root_folders(where, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    out = {"current": ".", "home": str(tmp_path / "home"), "root": "/"}[where]
    code, err = _phantom(out, capsys)
    assert code == 2 and len(err) == 1, err
    assert {"current": "the current folder", "home": "your home folder", "root": "root folder"}[where] in err[0]
    assert not any(tmp_path.glob("phantom_*")) and not any((tmp_path / "home").iterdir())


def test_phantom_never_replaces_a_users_folder_of_the_same_name(tmp_path, capsys):
    mine = tmp_path / "out" / "phantom_00003"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("my work\n")
    code, err = _phantom(tmp_path / "out", capsys)
    assert code == 2 and len(err) == 1, err
    assert "phantom_00003" in err[0] and "notes.txt" in err[0] and "nothing was changed" in err[0]
    assert (mine / "notes.txt").read_text() == "my work\n" and sorted(os.listdir(mine)) == ["notes.txt"]


def test_phantom_writes_beside_a_users_files_and_replaces_only_its_own_phantom(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine\n")
    assert _phantom(out, capsys)[0] == 0
    truth = json.loads((out / "phantom_00003" / "truth.json").read_text())
    assert truth["seed"] == 3
    assert _phantom(out, capsys)[0] == 0  # a previous phantom of the same seed is replaced
    assert (out / "keep.txt").read_text() == "mine\n"
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt", "phantom_00003"]


def test_phantom_refuses_an_output_that_is_a_file(tmp_path, capsys):
    (tmp_path / "out").write_text("a file\n")
    code, err = _phantom(tmp_path / "out", capsys)
    assert code == 2 and len(err) == 1 and "is a file" in err[0], err
    assert (tmp_path / "out").read_text() == "a file\n"
