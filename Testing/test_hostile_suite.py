"""The hostile-input suite: every class of bad or unusual input a hostile tester tried, generated here and small,
run through the command line, and held to the same guarantees (README "Bad input"):

* the expected exit code — 2 for a refusal, with **exactly one line** ``iacseg: error: …`` that names the reason
  (the case's key words) and never a wrong one ("landmarks out of order" when the user placed none, "single
  slice" for 49 images, "decompress" for files without pixel data);
* never an internal error or a traceback, never a hang (each case runs under a time limit), never an abort;
* **nothing lost**: every file that existed before the command exists afterwards with the same bytes;
  **nothing left behind** by a refusal: no new file anywhere;
* **no identity leaks**: every DICOM input carries a patient identity and free text, and neither the terminal
  nor any text file written may hold it.

Classes (the issue's headings): ``deletes-data``, ``hangs``, ``crashes``, ``leaks``, ``silently-wrong``,
``internal-error``, ``store``, ``messages``. More specific tests of each class live in test_output_safety.py,
test_input_safety.py, test_deidentification.py, test_store_ledger_integrity.py, test_model_folder_refusals.py
and test_input_messages.py; this suite checks the shared guarantees over all of them at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import SimpleITK as sitk

from iacseg.cli.main import main
from iacseg.io.dicom_write import write_ct_series
from iacseg.io.volume import Grid
from iacseg.io.writers import write_image

TIMEOUT_S = 120
IDENTITY = {"PatientName": "NG^LI", "PatientID": "ZQ-4471923", "SeriesDescription": "HEAD DOE JANE MRN12345",
            "StudyDescription": "nativ Herrn Quixfeld", "InstitutionName": "Klinikum Woerthsee"}
LEAK_WORDS = ("NG^LI", "ZQ-4471923", "DOE JANE", "MRN12345", "Quixfeld", "Woerthsee")
ALWAYS_WRONG = ("Traceback", "internal error", "--debug")
TINY = Grid((10, 32, 32), (0.7, 0.7, 2.0), (-11.0, -11.0, 0.0))


# --------------------------------------------------------------------------------------------------- inputs
def _tiny_hu(n: int = 10, size: int = 32) -> np.ndarray:
    hu = np.full((n, size, size), -1000.0, np.float32)
    hu[:, 6:-6, 6:-6] = 40.0
    return hu


def _nifti(path: Path, hu: np.ndarray | None = None, grid: Grid = TINY) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_image(path, (_tiny_hu() if hu is None else hu).astype(np.int16), grid)


def _dicom(folder: Path, n: int = 10, z: np.ndarray | None = None, row=(1, 0, 0), col=(0, 1, 0),
           hu: np.ndarray | None = None, edit: Callable | None = None, **kw) -> list[Path]:
    """A small CT series carrying a patient identity and free text; ``edit(ds, index)`` changes each slice."""
    import pydicom

    z = np.arange(n) * 2.0 if z is None else np.asarray(z, float)
    positions = np.column_stack([np.zeros(len(z)), np.zeros(len(z)), z])
    hu = _tiny_hu(len(z)) if hu is None else hu
    paths = write_ct_series(folder, hu, positions, row, col, (0.7, 0.7), slice_thickness_mm=2.0, **kw)
    for s, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        for keyword, value in IDENTITY.items():
            setattr(ds, keyword, value)
        if edit is not None:
            edit(ds, s)
        ds.save_as(path)
    return paths


def _mha_nan_spacing(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(_tiny_hu().astype(np.int16)), str(path))
    raw = path.read_bytes()
    assert b"ElementSpacing = 1 1 1" in raw
    path.write_bytes(raw.replace(b"ElementSpacing = 1 1 1", b"ElementSpacing = nan nan nan", 1))
    return path


def _nifti_skewed(path: Path) -> Path:
    """A NIfTI whose sform has columns at ~75° (a non-orthogonal grid), written byte by byte."""
    _nifti(path)
    raw = bytearray(path.read_bytes())
    # nifti-1: qform_code (int16 @252), sform_code (@254), srow_x/y/z (float32 ×4 @280/296/312)
    struct.pack_into("<hh", raw, 252, 0, 1)
    struct.pack_into("<4f", raw, 280, 0.7, 0.25, 0.0, 0.0)
    struct.pack_into("<4f", raw, 296, 0.0, 0.7, 0.0, 0.0)
    struct.pack_into("<4f", raw, 312, 0.0, 0.0, 2.0, 0.0)
    path.write_bytes(bytes(raw))
    return path


def _head_like(n: int = 40, size: int = 96, air: bool = False, body: bool = False) -> np.ndarray:
    """Not a head: all air, noise, or a body-sized soft-tissue ellipse without a skull."""
    if air:
        return np.full((n, size, size), -1000.0, np.float32)
    if body:
        yy, xx = np.mgrid[:size, :size]
        inside = ((yy - size / 2) / (size * 0.3)) ** 2 + ((xx - size / 2) / (size * 0.45)) ** 2 <= 1
        hu = np.where(inside, 40.0, -1000.0).astype(np.float32)
        return np.repeat(hu[None], n, axis=0)
    return np.random.default_rng(0).uniform(-1000, 2000, (n, size, size)).astype(np.float32)


# ---------------------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Hostile:
    name: str
    klass: str
    build: Callable[[Path], list]  # inputs under tmp/"in" (and tmp/"keep" for a user's things); returns argv
    codes: tuple[int, ...] = (2,)
    words: tuple[str, ...] = ()  # each must be in the refusal line (case-insensitive)
    wrong: tuple[str, ...] = ()  # none may be in anything printed
    writes: bool = False  # the command may create files (under tmp/"out" only)
    changes: tuple[str, ...] = ()  # files (relative to tmp) a successful command may rewrite (a store's ledger)
    setup: Callable[[pytest.MonkeyPatch, Path], None] | None = field(default=None, compare=False)


def seg(ct: str | Path, out: str | Path, *extra: str) -> list:
    return ["segment", str(ct), "-o", str(out), "--progress", "none", "--device", "cpu", *extra]


def _ct(t: Path) -> Path:
    return _nifti(t / "in" / "case" / "ct.nii.gz")


def _batch_folder(t: Path) -> Path:
    _nifti(t / "in" / "cases" / "a.nii.gz")
    _nifti(t / "in" / "cases" / "b.nii.gz")
    return t / "in" / "cases"


def _user_folder(t: Path) -> Path:
    folder = t / "keep" / "results"
    folder.mkdir(parents=True)
    (folder / "my_notes.txt").write_text("a reader's notes")
    (folder / "report.json").write_text("{}")
    return folder


def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def _socket_in(folder: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "scanner.sock"))
    sock.close()


def _landmarks_case(t: Path, landmarks_text: str | None = None, z: float | None = None) -> list:
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


def _store_case(t: Path) -> tuple[Path, Path, Path]:
    from store_fixtures import small_case

    store = t / "out" / "store"
    assert main(["store", "init", str(store)]) == 0
    ct, out = small_case(t / "in" / "case")
    return store, ct, out


def _damaged_ledger(t: Path) -> list:
    store, ct, out = _store_case(t)
    assert main(["store", "add", str(store), "--image", str(ct), "--engine-output", str(out), "--case-id", "one"]) == 0
    ct2, out2 = ct, out
    ledger = store / "ledger.jsonl"
    lines = ledger.read_text().splitlines(keepends=True)
    assert len(lines) >= 2
    lines[0] = lines[0].replace('"', "'", 2)  # a damaged middle line: no longer JSON
    ledger.write_text("".join(lines))
    return ["store", "add", str(store), "--image", str(ct2), "--engine-output", str(out2), "--case-id", "two"]


def _truncated_ledger(t: Path) -> list:
    """A ledger cut short by its last whole line (every remaining line still chains): verify must notice."""
    store, ct, out = _store_case(t)
    assert main(["store", "add", str(store), "--image", str(ct), "--engine-output", str(out), "--case-id", "one"]) == 0
    ledger = store / "ledger.jsonl"
    lines = ledger.read_text().splitlines(keepends=True)
    ledger.write_text("".join(lines[:-1]))
    return ["store", "verify", str(store)]


def _dicom_store_add(t: Path) -> list:
    """A DICOM case with an identity goes into a store: nothing of the identity may be written."""
    from store_fixtures import small_landmarks, write_engine_output
    from iacseg.io import read_ct

    folder = t / "in" / "dicom"
    _dicom(folder)
    vol = read_ct(folder)
    labels = np.zeros(vol.grid.shape, np.uint8)
    out = write_engine_output(t / "in" / "result", labels, vol.grid, small_landmarks(),
                              input_path=str(folder), warnings=["series HEAD DOE JANE MRN12345 read"])
    store = t / "out" / "store"
    assert main(["store", "init", str(store)]) == 0
    return ["store", "add", str(store), "--image", str(folder), "--engine-output", str(out)]


def _chdir(path_of: Callable[[Path], Path]):
    def setup(mp: pytest.MonkeyPatch, t: Path) -> None:
        mp.chdir(path_of(t))
    return setup


def _home(mp: pytest.MonkeyPatch, t: Path) -> None:
    (t / "keep" / "home").mkdir(parents=True, exist_ok=True)
    mp.setenv("HOME", str(t / "keep" / "home"))


def _full_disk(mp: pytest.MonkeyPatch, t: Path) -> None:
    import shutil as _shutil

    from iacseg.outputs import safety

    mp.setattr(safety.shutil, "disk_usage", lambda path: _shutil._ntuple_diskusage(10**9, 10**9 - 4096, 4096))


def _not_utf8(t: Path, name: bytes) -> Path:
    folder = t / "in"
    folder.mkdir(parents=True, exist_ok=True)
    path = Path(os.fsdecode(os.path.join(os.fsencode(folder), name)))
    return path


def _not_utf8_nifti(t: Path) -> list:
    path = _not_utf8(t, b"ct_\xff\xfe.nii.gz")
    path.write_bytes(b"\x1f\x8b\x08 not really gzip")
    return seg(path, t / "out" / "r")


def _not_utf8_dicom(t: Path) -> list:
    folder = _not_utf8(t, b"dicom_\xe9\xff")
    _dicom(folder)
    return seg(folder, t / "out" / "r")


def _forty_nine_unstackable(t: Path) -> list:
    """49 images of one series, each at another orientation (3.5° apart): they do not stack into a volume."""
    folder = t / "in" / "dicom"
    for n in range(49):
        a = np.radians(3.5 * n)
        [path] = _dicom(folder, z=[2.0 * n], col=(0, np.cos(a), np.sin(a)))
        path.rename(path.with_name(f"img{n:02d}.dcm"))
    return seg(folder, t / "out" / "r")


def _header_only(t: Path) -> list:
    def edit(ds, s):
        del ds.PixelData
    _dicom(t / "in" / "dicom", edit=edit)
    return seg(t / "in" / "dicom", t / "out" / "r")


def _dicomdir_only(t: Path) -> list:
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


def _truncated_slice(t: Path) -> list:
    paths = _dicom(t / "in" / "dicom")
    paths[4].write_bytes(paths[4].read_bytes()[:400])
    return seg(t / "in" / "dicom", t / "out" / "r")


def _slope_zero(t: Path) -> list:
    _dicom(t / "in" / "dicom", edit=lambda ds, s: setattr(ds, "RescaleSlope", "0"))
    return seg(t / "in" / "dicom", t / "out" / "r")


def _mr(t: Path) -> list:
    _dicom(t / "in" / "dicom", modality="MR")
    return seg(t / "in" / "dicom", t / "out" / "r")


def _localizer(t: Path) -> list:
    _dicom(t / "in" / "dicom", n=2, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    return seg(t / "in" / "dicom", t / "out" / "r")


def _two_series_not_head(t: Path) -> list:
    _dicom(t / "in" / "dicom", uid_seed=1, series_description="a")
    _dicom(t / "in" / "dicom", n=4, uid_seed=2, series_description="b")
    return seg(t / "in" / "dicom", t / "out" / "r")


def _symlink_loop(t: Path) -> list:
    (t / "in").mkdir()
    os.symlink(t / "in" / "b", t / "in" / "a")
    os.symlink(t / "in" / "a", t / "in" / "b")
    return seg(t / "in" / "a", t / "out" / "r")


def _batch_user_case_folder(t: Path) -> list:
    cases = _batch_folder(t)
    (t / "out" / "a").mkdir(parents=True)
    (t / "out" / "a" / "mine.txt").write_text("not IACSeg's")
    return ["batch", str(cases), "-o", str(t / "out"), "--progress", "none", "--device", "cpu"]


def _symlink_out(t: Path) -> list:
    target = _user_folder(t)
    (t / "out").mkdir()
    os.symlink(target, t / "out" / "link")
    return seg(_ct(t), t / "out" / "link", "--overwrite")


def _damaged_model(kind: str, damage: Callable[[Path], None]) -> Callable[[Path], list]:
    """A copy of the shipped ``kind`` model, damaged, given to ``segment`` with a valid CT."""
    def build(t: Path) -> list:
        import shutil

        from iacseg.models.registry import resolve_model

        folder = t / "in" / f"model-{kind}"
        shutil.copytree(resolve_model(None, kind), folder)
        damage(folder)
        option = "--model" if kind == "segmenter" else "--landmark-model"
        return seg(_ct(t), t / "out" / "r", option, str(folder))
    return build


def _config_edit(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        edit(config)
        (folder / "config.json").write_text(json.dumps(config))
    return damage


def _weights_bytes(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(change((folder / "model.safetensors").read_bytes()))
    return damage


def _first_architecture_int(config: dict, value: int) -> None:
    """Set the network's input channel count to ``value``."""
    params = config["architecture"]["params"]
    assert isinstance(params.get("in_channels"), int), params
    params["in_channels"] = value


