"""Hostile and messy input (issue 11, item 2): what a user notices — exit code 2 and one line naming the
problem, never a hang, never an abort, never silently wrong data.

Every input is generated here, small: NIfTI / MetaImage files through SimpleITK, DICOM series through
`write_ct_series` (pydicom), FIFOs with ``os.mkfifo``. Anything that could hang or abort runs in a subprocess
or a thread with a timeout, so a regression fails the test instead of stopping the suite.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from iacseg.cli.main import main
from iacseg.core.errors import InputError
from iacseg.core.grid import Grid
from iacseg.io import read_ct
from iacseg.io.dicom_write import write_ct_series
from iacseg.io.library_warnings import capture_library_warnings
from iacseg.io.stack_geometry import missing_slice_gaps
from iacseg.io.writers import write_image
from iacseg.core.landmarks import Landmark
from iacseg.relabel import check_landmark_heights

TIMEOUT_S = 60
GRID = Grid((10, 32, 32), (0.5, 0.5, 2.0), (0.0, 0.0, 0.0))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "utf-8"}

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")


def _ct_like(n: int = 10, size: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hu = np.full((n, size, size), -1000.0, np.float32)
    hu[:, 6:26, 6:26] = np.rint(40 + rng.normal(0, 5, (n, 20, 20)))
    return hu


def _series(folder: Path, z: list[float] | np.ndarray | None = None, n: int = 10, row=(1, 0, 0), col=(0, 1, 0),
            **kw) -> list[Path]:
    """A small axial CT series with slices at heights ``z`` (default every 2 mm)."""
    z = np.arange(n) * 2.0 if z is None else np.asarray(z, float)
    positions = np.column_stack([np.zeros(len(z)), np.zeros(len(z)), z])
    return write_ct_series(folder, _ct_like(len(z)), positions, row, col, (0.5, 0.5), slice_thickness_mm=2.0, **kw)


def _refused(path, match: str, **kw) -> str:
    with pytest.raises(InputError) as err:
        read_ct(path, **kw)
    message = str(err.value)
    assert match in message, message
    assert "\n" not in message, message
    return message


def _cli(args: list, capsys) -> tuple[int, str]:
    code = main([*map(str, args), "--progress", "none"] if args[0] in ("segment", "batch") else list(map(str, args)))
    return code, capsys.readouterr().err.strip()


def _subprocess(args: list, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    """``python -m iacseg ARGS`` (bytes allowed) that must finish within ``timeout`` (a hang fails the test)."""
    cmd = [sys.executable.encode(), b"-m", b"iacseg", *[os.fsencode(a) for a in args]]
    return subprocess.run(cmd, capture_output=True, timeout=timeout, env=ENV)


def _in_thread(fn, timeout: float = TIMEOUT_S):
    """Run ``fn()`` in a daemon thread; fail (instead of hanging) when it does not return in time."""
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 — re-raised in the test's thread
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"did not return within {timeout} s (it hangs)"
    if "error" in box:
        raise box["error"]
    return box["value"]


# ---------------------------------------------------------------- regular files only: FIFOs, devices, symlinks

@needs_fifo
def test_a_named_pipe_given_as_input_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "ct.nii.gz"
    os.mkfifo(fifo)
    result = _subprocess(["segment", fifo, "-o", tmp_path / "out", "--progress", "none"])
    err = result.stderr.decode().strip()
    assert result.returncode == 2, err
    assert len(err.splitlines()) == 1 and "named pipe" in err and "ct.nii.gz" in err
    assert not (tmp_path / "out").exists()


@needs_fifo
def test_a_named_pipe_inside_a_dicom_folder_is_skipped_and_named(tmp_path):
    _series(tmp_path / "dicom")
    os.mkfifo(tmp_path / "dicom" / "IM_FIFO")
    vol = _in_thread(lambda: read_ct(tmp_path / "dicom"))
    assert vol.shape == (10, 32, 32)
    assert any("IM_FIFO (a named pipe (FIFO))" in w for w in vol.metadata["warnings"]), vol.metadata["warnings"]


@needs_fifo
def test_a_dicom_folder_holding_only_a_named_pipe_is_refused(tmp_path):
    (tmp_path / "d").mkdir()
    os.mkfifo(tmp_path / "d" / "slice.dcm")
    message = _in_thread(lambda: _refused(tmp_path / "d", "no regular files"))
    assert "slice.dcm (a named pipe (FIFO))" in message


@needs_fifo
def test_a_named_pipe_in_a_batch_folder_does_not_stop_the_batch(tmp_path):
    (tmp_path / "cases" / "c1").mkdir(parents=True)
    os.mkfifo(tmp_path / "cases" / "c1" / "ct.nii.gz")  # the only "CT" of the case is a pipe
    os.mkfifo(tmp_path / "cases" / "stray.nii.gz")  # and a pipe among the cases
    result = _subprocess(["batch", tmp_path / "cases", "-o", tmp_path / "out", "--progress", "none"])
    assert result.returncode in (1, 2), result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()


@needs_fifo
def test_a_named_pipe_given_to_batch_is_refused(tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe")
    code, err = _in_thread(lambda: _cli(["batch", tmp_path / "pipe", "-o", tmp_path / "out"], capsys))
    assert code == 2 and "named pipe" in err and len(err.splitlines()) == 1, err


def test_a_device_is_refused(capsys):
    code, err = _cli(["segment", "/dev/null", "-o", "/nonexistent-iacseg-out/x"], capsys)
    assert code == 2 and "/dev/null is a device" in err, err


def test_a_socket_inside_a_dicom_folder_is_skipped(tmp_path):
    _series(tmp_path / "d")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(tmp_path / "d" / "sock"))
        vol = _in_thread(lambda: read_ct(tmp_path / "d"))
    finally:
        sock.close()
    assert any("sock (a socket)" in w for w in vol.metadata["warnings"])


def test_a_symlink_loop_is_called_a_symlink_loop(tmp_path, capsys):
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    code, err = _cli(["segment", tmp_path / "a", "-o", tmp_path / "out"], capsys)
    assert code == 2 and "symlink loop" in err and "does not exist" not in err, err


def test_a_dangling_symlink_names_its_target(tmp_path):
    os.symlink(tmp_path / "gone.nii.gz", tmp_path / "ct.nii.gz")
    _refused(tmp_path / "ct.nii.gz", "is a symbolic link to")


def test_a_folder_symlink_loop_inside_a_dicom_folder_is_read_once(tmp_path):
    _series(tmp_path / "d" / "series")
    os.symlink(tmp_path / "d", tmp_path / "d" / "series" / "up")  # d/series/up → d: a loop
    vol = _in_thread(lambda: read_ct(tmp_path / "d"))
    assert vol.shape == (10, 32, 32)


# ---------------------------------------------------------------- file names that are not UTF-8

def test_a_nifti_whose_name_is_not_utf8_is_read_without_aborting(tmp_path):
    folder = os.fsencode(tmp_path) + b"/ordner-\xe4"  # Latin-1 "ä": not valid UTF-8
    os.mkdir(folder)
    write_image(tmp_path / "ct.nii.gz", _ct_like(), GRID)
    os.rename(tmp_path / "ct.nii.gz", folder + b"/ct-\xff.nii.gz")
    code = ("import os, sys; from iacseg.io import read_ct; "
            "v = read_ct(os.fsdecode(sys.argv[1])); print(v.shape)")
    result = subprocess.run([sys.executable.encode(), b"-c", code.encode(), folder + b"/ct-\xff.nii.gz"],
                            capture_output=True, timeout=TIMEOUT_S, env=ENV)
    assert result.returncode == 0, result.stderr.decode(errors="replace")  # an abort is −6
    assert result.stdout.decode().strip() == "(10, 32, 32)"


def test_a_bad_image_whose_name_is_not_utf8_gives_one_clear_line(tmp_path):
    hu = _ct_like()
    hu[2, 10, 10] = np.nan
    write_image(tmp_path / "x.nii.gz", hu, GRID)
    bad = os.fsencode(tmp_path) + b"/scan-\xff.nii.gz"
    os.rename(tmp_path / "x.nii.gz", bad)
    result = _subprocess(["segment", bad, "-o", tmp_path / "out", "--progress", "none"])
    err = result.stderr.decode().strip()
    assert result.returncode == 2, err
    assert len(err.splitlines()) == 1 and "NaN or infinite" in err and "scan-\\xff.nii.gz" in err, err


def test_dicom_files_whose_names_are_not_utf8_are_read(tmp_path):
    paths = _series(tmp_path / "d")
    for n, p in enumerate(paths):
        os.rename(p, os.fsencode(p.parent) + b"/IM\xe9%03d" % n)
    assert read_ct(tmp_path / "d").shape == (10, 32, 32)


# ---------------------------------------------------------------- DICOM slices: unreadable, missing, gaps

def test_a_truncated_slice_is_named_and_the_series_refused(tmp_path):
    paths = _series(tmp_path / "d")
    data = paths[4].read_bytes()
    paths[4].write_bytes(data[: len(data) - 700])  # cut inside the pixel data
    message = _refused(tmp_path / "d", "could not be read")
    assert paths[4].name in message and "allow gaps" in message and "--" not in message  # the CLI adds the flag
    assert "gdcmconv" not in message  # an uncompressed file: decompressing would not help


def test_a_truncated_slice_with_allow_gaps_is_interpolated_and_named_in_a_warning(tmp_path):
    paths = _series(tmp_path / "d")
    data = paths[4].read_bytes()
    paths[4].write_bytes(data[: len(data) - 700])
    vol = read_ct(tmp_path / "d", allow_gaps=True)
    assert vol.shape == (10, 32, 32)
    text = " | ".join(vol.metadata["warnings"])
    assert paths[4].name in text and str(tmp_path) not in text  # the file's name only, never its folder


def test_a_slice_with_a_damaged_header_is_named_and_the_gap_refused(tmp_path):
    paths = _series(tmp_path / "d")
    paths[5].write_bytes(paths[5].read_bytes()[:300])  # cut inside the header: not even its series is known
    message = _refused(tmp_path / "d", "missing slices")
    assert "allow gaps" in message
    vol = read_ct(tmp_path / "d", allow_gaps=True)
    assert any(paths[5].name in w and "could not be read" in w for w in vol.metadata["warnings"])


def test_a_gap_in_the_slice_positions_is_refused(tmp_path, capsys):
    _series(tmp_path / "d", z=[0, 2, 4, 6, 10, 12, 14, 16, 18])  # the slice at 8 mm is missing
    code, err = _cli(["segment", tmp_path / "d", "-o", tmp_path / "out"], capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "missing slices" in err and "4 mm" in err and err.startswith("iacseg: error (--allow-gaps): ")
    assert not (tmp_path / "out").exists()


def test_a_gap_with_allow_gaps_is_interpolated_with_a_warning(tmp_path):
    _series(tmp_path / "d", z=[0, 2, 4, 6, 10, 12, 14, 16, 18])
    vol = read_ct(tmp_path / "d", allow_gaps=True)
    assert vol.shape[0] == 10 and vol.grid.spacing[2] == pytest.approx(2.0)
    assert any("missing slices" in w and "interpolation" in w for w in vol.metadata["warnings"])


def test_allow_gaps_is_an_option_of_segment_and_batch():
    from iacseg.cli.main import build_parser

    parser = build_parser()
    assert parser.parse_args(["segment", "ct", "-o", "o", "--allow-gaps"]).allow_gaps
    assert parser.parse_args(["batch", "ct", "-o", "o", "--allow-gaps"]).allow_gaps
    assert not parser.parse_args(["segment", "ct", "-o", "o"]).allow_gaps


def test_uneven_but_complete_spacing_zones_are_not_missing_slices(tmp_path):
    z = [0, 2, 4, 6, 8, 10, 15, 20, 25, 30, 35]  # 2 mm through the skull base, 5 mm above (one protocol)
    _series(tmp_path / "d", z=z)
    vol = read_ct(tmp_path / "d")
    assert not any("missing" in w for w in vol.metadata["warnings"])
    assert any("uneven slice spacing" in c for c in vol.metadata["corrections"])


def test_the_real_ge_series_with_4_and_7_mm_zones_is_not_refused():
    vol = read_ct(Path(__file__).parent / "data" / "dcm_qa_ct_GE")
    assert not any("missing" in w for w in vol.metadata["warnings"])


@pytest.mark.parametrize("gaps, missing", [
    ([2, 2, 2, 2, 2], []),
    ([2, 2, 4, 2, 2], [2]),                            # one slice missing
    ([2, 2, 6, 2, 2], [2]),                            # two adjacent slices missing
    ([2, 4, 2, 4, 2, 2], [1, 3]),                      # two separate ones
    ([4] * 13 + [1.08] + [7] * 13, []),                # GE: 4 mm zone, overlap, 7 mm zone
    ([2, 2, 2, 5, 5, 5, 5], []),                       # 2 mm then 5 mm zone
    ([5, 5, 5, 10, 5, 5], [3]),
    ([10, 2, 2, 2], [0]),                              # at the first gap
    ([3.0, 3.02, 2.98, 3.0], []),                      # rounding
])
def test_what_counts_as_missing_slices(gaps, missing):
    assert missing_slice_gaps(np.asarray(gaps, float)) == missing


def test_header_only_dicom_files_are_not_told_to_decompress(tmp_path):
    import pydicom

    for p in _series(tmp_path / "d"):
        ds = pydicom.dcmread(p)
        del ds.PixelData
        ds.save_as(p)
    message = _refused(tmp_path / "d", "no pixel data")
    assert "gdcmconv" not in message and "decompress" not in message


def test_a_dicomdir_only_folder_is_not_called_empty(tmp_path):
    (tmp_path / "disc").mkdir()
    (tmp_path / "disc" / "DICOMDIR").write_bytes(b"\x00" * 128 + b"DICM" + b"\x00" * 64)
    message = _refused(tmp_path / "disc", "only a DICOMDIR index")
    assert "empty" not in message


def test_many_images_that_do_not_stack_are_not_called_a_single_slice(tmp_path):
    for n in range(6):  # six images of one series, each at another orientation
        a = np.radians(12.0 * n)
        [path] = _series(tmp_path / "d", z=[2.0 * n], col=(0, np.cos(a), np.sin(a)))
        path.rename(path.with_name(f"img{n}.dcm"))
    message = _refused(tmp_path / "d", "6 images")
    assert "single slice" not in message


def test_orientation_rounding_noise_does_not_split_a_series(tmp_path):
    for n, jitter in enumerate([0.0, 4.9e-4, 5.1e-4, -3e-4, 2e-4, 0.0, 4e-4, 1e-4]):
        [path] = _series(tmp_path / "d", z=[2.0 * n], col=(0, np.cos(jitter), np.sin(jitter)))
        path.rename(path.with_name(f"img{n}.dcm"))
    assert read_ct(tmp_path / "d").shape[0] == 8


# ---------------------------------------------------------------- HU: slope 0, absurd and non-finite values

def test_rescale_slope_zero_is_refused(tmp_path, capsys):
    import pydicom

    paths = _series(tmp_path / "d")
    ds = pydicom.dcmread(paths[3])
    ds.RescaleSlope = "0"
    ds.save_as(paths[3])
    code, err = _cli(["segment", tmp_path / "d", "-o", tmp_path / "out"], capsys)
    assert code == 2 and "RescaleSlope 0" in err and paths[3].name in err, err


def test_absurd_hu_from_a_huge_slope_is_refused(tmp_path):
    import pydicom

    for p in _series(tmp_path / "d"):
        ds = pydicom.dcmread(p)
        ds.RescaleSlope = "1000000"
        ds.save_as(p)
    _refused(tmp_path / "d", "far outside the Hounsfield units")


def test_voxels_of_1e30_hu_are_refused(tmp_path, capsys):
    hu = _ct_like()
    hu[3, 12, 12] = 1e30
    write_image(tmp_path / "big.nii.gz", hu, GRID)
    code, err = _cli(["segment", tmp_path / "big.nii.gz", "-o", tmp_path / "out"], capsys)
    assert code == 2 and "far outside the Hounsfield units" in err and len(err.splitlines()) == 1, err


def test_a_very_negative_voxel_is_not_hidden_as_padding(tmp_path):
    hu = _ct_like()
    hu[3, 12, 12] = -1e12
    write_image(tmp_path / "neg.nii.gz", hu, GRID)
    _refused(tmp_path / "neg.nii.gz", "far outside")


# ---------------------------------------------------------------- geometry: NaN spacing, skewed/singular grids

def _nifti_with_pixdim(path: Path, pixdim: tuple[float, float, float]) -> Path:
    write_image(path, _ct_like().astype(np.int16), GRID, compress=False)
    raw = bytearray(path.read_bytes())
    struct.pack_into("<3f", raw, 80, *pixdim)
    path.write_bytes(bytes(raw))
    return path


def test_nan_spacing_in_a_nifti_is_called_nan(tmp_path):
    message = _refused(_nifti_with_pixdim(tmp_path / "nan.nii", (np.nan, np.nan, np.nan)), "NaN × NaN × NaN")
    assert "0 × 0 × 0" not in message and "1 × 1 × 1" not in message


def _mha(path: Path, replace: tuple[bytes, bytes]) -> Path:
    sitk.WriteImage(sitk.GetImageFromArray(_ct_like().astype(np.int16)), str(path))
    raw = path.read_bytes()
    assert replace[0] in raw
    path.write_bytes(raw.replace(*replace, 1))
    return path


def test_nan_spacing_in_a_metaimage_is_not_shown_as_zero(tmp_path, capsys):
    path = _mha(tmp_path / "nan.mha", (b"ElementSpacing = 1 1 1", b"ElementSpacing = nan nan nan"))
    code, err = _cli(["segment", path, "-o", tmp_path / "out"], capsys)
    assert code == 2 and "not a finite number" in err and "0 × 0 × 0" not in err, err


def test_a_skewed_direction_matrix_is_refused(tmp_path, capsys):
    path = _mha(tmp_path / "skew.mha", (b"TransformMatrix = 1 0 0 0 1 0 0 0 1",
                                        b"TransformMatrix = 1 0 0 0.2588 0.9659 0 0 0 1"))
    code, err = _cli(["segment", path, "-o", tmp_path / "out"], capsys)
    assert code == 2 and "not perpendicular" in err and "75.0°" in err, err
    assert not (tmp_path / "out").exists()


def test_a_singular_direction_matrix_is_refused(tmp_path):
    path = _mha(tmp_path / "flat.mha", (b"TransformMatrix = 1 0 0 0 1 0 0 0 1", b"TransformMatrix = 1 0 0 1 0 0 0 0 1"))
    _refused(path, "singular")


def test_a_skewed_dicom_orientation_is_refused(tmp_path):
    a = np.radians(80.0)
    _series(tmp_path / "d", col=(np.cos(a), np.sin(a), 0.0))  # row and column 80° apart
    _refused(tmp_path / "d", "80.0° instead of 90°")


def test_an_orthogonal_oblique_grid_is_still_read(tmp_path):
    a = np.radians(15.0)
    d = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    vol = read_ct(write_image(tmp_path / "oblique.nii.gz", _ct_like(), Grid(GRID.shape, GRID.spacing, GRID.origin,
                                                                            tuple(d.ravel()))))
    assert np.allclose(vol.grid.direction_matrix, d, atol=1e-6)


# ---------------------------------------------------------------- numeric options

@pytest.mark.parametrize("cutpoints", ["nan,inf", "30,nan", "100,30", "0,10", "-5,10", "30,30", "10,20,30"])
def test_bad_risk_cutpoints_are_refused(cutpoints, tmp_path, capsys):
    code, err = _cli(["segment", tmp_path / "x.nii.gz", "-o", tmp_path / "o", f"--risk-cutpoints={cutpoints}"], capsys)
    assert code == 2 and "--risk-cutpoints" in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("threshold", ["nan", "inf", "0", "1", "1.5", "-0.2"])
def test_thresholds_outside_zero_one_are_refused(threshold, tmp_path, capsys):
    code, err = _cli(["segment", tmp_path / "x.nii.gz", "-o", tmp_path / "o", "--threshold", threshold], capsys)
    assert code == 2 and err.startswith("iacseg: error (--threshold): threshold "), err


@pytest.mark.parametrize("args, option", [
    (["phantom", "-o", "P", "--seed", "1", "--slice-mm", "nan"], "--slice-mm"),
    (["phantom", "-o", "P", "--seed", "1", "--tilt", "inf"], "--tilt"),
    (["phantom", "-o", "P", "--seed", "1", "--count", "0"], "--count"),
    (["phantom", "-o", "P", "--seed", "1", "--slice-mm", "-2"], "--slice-mm"),
])
def test_non_finite_or_non_positive_numbers_are_refused(args, option, tmp_path, capsys):
    args = [str(tmp_path / "p") if a == "P" else a for a in args]
    code, err = _cli(args, capsys)
    assert code == 2 and option in err, err
    assert not (tmp_path / "p").exists()


def _landmarks(z: float) -> dict[str, Landmark]:
    return {name: Landmark(name, z, (0.0, 0.0, z)) for name in ("L_carotid_canal", "R_carotid_canal")}


@pytest.mark.parametrize("z, ok", [(10.0, True), (-40.0, True), (1e300, False), (float("nan"), False),
                                   (-500.0, False)])
def test_relabel_landmark_heights_must_be_finite_and_near_the_volume(z, ok):
    grid = Grid((40, 32, 32), (0.5, 0.5, 2.0), (0.0, 0.0, -20.0))  # z from −20 to 58 mm
    if ok:
        check_landmark_heights(_landmarks(z), grid)
    else:
        with pytest.raises(InputError, match="landmark L_carotid_canal"):
            check_landmark_heights(_landmarks(z), grid)


# ---------------------------------------------------------------- library warnings go to the result, not the terminal

def test_library_warnings_are_collected_not_printed(capfd):
    with capture_library_warnings() as collected:
        warnings.warn("Invalid value for VR PN: 'DOE^JANE'", UserWarning)
        np.float32(3e38) * np.float32(10)  # numpy overflow RuntimeWarning
    assert capfd.readouterr().err == ""
    text = " | ".join(collected)
    assert "Invalid value for VR PN" in text and "overflow" in text
    assert "DOE^JANE" not in text  # quoted values (DICOM free text) never copied


def test_pydicom_warnings_while_reading_land_in_the_report_warnings(tmp_path, capfd):
    import pydicom

    paths = _series(tmp_path / "d")
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.PixelData = ds.PixelData + b"\0" * 64  # pydicom warns about (and drops) the excess padding
        ds.save_as(p)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may escape read_ct as a warning
        vol = read_ct(tmp_path / "d")
    assert capfd.readouterr().err == ""
    assert vol.shape == (10, 32, 32)
    assert any(w.startswith("pydicom: ") and "excess padding" in w and "(×10)" in w
               for w in vol.metadata["warnings"]), vol.metadata["warnings"]


def test_a_refusal_from_a_dicom_series_is_one_line_and_exit_2(tmp_path, capsys):
    import pydicom

    paths = _series(tmp_path / "d")
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.RescaleSlope = "0"
        ds.save_as(p)
    code, err = _cli(["segment", tmp_path / "d", "-o", tmp_path / "out"], capsys)
    assert code == 2 and err.startswith("iacseg: error: ") and len(err.splitlines()) == 1, err
    assert json.dumps(err)  # printable


def _nifti_sform(path: Path, srow_x: tuple[float, float, float, float], qform: bool) -> Path:
    write_image(path, _ct_like(), GRID, compress=False)
    raw = bytearray(path.read_bytes())
    srow = list(struct.unpack_from("<12f", raw, 280))
    srow[:4] = srow_x
    struct.pack_into("<12f", raw, 280, *srow)
    struct.pack_into("<hh", raw, 252, 1 if qform else 0, 1)  # qform_code, sform_code
    path.write_bytes(bytes(raw))
    return path


def test_a_nifti_with_only_a_skewed_sform_is_refused_as_skewed_not_damaged(tmp_path):
    path = _nifti_sform(tmp_path / "skew.nii", (-0.5, 0.3, 0.0, 0.0), qform=False)
    message = _refused(path, "not an orthogonal grid")
    assert "damaged" not in message


def test_itk_warnings_go_into_the_warnings_with_the_file_name_only(tmp_path, capfd):
    path = _nifti_sform(tmp_path / "scaled.nii", (-1.3 * 0.5, 0.0, 0.0, 0.0), qform=True)  # ITK falls back to qform
    vol = read_ct(path)
    assert capfd.readouterr().err == ""
    assert any(w.startswith("ITK: scaled.nii has unexpected scales in sform") for w in vol.metadata["warnings"])
    assert not any(str(tmp_path) in w for w in vol.metadata["warnings"])
