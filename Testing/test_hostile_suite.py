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
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

import hostile_inputs as hi
from iacseg.cli.main import main
from iacseg.core.grid import Grid

TIMEOUT_S = 120
ALWAYS_WRONG = ("Traceback", "internal error", "--debug")


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




CASES: list[Hostile] = [
    # ---- deletes data: an output that is an input, a user's folder, the current/home folder, "/"
    Hostile("out-is-ct-folder-overwrite", "deletes-data", lambda t: hi.seg(hi.ct(t), t / "in" / "case", "--overwrite"),
            words=("input",)),
    Hostile("out-is-ct-folder", "deletes-data", lambda t: hi.seg(hi.ct(t), t / "in" / "case"), words=("input",)),
    Hostile("out-above-ct-folder", "deletes-data", lambda t: hi.seg(hi.ct(t), t / "in", "--overwrite"), words=("input",)),
    Hostile("out-is-cwd", "deletes-data", lambda t: hi.seg(hi.ct(t), ".", "--overwrite"), words=("current",),
            setup=hi.chdir(lambda t: t)),
    Hostile("out-empty-string", "deletes-data", lambda t: hi.seg(hi.ct(t), "", "--overwrite")),
    Hostile("out-is-home", "deletes-data", lambda t: hi.seg(hi.ct(t), t / "keep" / "home", "--overwrite"),
            words=("home",), setup=hi.home),
    Hostile("out-is-root", "deletes-data", lambda t: hi.seg(hi.ct(t), "/", "--overwrite")),
    Hostile("out-inside-dicom-input", "deletes-data",
            lambda t: (hi.dicom(t / "in" / "dicom"), hi.seg(t / "in" / "dicom", t / "in" / "dicom" / "res"))[1],
            words=("input",)),
    Hostile("out-is-user-folder-overwrite", "deletes-data", lambda t: hi.seg(hi.ct(t), hi.user_folder(t), "--overwrite"),
            words=("not",)),
    Hostile("out-is-user-folder", "deletes-data", lambda t: hi.seg(hi.ct(t), hi.user_folder(t)), words=("exists",)),
    Hostile("out-is-a-file", "deletes-data",
            lambda t: (hi.user_folder(t), hi.seg(hi.ct(t), t / "keep" / "results" / "my_notes.txt", "--overwrite"))[1]),
    Hostile("out-is-a-symlink", "deletes-data", hi.symlink_out, words=("link",)),
    Hostile("batch-out-is-input", "deletes-data",
            lambda t: ["batch", str(hi.batch_folder(t)), "-o", str(t / "in" / "cases"), "--progress", "none"],
            words=("input",)),
    Hostile("batch-out-inside-input", "deletes-data",
            lambda t: ["batch", str(hi.batch_folder(t)), "-o", str(t / "in" / "cases" / "o"), "--progress", "none"],
            words=("input",)),
    Hostile("batch-leaves-user-case-folder", "deletes-data", hi.batch_user_case_folder, codes=(1,), writes=True),
    Hostile("relabel-out-is-mask-folder", "deletes-data",
            lambda t: [*hi.landmarks_case(t, z=10.0)[:-1], str(t / "in" / "case" / "out")], words=("input",)),
    Hostile("name-too-long", "deletes-data", lambda t: hi.seg(hi.ct(t), t / "out" / ("x" * 300)), words=("long",)),
    Hostile("path-too-long", "deletes-data", lambda t: hi.seg(hi.ct(t), t / "out" / "/".join(["y" * 200] * 25)),
            words=("long",)),
    Hostile("full-disk", "internal-error", lambda t: hi.seg(hi.ct(t), t / "out" / "r"), words=("space",),
            setup=hi.full_disk),
    # ---- hangs: pipes, devices, sockets
    Hostile("fifo-as-input", "hangs", lambda t: hi.seg(hi.fifo(t / "in" / "ct.nii.gz"), t / "out" / "r"),
            words=("pipe",)),
    Hostile("fifo-in-dicom-folder", "hangs",
            lambda t: (hi.dicom(t / "in" / "dicom"), hi.fifo(t / "in" / "dicom" / "IM9999"),
                       hi.seg(t / "in" / "dicom", t / "out" / "r"))[2], codes=(0, 2), writes=True),
    Hostile("fifo-in-batch-folder", "hangs",
            lambda t: (hi.fifo(hi.batch_folder(t) / "c.nii.gz"),
                       ["batch", str(t / "in" / "cases"), "-o", str(t / "out"), "--progress", "none"])[1],
            codes=(0, 1), writes=True),
    Hostile("device-as-input", "hangs", lambda t: hi.seg("/dev/zero", t / "out" / "r")),
    Hostile("socket-in-dicom-folder", "hangs",
            lambda t: (hi.dicom(t / "in" / "dicom"), hi.socket_in(t / "in" / "dicom"),
                       hi.seg(t / "in" / "dicom", t / "out" / "r"))[2], codes=(0, 2), writes=True),
    # ---- crashes: names and bytes the libraries choke on
    Hostile("non-utf8-nifti-name", "crashes", hi.not_utf8_nifti),
    Hostile("non-utf8-dicom-folder", "crashes", hi.not_utf8_dicom, codes=(0, 2), writes=True),
    Hostile("text-file-as-nifti", "crashes",
            lambda t: ((t / "in").mkdir(), (t / "in" / "ct.nii.gz").write_text("hello"),
                       hi.seg(t / "in" / "ct.nii.gz", t / "out" / "r"))[2]),
    Hostile("empty-nifti", "crashes",
            lambda t: ((t / "in").mkdir(), (t / "in" / "ct.nii").write_bytes(b""),
                       hi.seg(t / "in" / "ct.nii", t / "out" / "r"))[2]),
    Hostile("truncated-nifti", "crashes",
            lambda t: (hi.nifti(t / "in" / "ct.nii"),
                       (t / "in" / "ct.nii").write_bytes((t / "in" / "ct.nii").read_bytes()[:2000]),
                       hi.seg(t / "in" / "ct.nii", t / "out" / "r"))[2]),
    Hostile("random-bytes-dcm", "crashes",
            lambda t: ((t / "in").mkdir(), (t / "in" / "x.dcm").write_bytes(os.urandom(3000)),
                       hi.seg(t / "in" / "x.dcm", t / "out" / "r"))[2]),
    Hostile("header-claims-huge-grid", "crashes",
            lambda t: (hi.nifti(t / "in" / "ct.nii"), hi.huge_dims(t / "in" / "ct.nii"),
                       hi.seg(t / "in" / "ct.nii", t / "out" / "r"))[2]),
    # ---- leaks: refusals and stored copies of DICOM inputs that carry a name
    Hostile("mr-series-with-identity", "leaks", hi.mr, words=("MR",)),
    Hostile("two-series-with-descriptions", "leaks", hi.two_series_not_head, codes=(0, 2), writes=True),
    Hostile("store-add-dicom-with-identity", "leaks", hi.dicom_store_add, codes=(0,), writes=True,
            changes=("out/store/ledger.jsonl", "out/store/store.json")),
    # ---- silently wrong: values that used to be accepted
    Hostile("slope-zero", "silently-wrong", hi.slope_zero, words=("slope",)),
    Hostile("hu-1e30", "silently-wrong",
            lambda t: hi.seg(hi.nifti_float(t / "in" / "ct.nii.gz", 1e30), t / "out" / "r"), words=("Hounsfield",)),
    Hostile("hu-nan", "silently-wrong",
            lambda t: hi.seg(hi.nifti_float(t / "in" / "ct.nii.gz", float("nan")), t / "out" / "r")),
    Hostile("skewed-sform", "silently-wrong", lambda t: hi.seg(hi.nifti_skewed(t / "in" / "ct.nii"), t / "out" / "r")),
    Hostile("skewed-dicom-orientation", "silently-wrong",
            lambda t: (hi.dicom(t / "in" / "dicom", row=(1, 0, 0), col=(0.26, 0.966, 0)),
                       hi.seg(t / "in" / "dicom", t / "out" / "r"))[1], words=("orientation",)),
    Hostile("singular-dicom-orientation", "silently-wrong",
            lambda t: (hi.dicom(t / "in" / "dicom", row=(1, 0, 0), col=(1, 0, 0)),
                       hi.seg(t / "in" / "dicom", t / "out" / "r"))[1], words=("orientation",)),
    Hostile("truncated-slice", "silently-wrong", hi.truncated_slice, words=("allow-gaps",)),
    Hostile("gap-in-positions", "silently-wrong",
            lambda t: (hi.dicom(t / "in" / "dicom", z=[0, 2, 4, 6, 8, 16, 18, 20, 22, 24]),
                       hi.seg(t / "in" / "dicom", t / "out" / "r"))[1], words=("missing", "allow-gaps")),
    Hostile("nan-spacing-mha", "silently-wrong", lambda t: hi.seg(hi.mha_nan_spacing(t / "in" / "ct.mha"), t / "out" / "r"),
            words=("finite",), wrong=("0 × 0 × 0",)),
    Hostile("risk-cutpoints-nan-inf", "silently-wrong",
            lambda t: hi.seg(hi.ct(t), t / "out" / "r", "--risk-cutpoints", "nan,inf"), words=("risk-cutpoints",)),
    Hostile("risk-cutpoints-decreasing", "silently-wrong",
            lambda t: hi.seg(hi.ct(t), t / "out" / "r", "--risk-cutpoints", "100,30"), words=("risk-cutpoints",)),
    Hostile("threshold-above-one", "silently-wrong", lambda t: hi.seg(hi.ct(t), t / "out" / "r", "--threshold", "2"),
            words=("threshold",)),
    Hostile("threshold-nan", "silently-wrong", lambda t: hi.seg(hi.ct(t), t / "out" / "r", "--threshold", "nan"),
            words=("threshold",)),
    Hostile("relabel-landmarks-1e300", "silently-wrong", lambda t: hi.landmarks_case(t, z=1e300)),
    # ---- internal errors that must be refusals: damaged model folders, occupied model outputs
    Hostile("model-weights-truncated", "internal-error",
            hi.damaged_model("segmenter", hi.weights_bytes(lambda b: b[: len(b) // 2])), words=("model.safetensors",)),
    Hostile("model-weights-empty", "internal-error", hi.damaged_model("segmenter", hi.weights_bytes(lambda b: b"")),
            words=("model.safetensors",)),
    Hostile("model-weights-garbage", "internal-error",
            hi.damaged_model("landmarks", hi.weights_bytes(lambda b: os.urandom(len(b)))), words=("model.safetensors",)),
    Hostile("model-weights-byte-flipped", "internal-error",
            hi.damaged_model("segmenter", hi.weights_bytes(lambda b: b[:-100] + bytes([b[-100] ^ 0xFF]) + b[-99:])),
            words=("model.safetensors",)),
    Hostile("model-weights-missing", "internal-error",
            hi.damaged_model("landmarks", lambda f: (f / "model.safetensors").unlink()), words=("model.safetensors",)),
    Hostile("model-config-a-list", "internal-error",
            hi.damaged_model("segmenter", lambda f: (f / "config.json").write_text("[1, 2]")), words=("config.json",)),
    Hostile("model-config-not-json", "internal-error",
            hi.damaged_model("landmarks", lambda f: (f / "config.json").write_text("{oops")), words=("config.json",)),
    Hostile("model-config-negative-channels", "internal-error",
            hi.damaged_model("segmenter", hi.config_edit(lambda c: hi.first_architecture_int(c, -4))),
            words=("config.json",)),
    Hostile("model-config-zero-parameter", "internal-error",
            hi.damaged_model("landmarks", hi.config_edit(lambda c: hi.first_architecture_int(c, 0))),
            words=("config.json",)),
    Hostile("model-config-string-threshold", "internal-error",
            hi.damaged_model("segmenter", hi.config_edit(lambda c: c.update(threshold="high"))), words=("threshold",)),
    Hostile("model-config-unknown-architecture", "internal-error",
            hi.damaged_model("segmenter", hi.config_edit(lambda c: c["architecture"].update(name="transformer-xl"))),
            words=("config.json",)),
    Hostile("model-wrong-kind", "internal-error",
            lambda t: [*hi.damaged_model("landmarks", lambda f: None)(t)[:-2], "--model",
                       str(t / "in" / "model-landmarks")], words=("segmenter",)),
    Hostile("batch-with-damaged-model", "internal-error", hi.batch_with_model, words=("model.safetensors",)),
    Hostile("train-output-is-user-folder", "deletes-data",
            hi.model_output_in_user_folder(["train", "segmenter", "--phantoms", "4", "--progress", "none"]),
            words=("not",)),
    Hostile("pretrain-output-is-user-folder", "deletes-data",
            hi.model_output_in_user_folder(["pretrain", "desd", "--phantoms", "1", "--progress", "none"]),
            words=("not",)),
    Hostile("phantom-output-is-cwd", "deletes-data", lambda t: ["phantom", "-o", ".", "--seed", "1", "--count", "1"],
            words=("current",), setup=hi.chdir(lambda t: t)),
    # ---- internal errors that must be refusals: malformed landmark files
    Hostile("relabel-landmarks-not-json", "internal-error", lambda t: hi.landmarks_case(t, "{not json")),
    Hostile("relabel-landmarks-a-list", "internal-error", lambda t: hi.landmarks_case(t, "[1, 2, 3]")),
    Hostile("relabel-landmarks-no-points", "internal-error",
            lambda t: hi.landmarks_case(t, json.dumps({"markups": [{"type": "Fiducial", "controlPoints": []}]}))),
    Hostile("relabel-landmarks-nan-position", "internal-error",
            lambda t: hi.landmarks_case(t, json.dumps({"markups": [{"type": "Fiducial", "controlPoints": [
                {"label": "L_carotid_canal", "position": ["nan", 0, 0]}]}]}))),
    # ---- store integrity
    Hostile("store-add-to-damaged-ledger", "store", hi.damaged_ledger, words=("ledger",), writes=True),
    Hostile("store-verify-truncated-ledger", "store", hi.truncated_ledger, codes=(1,), words=("anchor",),
            writes=True),
    Hostile("store-show-traversal-id", "store",
            lambda t: (hi.store_case(t), ["store", "show", str(t / "out" / "store"), "../../etc/passwd"])[1],
            writes=True),
    Hostile("store-add-traversal-id", "store",
            lambda t: (lambda s: ["store", "add", str(s[0]), "--image", str(s[1]), "--engine-output", str(s[2]),
                                  "--case-id", "../escape"])(hi.store_case(t)), writes=True),
    Hostile("store-init-on-user-folder", "store",
            lambda t: ["store", "init", str(hi.user_folder(t))]),
    Hostile("store-open-not-a-store", "store", lambda t: ["store", "list", str(hi.user_folder(t))]),
    Hostile("store-add-engine-output-missing", "store",
            lambda t: (lambda s: ["store", "add", str(s[0]), "--image", str(s[1]), "--engine-output",
                                  str(t / "in" / "nowhere")])(hi.store_case(t)), writes=True),
    # ---- messages: the true reason, not a wrong one
    Hostile("noise-cube", "messages",
            lambda t: hi.seg(hi.nifti(t / "in" / "noise.nii.gz", hi.head_like(), Grid((40, 96, 96), (1, 1, 2), (0, 0, 0))),
                          t / "out" / "r"), codes=(0, 2), writes=True, wrong=("out of order",)),
    Hostile("all-air", "messages",
            lambda t: hi.seg(hi.nifti(t / "in" / "air.nii.gz", hi.head_like(air=True), Grid((40, 96, 96), (1, 1, 2),
                                                                                  (0, 0, 0))), t / "out" / "r"),
            words=("head",), wrong=("out of order",)),
    Hostile("two-slices", "messages",
            lambda t: hi.seg(hi.nifti(t / "in" / "two.nii.gz", hi.tiny_hu(2), Grid((2, 32, 32), (0.7, 0.7, 2), (0, 0, 0))),
                          t / "out" / "r"), codes=(0, 2), writes=True, wrong=("out of order",)),
    Hostile("body-ct", "messages",
            lambda t: hi.seg(hi.nifti(t / "in" / "body.nii.gz", hi.head_like(body=True, size=128),
                                 Grid((40, 128, 128), (3.5, 3.5, 5), (0, 0, 0))), t / "out" / "r"),
            codes=(0, 2), writes=True, wrong=("out of order",)),
    Hostile("dicomdir-only", "messages", hi.dicomdir_only, words=("DICOMDIR",), wrong=("empty",)),
    Hostile("header-only-dicom", "messages", hi.header_only, words=("pixel",), wrong=("gdcmconv", "decompress")),
    Hostile("forty-nine-unstackable", "messages", hi.forty_nine_unstackable, words=("49 images", "stack"), wrong=("single slice",)),
    Hostile("empty-folder", "messages", lambda t: ((t / "in" / "e").mkdir(parents=True),
                                                   hi.seg(t / "in" / "e", t / "out" / "r"))[1]),
    Hostile("symlink-loop", "messages", hi.symlink_loop, words=("symlink loop",), wrong=("does not exist",)),
    Hostile("localizer-only", "messages", hi.localizer, words=("localizer",)),
    Hostile("missing-input", "messages", lambda t: hi.seg(t / "in" / "nothing.nii.gz", t / "out" / "r"),
            words=("not exist",)),
]




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
        assert len(lines) == 1 and re.match(r"iacseg: error( \([^)]*\))?: ", lines[0]), captured.err
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
    leaks = [(str(p), w) for p in _text_files(tmp_path / "out") for w in hi.LEAK_WORDS
             if w.lower() in p.read_text(errors="replace").lower()]
    assert [w for w in hi.LEAK_WORDS if w.lower() in printed.lower()] == [] and leaks == []


def test_the_suite_covers_every_class_with_at_least_sixty_cases():
    classes = {c.klass for c in CASES}
    assert classes == {"deletes-data", "hangs", "crashes", "leaks", "silently-wrong", "internal-error", "store",
                       "messages"}
    assert len(CASES) >= 60 and len({c.name for c in CASES}) == len(CASES)

