"""The inputs of the hostile-input suite (`test_hostile_suite.py`), generated small: tiny CTs as NIfTI/DICOM
(every DICOM slice carries a patient identity and free text), damaged files, pipes and sockets, users' folders,
stores with damaged ledgers, damaged model folders — and the builders that lay them out under a test's tmp folder
(``tmp/"in"`` inputs, ``tmp/"keep"`` a user's things, ``tmp/"out"`` where a command may write) and return argv."""

from __future__ import annotations

import json
import os
import socket
import struct
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import SimpleITK as sitk

from iacseg.cli.main import main
from iacseg.io.dicom_write import write_ct_series
from iacseg.core.grid import Grid
from iacseg.io.writers import write_image

IDENTITY = {"PatientName": "NG^LI", "PatientID": "ZQ-4471923", "SeriesDescription": "HEAD DOE JANE MRN12345",
            "StudyDescription": "nativ Herrn Quixfeld", "InstitutionName": "Klinikum Woerthsee"}
LEAK_WORDS = ("NG^LI", "ZQ-4471923", "DOE JANE", "MRN12345", "Quixfeld", "Woerthsee")
TINY = Grid((10, 32, 32), (0.7, 0.7, 2.0), (-11.0, -11.0, 0.0))


# --------------------------------------------------------------------------------------------------- inputs
def tiny_hu(n: int = 10, size: int = 32) -> np.ndarray:
    hu = np.full((n, size, size), -1000.0, np.float32)
    hu[:, 6:-6, 6:-6] = 40.0
    return hu


def nifti(path: Path, hu: np.ndarray | None = None, grid: Grid = TINY) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_image(path, (tiny_hu() if hu is None else hu).astype(np.int16), grid)


def dicom(folder: Path, n: int = 10, z: np.ndarray | None = None, row=(1, 0, 0), col=(0, 1, 0),
           hu: np.ndarray | None = None, edit: Callable | None = None, **kw) -> list[Path]:
    """A small CT series carrying a patient identity and free text; ``edit(ds, index)`` changes each slice."""
    import pydicom

    z = np.arange(n) * 2.0 if z is None else np.asarray(z, float)
    positions = np.column_stack([np.zeros(len(z)), np.zeros(len(z)), z])
    hu = tiny_hu(len(z)) if hu is None else hu
    paths = write_ct_series(folder, hu, positions, row, col, (0.7, 0.7), slice_thickness_mm=2.0, **kw)
    for s, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        for keyword, value in IDENTITY.items():
            setattr(ds, keyword, value)
        if edit is not None:
            edit(ds, s)
        ds.save_as(path)
    return paths


def mha_nan_spacing(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(tiny_hu().astype(np.int16)), str(path))
    raw = path.read_bytes()
    assert b"ElementSpacing = 1 1 1" in raw
    path.write_bytes(raw.replace(b"ElementSpacing = 1 1 1", b"ElementSpacing = nan nan nan", 1))
    return path


def nifti_skewed(path: Path) -> Path:
    """A NIfTI whose sform has columns at ~75° (a non-orthogonal grid), written byte by byte."""
    nifti(path)
    raw = bytearray(path.read_bytes())
    # nifti-1: qform_code (int16 @252), sform_code (@254), srow_x/y/z (float32 ×4 @280/296/312)
    struct.pack_into("<hh", raw, 252, 0, 1)
    struct.pack_into("<4f", raw, 280, 0.7, 0.25, 0.0, 0.0)
    struct.pack_into("<4f", raw, 296, 0.0, 0.7, 0.0, 0.0)
    struct.pack_into("<4f", raw, 312, 0.0, 0.0, 2.0, 0.0)
    path.write_bytes(bytes(raw))
    return path


def head_like(n: int = 40, size: int = 96, air: bool = False, body: bool = False) -> np.ndarray:
    """Not a head: all air, noise, or a body-sized soft-tissue ellipse without a skull."""
    if air:
        return np.full((n, size, size), -1000.0, np.float32)
    if body:
        yy, xx = np.mgrid[:size, :size]
        inside = ((yy - size / 2) / (size * 0.3)) ** 2 + ((xx - size / 2) / (size * 0.45)) ** 2 <= 1
        hu = np.where(inside, 40.0, -1000.0).astype(np.float32)
        return np.repeat(hu[None], n, axis=0)
    return np.random.default_rng(0).uniform(-1000, 2000, (n, size, size)).astype(np.float32)


def seg(ct: str | Path, out: str | Path, *extra: str) -> list:
    return ["segment", str(ct), "-o", str(out), "--progress", "none", "--device", "cpu", *extra]


def ct(t: Path) -> Path:
    return nifti(t / "in" / "case" / "ct.nii.gz")


def batch_folder(t: Path) -> Path:
    nifti(t / "in" / "cases" / "a.nii.gz")
    nifti(t / "in" / "cases" / "b.nii.gz")
    return t / "in" / "cases"