def _batch_with_model(t: Path) -> list:
    args = _damaged_model("segmenter", _weights_bytes(lambda b: b[: len(b) // 3]))(t)
    cases = _batch_folder(t)
    return ["batch", str(cases), "-o", str(t / "out" / "b"), "--progress", "none", "--model", args[-1]]


def _model_output_in_user_folder(command: list) -> Callable[[Path], list]:
    return lambda t: [*command, "-o", str(_user_folder(t))]


def _relabel_model_free(t: Path) -> list:
    return _landmarks_case(t, z=10.0)


CASES: list[Hostile] = [
    # ---- deletes data: an output that is an input, a user's folder, the current/home folder, "/"
    Hostile("out-is-ct-folder-overwrite", "deletes-data", lambda t: seg(_ct(t), t / "in" / "case", "--overwrite"),
            words=("input",)),
    Hostile("out-is-ct-folder", "deletes-data", lambda t: seg(_ct(t), t / "in" / "case"), words=("input",)),
    Hostile("out-above-ct-folder", "deletes-data", lambda t: seg(_ct(t), t / "in", "--overwrite"), words=("input",)),
    Hostile("out-is-cwd", "deletes-data", lambda t: seg(_ct(t), ".", "--overwrite"), words=("current",),
            setup=_chdir(lambda t: t)),
    Hostile("out-empty-string", "deletes-data", lambda t: seg(_ct(t), "", "--overwrite")),
    Hostile("out-is-home", "deletes-data", lambda t: seg(_ct(t), t / "keep" / "home", "--overwrite"),
            words=("home",), setup=_home),
    Hostile("out-is-root", "deletes-data", lambda t: seg(_ct(t), "/", "--overwrite")),
    Hostile("out-inside-dicom-input", "deletes-data",
            lambda t: (_dicom(t / "in" / "dicom"), seg(t / "in" / "dicom", t / "in" / "dicom" / "res"))[1],
            words=("input",)),
    Hostile("out-is-user-folder-overwrite", "deletes-data", lambda t: seg(_ct(t), _user_folder(t), "--overwrite"),
            words=("not",)),
    Hostile("out-is-user-folder", "deletes-data", lambda t: seg(_ct(t), _user_folder(t)), words=("exists",)),
    Hostile("out-is-a-file", "deletes-data",
            lambda t: (_user_folder(t), seg(_ct(t), t / "keep" / "results" / "my_notes.txt", "--overwrite"))[1]),
    Hostile("out-is-a-symlink", "deletes-data", _symlink_out, words=("link",)),
    Hostile("batch-out-is-input", "deletes-data",
            lambda t: ["batch", str(_batch_folder(t)), "-o", str(t / "in" / "cases"), "--progress", "none"],
            words=("input",)),
    Hostile("batch-out-inside-input", "deletes-data",
            lambda t: ["batch", str(_batch_folder(t)), "-o", str(t / "in" / "cases" / "o"), "--progress", "none"],
            words=("input",)),
    Hostile("batch-leaves-user-case-folder", "deletes-data", _batch_user_case_folder, codes=(1,), writes=True),
    Hostile("relabel-out-is-mask-folder", "deletes-data",
            lambda t: [*_landmarks_case(t, z=10.0)[:-1], str(t / "in" / "case" / "out")], words=("input",)),
    Hostile("name-too-long", "deletes-data", lambda t: seg(_ct(t), t / "out" / ("x" * 300)), words=("long",)),
    Hostile("path-too-long", "deletes-data", lambda t: seg(_ct(t), t / "out" / "/".join(["y" * 200] * 25)),
            words=("long",)),
    Hostile("full-disk", "internal-error", lambda t: seg(_ct(t), t / "out" / "r"), words=("space",),
            setup=_full_disk),
    # ---- hangs: pipes, devices, sockets
    Hostile("fifo-as-input", "hangs", lambda t: seg(_fifo(t / "in" / "ct.nii.gz"), t / "out" / "r"),
            words=("pipe",)),
    Hostile("fifo-in-dicom-folder", "hangs",
            lambda t: (_dicom(t / "in" / "dicom"), _fifo(t / "in" / "dicom" / "IM9999"),
                       seg(t / "in" / "dicom", t / "out" / "r"))[2], codes=(0, 2), writes=True),
    Hostile("fifo-in-batch-folder", "hangs",
            lambda t: (_fifo(_batch_folder(t) / "c.nii.gz"),
                       ["batch", str(t / "in" / "cases"), "-o", str(t / "out"), "--progress", "none"])[1],
            codes=(0, 1), writes=True),
    Hostile("device-as-input", "hangs", lambda t: seg("/dev/zero", t / "out" / "r")),
    Hostile("socket-in-dicom-folder", "hangs",
            lambda t: (_dicom(t / "in" / "dicom"), _socket_in(t / "in" / "dicom"),
                       seg(t / "in" / "dicom", t / "out" / "r"))[2], codes=(0, 2), writes=True),
    # ---- crashes: names and bytes the libraries choke on
    Hostile("non-utf8-nifti-name", "crashes", _not_utf8_nifti),
    Hostile("non-utf8-dicom-folder", "crashes", _not_utf8_dicom, codes=(0, 2), writes=True),
    Hostile("text-file-as-nifti", "crashes",
            lambda t: ((t / "in").mkdir(), (t / "in" / "ct.nii.gz").write_text("hello"),
                       seg(t / "in" / "ct.nii.gz", t / "out" / "r"))[2]),
    Hostile("empty-nifti", "crashes",
            lambda t: ((t / "in").mkdir(), (t / "in" / "ct.nii").write_bytes(b""),
                       seg(t / "in" / "ct.nii", t / "out" / "r"))[2]),
    Hostile("truncated-nifti", "crashes",
            lambda t: (_nifti(t / "in" / "ct.nii"),
                       (t / "in" / "ct.nii").write_bytes((t / "in" / "ct.nii").read_bytes()[:2000]),
                       seg(t / "in" / "ct.nii", t / "out" / "r"))[2]),
    Hostile("random-bytes-dcm", "crashes",
            lambda t: ((t / "in").mkdir(), (t / "in" / "x.dcm").write_bytes(os.urandom(3000)),
                       seg(t / "in" / "x.dcm", t / "out" / "r"))[2]),
    Hostile("header-claims-huge-grid", "crashes",
            lambda t: (_nifti(t / "in" / "ct.nii"), _huge_dims(t / "in" / "ct.nii"),
                       seg(t / "in" / "ct.nii", t / "out" / "r"))[2]),
    # ---- leaks: refusals and stored copies of DICOM inputs that carry a name
    Hostile("mr-series-with-identity", "leaks", _mr, words=("MR",)),
    Hostile("two-series-with-descriptions", "leaks", _two_series_not_head, codes=(0, 2), writes=True),
    Hostile("store-add-dicom-with-identity", "leaks", _dicom_store_add, codes=(0,), writes=True,
            changes=("out/store/ledger.jsonl", "out/store/store.json")),
    # ---- silently wrong: values that used to be accepted
    Hostile("slope-zero", "silently-wrong", _slope_zero, words=("slope",)),
    Hostile("hu-1e30", "silently-wrong",
            lambda t: seg(_nifti_float(t / "in" / "ct.nii.gz", 1e30), t / "out" / "r"), words=("Hounsfield",)),
    Hostile("hu-nan", "silently-wrong",
            lambda t: seg(_nifti_float(t / "in" / "ct.nii.gz", float("nan")), t / "out" / "r")),
    Hostile("skewed-sform", "silently-wrong", lambda t: seg(_nifti_skewed(t / "in" / "ct.nii"), t / "out" / "r")),
    Hostile("skewed-dicom-orientation", "silently-wrong",
            lambda t: (_dicom(t / "in" / "dicom", row=(1, 0, 0), col=(0.26, 0.966, 0)),
                       seg(t / "in" / "dicom", t / "out" / "r"))[1], words=("orientation",)),
    Hostile("singular-dicom-orientation", "silently-wrong",
            lambda t: (_dicom(t / "in" / "dicom", row=(1, 0, 0), col=(1, 0, 0)),
                       seg(t / "in" / "dicom", t / "out" / "r"))[1], words=("orientation",)),
    Hostile("truncated-slice", "silently-wrong", _truncated_slice, words=("allow-gaps",)),
    Hostile("gap-in-positions", "silently-wrong",
            lambda t: (_dicom(t / "in" / "dicom", z=[0, 2, 4, 6, 8, 16, 18, 20, 22, 24]),
                       seg(t / "in" / "dicom", t / "out" / "r"))[1], words=("missing", "allow-gaps")),
    Hostile("nan-spacing-mha", "silently-wrong", lambda t: seg(_mha_nan_spacing(t / "in" / "ct.mha"), t / "out" / "r"),
            words=("finite",), wrong=("0 × 0 × 0",)),
    Hostile("risk-cutpoints-nan-inf", "silently-wrong",
            lambda t: seg(_ct(t), t / "out" / "r", "--risk-cutpoints", "nan,inf"), words=("risk-cutpoints",)),
    Hostile("risk-cutpoints-decreasing", "silently-wrong",
            lambda t: seg(_ct(t), t / "out" / "r", "--risk-cutpoints", "100,30"), words=("risk-cutpoints",)),
    Hostile("threshold-above-one", "silently-wrong", lambda t: seg(_ct(t), t / "out" / "r", "--threshold", "2"),
            words=("threshold",)),
    Hostile("threshold-nan", "silently-wrong", lambda t: seg(_ct(t), t / "out" / "r", "--threshold", "nan"),
            words=("threshold",)),
    Hostile("relabel-landmarks-1e300", "silently-wrong", lambda t: _landmarks_case(t, z=1e300)),
    # ---- internal errors that must be refusals: damaged model folders, occupied model outputs
    Hostile("model-weights-truncated", "internal-error",
            _damaged_model("segmenter", _weights_bytes(lambda b: b[: len(b) // 2])), words=("model.safetensors",)),
    Hostile("model-weights-empty", "internal-error", _damaged_model("segmenter", _weights_bytes(lambda b: b"")),
            words=("model.safetensors",)),
    Hostile("model-weights-garbage", "internal-error",
            _damaged_model("landmarks", _weights_bytes(lambda b: os.urandom(len(b)))), words=("model.safetensors",)),
    Hostile("model-weights-byte-flipped", "internal-error",
            _damaged_model("segmenter", _weights_bytes(lambda b: b[:-100] + bytes([b[-100] ^ 0xFF]) + b[-99:])),
            words=("model.safetensors",)),
    Hostile("model-weights-missing", "internal-error",
            _damaged_model("landmarks", lambda f: (f / "model.safetensors").unlink()), words=("model.safetensors",)),
    Hostile("model-config-a-list", "internal-error",
            _damaged_model("segmenter", lambda f: (f / "config.json").write_text("[1, 2]")), words=("config.json",)),
    Hostile("model-config-not-json", "internal-error",
            _damaged_model("landmarks", lambda f: (f / "config.json").write_text("{oops")), words=("config.json",)),
    Hostile("model-config-negative-channels", "internal-error",
            _damaged_model("segmenter", _config_edit(lambda c: _first_architecture_int(c, -4))),
            words=("config.json",)),
    Hostile("model-config-zero-parameter", "internal-error",
            _damaged_model("landmarks", _config_edit(lambda c: _first_architecture_int(c, 0))),
            words=("config.json",)),
    Hostile("model-config-string-threshold", "internal-error",
            _damaged_model("segmenter", _config_edit(lambda c: c.update(threshold="high"))), words=("threshold",)),
    Hostile("model-config-unknown-architecture", "internal-error",
            _damaged_model("segmenter", _config_edit(lambda c: c["architecture"].update(name="transformer-xl"))),
            words=("config.json",)),
    Hostile("model-wrong-kind", "internal-error",
            lambda t: [*_damaged_model("landmarks", lambda f: None)(t)[:-2], "--model",
                       str(t / "in" / "model-landmarks")], words=("segmenter",)),
    Hostile("batch-with-damaged-model", "internal-error", _batch_with_model, words=("model.safetensors",)),
    Hostile("train-output-is-user-folder", "deletes-data",
            _model_output_in_user_folder(["train", "segmenter", "--phantoms", "4", "--progress", "none"]),
            words=("not",)),
    Hostile("pretrain-output-is-user-folder", "deletes-data",
            _model_output_in_user_folder(["pretrain", "desd", "--phantoms", "1", "--progress", "none"]),
            words=("not",)),
    Hostile("phantom-output-is-cwd", "deletes-data", lambda t: ["phantom", "-o", ".", "--seed", "1", "--count", "1"],
            words=("current",), setup=_chdir(lambda t: t)),
    # ---- internal errors that must be refusals: malformed landmark files
    Hostile("relabel-landmarks-not-json", "internal-error", lambda t: _landmarks_case(t, "{not json")),
    Hostile("relabel-landmarks-a-list", "internal-error", lambda t: _landmarks_case(t, "[1, 2, 3]")),
    Hostile("relabel-landmarks-no-points", "internal-error",
            lambda t: _landmarks_case(t, json.dumps({"markups": [{"type": "Fiducial", "controlPoints": []}]}))),
    Hostile("relabel-landmarks-nan-position", "internal-error",
            lambda t: _landmarks_case(t, json.dumps({"markups": [{"type": "Fiducial", "controlPoints": [
                {"label": "L_carotid_canal", "position": ["nan", 0, 0]}]}]}))),
    # ---- store integrity
    Hostile("store-add-to-damaged-ledger", "store", _damaged_ledger, words=("ledger",), writes=True),
    Hostile("store-verify-truncated-ledger", "store", _truncated_ledger, codes=(1,), words=("anchor",),
            writes=True),
    Hostile("store-show-traversal-id", "store",
            lambda t: (_store_case(t), ["store", "show", str(t / "out" / "store"), "../../etc/passwd"])[1],
            writes=True),
    Hostile("store-add-traversal-id", "store",
            lambda t: (lambda s: ["store", "add", str(s[0]), "--image", str(s[1]), "--engine-output", str(s[2]),
                                  "--case-id", "../escape"])(_store_case(t)), writes=True),
    Hostile("store-init-on-user-folder", "store",
            lambda t: ["store", "init", str(_user_folder(t))]),
    Hostile("store-open-not-a-store", "store", lambda t: ["store", "list", str(_user_folder(t))]),
    Hostile("store-add-engine-output-missing", "store",
            lambda t: (lambda s: ["store", "add", str(s[0]), "--image", str(s[1]), "--engine-output",
                                  str(t / "in" / "nowhere")])(_store_case(t)), writes=True),
    # ---- messages: the true reason, not a wrong one
    Hostile("noise-cube", "messages",
            lambda t: seg(_nifti(t / "in" / "noise.nii.gz", _head_like(), Grid((40, 96, 96), (1, 1, 2), (0, 0, 0))),
                          t / "out" / "r"), codes=(0, 2), writes=True, wrong=("out of order",)),
    Hostile("all-air", "messages",
            lambda t: seg(_nifti(t / "in" / "air.nii.gz", _head_like(air=True), Grid((40, 96, 96), (1, 1, 2),
                                                                                  (0, 0, 0))), t / "out" / "r"),
            words=("head",), wrong=("out of order",)),
    Hostile("two-slices", "messages",
            lambda t: seg(_nifti(t / "in" / "two.nii.gz", _tiny_hu(2), Grid((2, 32, 32), (0.7, 0.7, 2), (0, 0, 0))),
                          t / "out" / "r"), codes=(0, 2), writes=True, wrong=("out of order",)),
    Hostile("body-ct", "messages",
            lambda t: seg(_nifti(t / "in" / "body.nii.gz", _head_like(body=True, size=128),
                                 Grid((40, 128, 128), (3.5, 3.5, 5), (0, 0, 0))), t / "out" / "r"),
            codes=(0, 2), writes=True, wrong=("out of order",)),
    Hostile("dicomdir-only", "messages", _dicomdir_only, words=("DICOMDIR",), wrong=("empty",)),
    Hostile("header-only-dicom", "messages", _header_only, words=("pixel",), wrong=("gdcmconv", "decompress")),
    Hostile("forty-nine-unstackable", "messages", _forty_nine_unstackable, words=("49 images", "stack"), wrong=("single slice",)),
    Hostile("empty-folder", "messages", lambda t: ((t / "in" / "e").mkdir(parents=True),
                                                   seg(t / "in" / "e", t / "out" / "r"))[1]),
    Hostile("symlink-loop", "messages", _symlink_loop, words=("symlink loop",), wrong=("does not exist",)),
    Hostile("localizer-only", "messages", _localizer, words=("localizer",)),
    Hostile("missing-input", "messages", lambda t: seg(t / "in" / "nothing.nii.gz", t / "out" / "r"),
            words=("not exist",)),
]


def _nifti_float(path: Path, value: float) -> Path:
    hu = _tiny_hu()
    hu[5, 16, 16] = value
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing(TINY.spacing)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def _huge_dims(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    struct.pack_into("<8h", raw, 40, 3, 32000, 32000, 32000, 1, 1, 1, 1)  # nifti-1 dim[]
    path.write_bytes(bytes(raw))


# ------------------------------------------------------------------------------------------------ the runner
def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                out[str(path)] = "special"
                continue
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _text_files(root: Path) -> list[Path]:
    return [Path(d) / n for d, _, names in os.walk(root) for n in names
            if n.endswith((".json", ".jsonl", ".csv", ".txt", ".md")) and (Path(d) / n).is_file()]


def _run(argv: list, timeout: float = TIMEOUT_S) -> int:
    box: dict = {}
    thread = threading.Thread(target=lambda: box.setdefault("code", main([str(a) for a in argv])), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"hung for more than {timeout} s"
    return box["code"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.klass}:{c.name}")
def test_hostile_input(case: Hostile, tmp_path, capsys, monkeypatch):
    if case.setup is not None:
        case.setup(monkeypatch, tmp_path)
    argv = case.build(tmp_path)
    capsys.readouterr()  # what building printed (e.g. a store id) is not the command's output
    before = _snapshot(tmp_path)

    code = _run(argv)
    captured = capsys.readouterr()
    printed = captured.out + captured.err

    assert code in case.codes, f"exit {code}, expected {case.codes}: {printed[-2000:]}"
    for bad in ALWAYS_WRONG + case.wrong:
        assert bad.lower() not in printed.lower(), f"{bad!r} in {printed[-2000:]}"
    lines = [line for line in captured.err.splitlines() if line.strip()]
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("iacseg: error: "), captured.err
    for word in case.words:
        assert word.lower() in (lines[0] if code == 2 else printed).lower(), f"{word!r} not in {printed!r}"
    after = _snapshot(tmp_path)
    allowed = {str(tmp_path / c) for c in case.changes} if code != 2 else set()
    lost = {p: h for p, h in before.items() if after.get(p) != h and not (p in allowed and p in after)}
    assert lost == {}, f"files lost or changed: {sorted(lost)}"
    new = sorted(set(after) - set(before))
    if code == 2 or not case.writes:
        assert new == [], f"left behind: {new}"
    else:
        assert all(p.startswith(str(tmp_path / "out")) for p in new), new
    leaks = [(str(p), w) for p in _text_files(tmp_path / "out") for w in LEAK_WORDS
             if w.lower() in p.read_text(errors="replace").lower()]
    assert [w for w in LEAK_WORDS if w.lower() in printed.lower()] == [] and leaks == []


def test_the_suite_covers_every_class_with_at_least_sixty_cases():
    classes = {c.klass for c in CASES}
    assert classes == {"deletes-data", "hangs", "crashes", "leaks", "silently-wrong", "internal-error", "store",
                       "messages"}
    assert len(CASES) >= 60 and len({c.name for c in CASES}) == len(CASES)