def user_folder(t: Path) -> Path:
    folder = t / "keep" / "results"
    folder.mkdir(parents=True)
    (folder / "my_notes.txt").write_text("a reader's notes")
    (folder / "report.json").write_text("{}")
    return folder


def fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def socket_in(folder: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "scanner.sock"))
    sock.close()


def landmarks_case(t: Path, landmarks_text: str | None = None, z: float | None = None) -> list:
    """A cheap engine result (from the store fixtures) plus a landmarks file for ``relabel``."""
    from store_fixtures import small_case, small_landmarks
    from iacseg.outputs.markups import write_landmarks

    ct, out = small_case(t / "in" / "case")
    path = t / "in" / "moved.mrk.json"
    if landmarks_text is not None:
        path.write_text(landmarks_text)
    else:
        lms = small_landmarks()
        for lm in lms.values():
            lm.z_mm = z
            lm.position = (lm.position[0], lm.position[1], z)
        write_landmarks(path, list(lms.values()))
    return ["relabel", "--mask", str(out / "calcifications.nii.gz"), "--landmarks", str(path), "--report",
            str(out / "report.json"), "--ct", str(ct), "-o", str(t / "out" / "relabelled")]


def store_case(t: Path) -> tuple[Path, Path, Path]:
    from store_fixtures import small_case

    store = t / "out" / "store"
    assert main(["store", "init", str(store)]) == 0
    ct, out = small_case(t / "in" / "case")
    return store, ct, out


def damaged_ledger(t: Path) -> list:
    store, ct, out = store_case(t)
    assert main(["store", "add", str(store), "--image", str(ct), "--engine-output", str(out), "--case-id", "one"]) == 0
    ct2, out2 = ct, out
    ledger = store / "ledger.jsonl"
    lines = ledger.read_text().splitlines(keepends=True)
    assert len(lines) >= 2
    lines[0] = lines[0].replace('"', "'", 2)  # a damaged middle line: no longer JSON
    ledger.write_text("".join(lines))
    return ["store", "add", str(store), "--image", str(ct2), "--engine-output", str(out2), "--case-id", "two"]


def truncated_ledger(t: Path) -> list:
    """A ledger cut short by its last whole line (every remaining line still chains): verify must notice."""
    store, ct, out = store_case(t)
    assert main(["store", "add", str(store), "--image", str(ct), "--engine-output", str(out), "--case-id", "one"]) == 0
    ledger = store / "ledger.jsonl"
    lines = ledger.read_text().splitlines(keepends=True)
    ledger.write_text("".join(lines[:-1]))
    return ["store", "verify", str(store)]


def dicom_store_add(t: Path) -> list:
    """A DICOM case with an identity goes into a store: nothing of the identity may be written."""
    from store_fixtures import small_landmarks, write_engine_output
    from iacseg.io import read_ct

    folder = t / "in" / "dicom"
    dicom(folder)
    vol = read_ct(folder)
    labels = np.zeros(vol.grid.shape, np.uint8)
    out = write_engine_output(t / "in" / "result", labels, vol.grid, small_landmarks(),
                              input_path=str(folder), warnings=["series HEAD DOE JANE MRN12345 read"])
    store = t / "out" / "store"
    assert main(["store", "init", str(store)]) == 0
    return ["store", "add", str(store), "--image", str(folder), "--engine-output", str(out)]


def chdir(path_of: Callable[[Path], Path]):
    def setup(mp: pytest.MonkeyPatch, t: Path) -> None:
        mp.chdir(path_of(t))
    return setup


def home(mp: pytest.MonkeyPatch, t: Path) -> None:
    (t / "keep" / "home").mkdir(parents=True, exist_ok=True)
    mp.setenv("HOME", str(t / "keep" / "home"))


def full_disk(mp: pytest.MonkeyPatch, t: Path) -> None:
    import shutil as _shutil

    from iacseg.core import folder_guard as safety

    mp.setattr(safety.shutil, "disk_usage", lambda path: _shutil._ntuple_diskusage(10**9, 10**9 - 4096, 4096))


def not_utf8(t: Path, name: bytes) -> Path:
    folder = t / "in"
    folder.mkdir(parents=True, exist_ok=True)
    path = Path(os.fsdecode(os.path.join(os.fsencode(folder), name)))
    return path


def not_utf8_nifti(t: Path) -> list:
    path = not_utf8(t, b"ct_\xff\xfe.nii.gz")
    path.write_bytes(b"\x1f\x8b\x08 not really gzip")
    return seg(path, t / "out" / "r")


def not_utf8_dicom(t: Path) -> list:
    folder = not_utf8(t, b"dicom_\xe9\xff")
    dicom(folder)
    return seg(folder, t / "out" / "r")


def forty_nine_unstackable(t: Path) -> list:
    """49 images of one series, each at another orientation (3.5° apart): they do not stack into a volume."""
    folder = t / "in" / "dicom"
    for n in range(49):
        a = np.radians(3.5 * n)
        [path] = dicom(folder, z=[2.0 * n], col=(0, np.cos(a), np.sin(a)))
        path.rename(path.with_name(f"img{n:02d}.dcm"))
    return seg(folder, t / "out" / "r")


def header_only(t: Path) -> list:
    def edit(ds, s):
        del ds.PixelData
    dicom(t / "in" / "dicom", edit=edit)
    return seg(t / "in" / "dicom", t / "out" / "r")


def dicomdir_only(t: Path) -> list:
    from pydicom.dataset import Dataset, FileMetaDataset

    folder = t / "in" / "cd"
    folder.mkdir(parents=True)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.FileSetID = "DISC"
    ds.DirectoryRecordSequence = []
    ds.preamble = b"\0" * 128
    ds.save_as(folder / "DICOMDIR", enforce_file_format=True)
    return seg(folder, t / "out" / "r")


def truncated_slice(t: Path) -> list:
    paths = dicom(t / "in" / "dicom")
    paths[4].write_bytes(paths[4].read_bytes()[:400])
    return seg(t / "in" / "dicom", t / "out" / "r")


def slope_zero(t: Path) -> list:
    dicom(t / "in" / "dicom", edit=lambda ds, s: setattr(ds, "RescaleSlope", "0"))
    return seg(t / "in" / "dicom", t / "out" / "r")


def mr(t: Path) -> list:
    dicom(t / "in" / "dicom", modality="MR")
    return seg(t / "in" / "dicom", t / "out" / "r")


def localizer(t: Path) -> list:
    dicom(t / "in" / "dicom", n=2, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    return seg(t / "in" / "dicom", t / "out" / "r")


def two_series_not_head(t: Path) -> list:
    dicom(t / "in" / "dicom", uid_seed=1, series_description="a")
    dicom(t / "in" / "dicom", n=4, uid_seed=2, series_description="b")
    return seg(t / "in" / "dicom", t / "out" / "r")


def symlink_loop(t: Path) -> list:
    (t / "in").mkdir()
    os.symlink(t / "in" / "b", t / "in" / "a")
    os.symlink(t / "in" / "a", t / "in" / "b")
    return seg(t / "in" / "a", t / "out" / "r")


def batch_user_case_folder(t: Path) -> list:
    cases = batch_folder(t)
    (t / "out" / "a").mkdir(parents=True)
    (t / "out" / "a" / "mine.txt").write_text("not IACSeg's")
    return ["batch", str(cases), "-o", str(t / "out"), "--progress", "none", "--device", "cpu"]


def symlink_out(t: Path) -> list:
    target = user_folder(t)
    (t / "out").mkdir()
    os.symlink(target, t / "out" / "link")
    return seg(ct(t), t / "out" / "link", "--overwrite")


def damaged_model(kind: str, damage: Callable[[Path], None]) -> Callable[[Path], list]:
    """A copy of the shipped ``kind`` model, damaged, given to ``segment`` with a valid CT."""
    def build(t: Path) -> list:
        import shutil

        from iacseg.models.defaults import resolve_model

        folder = t / "in" / f"model-{kind}"
        shutil.copytree(resolve_model(None, kind), folder)
        damage(folder)
        option = "--model" if kind == "segmenter" else "--landmark-model"
        return seg(ct(t), t / "out" / "r", option, str(folder))
    return build


def config_edit(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        edit(config)
        (folder / "config.json").write_text(json.dumps(config))
    return damage


def weights_bytes(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(change((folder / "model.safetensors").read_bytes()))
    return damage


def first_architecture_int(config: dict, value: int) -> None:
    """Set the network's input channel count to ``value``."""
    params = config["architecture"]["params"]
    assert isinstance(params.get("in_channels"), int), params
    params["in_channels"] = value


def batch_with_model(t: Path) -> list:
    args = damaged_model("segmenter", weights_bytes(lambda b: b[: len(b) // 3]))(t)
    cases = batch_folder(t)
    return ["batch", str(cases), "-o", str(t / "out" / "b"), "--progress", "none", "--model", args[-1]]


def model_output_in_user_folder(command: list) -> Callable[[Path], list]:
    return lambda t: [*command, "-o", str(user_folder(t))]


def relabel_model_free(t: Path) -> list:
    return landmarks_case(t, z=10.0)


def nifti_float(path: Path, value: float) -> Path:
    hu = tiny_hu()
    hu[5, 16, 16] = value
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing(TINY.spacing)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def huge_dims(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    struct.pack_into("<8h", raw, 40, 3, 32000, 32000, 32000, 1, 1, 1, 1)  # nifti-1 dim[]
    path.write_bytes(bytes(raw))
