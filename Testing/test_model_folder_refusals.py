"""Damaged model folders, malformed landmark files and occupied model output folders: exit 2, one line naming the
file and what to do, nothing written — never an internal error.

The damaged folders are made at test time from copies of the shipped demo models.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from iacseg.cli.main import main
from iacseg.core.contracts import LANDMARKS
from iacseg.core.errors import IACSegError
from iacseg.core.grid import Grid
from iacseg.io.writers import write_image
from iacseg.models.folders import CONFIG_FILE, WEIGHTS_FILE
from iacseg.models.loading import check_model_folder, save_model
from iacseg.models.defaults import resolve_model
from iacseg.core.landmarks import Landmark
from iacseg.outputs.markups import markups_document, read_landmarks

GRID = Grid((12, 32, 32), (0.5, 0.5, 2.0), (0, 0, 0))


@pytest.fixture(autouse=True)
def _no_user_models(tmp_path, monkeypatch):
    """No promoted defaults nor user models: the shipped demo models are the defaults."""
    monkeypatch.setenv("IACSEG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("IACSEG_MODEL_PATH", raising=False)


def shipped(kind: str) -> Path:
    """The shipped demo model folder of ``kind`` (found as the engine finds it)."""
    folder = resolve_model(None, kind)
    assert (folder / WEIGHTS_FILE).is_file(), folder
    return folder


def copy_of(kind: str, tmp_path: Path) -> Path:
    folder = tmp_path / f"copy-{kind}"
    shutil.copytree(shipped(kind), folder)
    return folder


def _edit_config(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    """Change config.json in place (``edit`` mutates the parsed config; what it returns is ignored)."""
    def damage(folder: Path) -> None:
        config = json.loads((folder / CONFIG_FILE).read_text())
        edit(config)
        (folder / CONFIG_FILE).write_text(json.dumps(config))
    return damage


def _replace_config(make: Callable[[dict], object]) -> Callable[[Path], None]:
    """Replace config.json by the JSON of ``make(config)``."""
    def damage(folder: Path) -> None:
        config = json.loads((folder / CONFIG_FILE).read_text())
        (folder / CONFIG_FILE).write_text(json.dumps(make(config)))
    return damage


def _write_config_text(text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / CONFIG_FILE).write_text(text)


def _truncate(fraction: float) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        data = (folder / WEIGHTS_FILE).read_bytes()
        (folder / WEIGHTS_FILE).write_bytes(data[: int(len(data) * fraction)])
    return damage


def _flip_byte(folder: Path) -> None:
    data = bytearray((folder / WEIGHTS_FILE).read_bytes())
    data[-100] ^= 0xFF  # inside the last tensor: the header still fits, the bytes do not
    (folder / WEIGHTS_FILE).write_bytes(bytes(data))


def _resave(change: Callable[[dict], None]) -> Callable[[Path], None]:
    """Rewrite the weights with ``change`` applied to the state dict and record their new hash (a consistent but
    wrong folder, as a hand-made conversion would give)."""
    def damage(folder: Path) -> None:
        from safetensors.torch import load_file, save_file

        from iacseg.core.files import sha256_of

        state = load_file(str(folder / WEIGHTS_FILE))
        change(state)
        save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
        config = json.loads((folder / CONFIG_FILE).read_text())
        config["sha256"] = sha256_of(folder / WEIGHTS_FILE)
        (folder / CONFIG_FILE).write_text(json.dumps(config))
    return damage


def _first_key(state: dict) -> str:
    return sorted(state)[0]


def _nan_weights(state: dict) -> None:
    state[_first_key(state)].view(-1)[0] = float("nan")


def _extra_tensor(state: dict) -> None:
    import torch

    state["surplus.weight"] = torch.zeros(3)


def _missing_tensor(state: dict) -> None:
    del state[_first_key(state)]


def _params(key: str, value) -> Callable[[dict], None]:
    return lambda c: c["architecture"]["params"].__setitem__(key, value)


def _input(key: str, value) -> Callable[[dict], None]:
    return lambda c: c["input"].__setitem__(key, value)


#: (id, damage, words the message must hold) — each on a copy of the shipped segmenter (unet-demo)
SEGMENTER_DAMAGE = [
    ("weights_truncated_half", _truncate(0.5), [WEIGHTS_FILE, "truncated", "re-copy"]),
    ("weights_truncated_in_header", _truncate(0.001), [WEIGHTS_FILE, "truncated"]),
    ("weights_empty", _truncate(0.0), [WEIGHTS_FILE, "truncated"]),
    ("weights_random_bytes", lambda f: (f / WEIGHTS_FILE).write_bytes(bytes(range(256)) * 40), [WEIGHTS_FILE]),
    ("weights_header_not_json",
     lambda f: (f / WEIGHTS_FILE).write_bytes((16).to_bytes(8, "little") + b"{not json}" * 3),
     [WEIGHTS_FILE, "header"]),
    ("weights_byte_flipped", _flip_byte, [WEIGHTS_FILE, "SHA-256", "re-copy"]),
    ("weights_nan", _resave(_nan_weights), [WEIGHTS_FILE, "NaN"]),
    ("weights_extra_tensor", _resave(_extra_tensor), [WEIGHTS_FILE, "surplus.weight"]),
    ("weights_missing_tensor", _resave(_missing_tensor), [WEIGHTS_FILE, "lacks the tensor"]),
    ("weights_missing", lambda f: (f / WEIGHTS_FILE).unlink(), [WEIGHTS_FILE]),
    ("weights_only_pickle", lambda f: (f / WEIGHTS_FILE).rename(f / "model.pt"), ["pickle"]),
    ("shape_mismatch", _edit_config(_params("features", [16, 32, 48, 64])), ["stem.0.weight", "shape"]),
    ("config_missing", lambda f: (f / CONFIG_FILE).unlink(), [CONFIG_FILE]),
    ("config_list", _replace_config(lambda c: [c]), [CONFIG_FILE, "list"]),
    ("config_not_json", _write_config_text("{\"kind\": \"segmenter\", "), [CONFIG_FILE, "JSON"]),
    ("config_empty", _write_config_text(""), [CONFIG_FILE, "JSON"]),
    ("config_not_utf8", lambda f: (f / CONFIG_FILE).write_bytes(b"\xff\xfe{}"), [CONFIG_FILE]),
    ("config_deeply_nested", _write_config_text("[" * 100000 + "]" * 100000), [CONFIG_FILE]),
    ("config_no_kind", _edit_config(lambda c: c.pop("kind")), [CONFIG_FILE, "kind"]),
    ("config_no_architecture", _edit_config(lambda c: c.pop("architecture")), [CONFIG_FILE, "architecture"]),
    ("config_architecture_text", _edit_config(lambda c: c.__setitem__("architecture", "ResEncUNet")),
     [CONFIG_FILE, "architecture"]),
    ("unknown_architecture", _edit_config(lambda c: c["architecture"].__setitem__("name", "Mystery")),
     [CONFIG_FILE, "Mystery"]),
    ("architecture_of_another_kind", _edit_config(lambda c: c["architecture"].__setitem__(
        "name", "DepthSequenceTransformer")), [CONFIG_FILE, "DepthSequenceTransformer"]),
    ("params_list", _edit_config(lambda c: c["architecture"].__setitem__("params", [1, 2])),
     [CONFIG_FILE, "params"]),
    ("negative_channels", _edit_config(_params("in_channels", -2)), [CONFIG_FILE, "in_channels"]),
    ("channels_text", _edit_config(_params("in_channels", "two")), [CONFIG_FILE, "in_channels"]),
    ("channels_absurd", _edit_config(_params("in_channels", 10**12)), [CONFIG_FILE, "in_channels"]),
    ("features_zero", _edit_config(_params("features", [0, 16, 32, 64])), [CONFIG_FILE, "features"]),
    ("features_huge", _edit_config(_params("features", [8, 16, 32, 900000])), [CONFIG_FILE, "billion"]),
    ("unexpected_parameter", _edit_config(_params("colour", 3)), [CONFIG_FILE, "ResEncUNet"]),
    ("channels_do_not_match_windows", _edit_config(_input("windows_hu", [[-100.0, 300.0]])),
     [CONFIG_FILE, "windows_hu"]),
    ("threshold_text", _edit_config(lambda c: c.__setitem__("threshold", "0.4")), [CONFIG_FILE, "threshold"]),
    ("threshold_above_one", _edit_config(lambda c: c.__setitem__("threshold", 1.5)), [CONFIG_FILE, "threshold"]),
    ("threshold_nan", lambda f: (f / CONFIG_FILE).write_text(
        (f / CONFIG_FILE).read_text().replace('"threshold": 0.4', '"threshold": NaN')), [CONFIG_FILE, "threshold"]),
    ("patch_zero", _edit_config(_input("patch_size_kji", [0, 96, 96])), [CONFIG_FILE, "patch_size_kji"]),
    ("patch_negative", _edit_config(_input("patch_size_kji", [48, -96, 96])), [CONFIG_FILE, "patch_size_kji"]),
    ("patch_absurd", _edit_config(_input("patch_size_kji", [48, 96, 100000])), [CONFIG_FILE, "patch_size_kji"]),
    ("patch_not_a_multiple", _edit_config(_input("patch_size_kji", [47, 96, 96])), [CONFIG_FILE, "divisor"]),
    ("patch_two_numbers", _edit_config(_input("patch_size_kji", [96, 96])), [CONFIG_FILE, "patch_size_kji"]),
    ("window_reversed", _edit_config(_input("windows_hu", [[300.0, -100.0], [0.0, 1600.0]])),
     [CONFIG_FILE, "windows_hu"]),
    ("window_absurd", _edit_config(_input("windows_hu", [[-1e30, 1e30], [0.0, 1600.0]])),
     [CONFIG_FILE, "windows_hu"]),
    ("overlap_above_one", _edit_config(_input("overlap", 2.0)), [CONFIG_FILE, "overlap"]),
    ("margin_negative", _edit_config(_input("context_margin_kji", [2, -8, 8])), [CONFIG_FILE, "context_margin"]),
    ("input_list", _edit_config(lambda c: c.__setitem__("input", [1, 2])), [CONFIG_FILE, "input"]),
    ("name_object", _edit_config(lambda c: c.__setitem__("name", {"a": 1})), [CONFIG_FILE, "name"]),
]

#: (id, damage, words) on a copy of the shipped landmark model (dst-demo)
LANDMARK_DAMAGE = [
    ("weights_truncated", _truncate(0.7), [WEIGHTS_FILE, "truncated"]),
    ("config_list", _replace_config(lambda c: [c]), [CONFIG_FILE, "list"]),
    ("view_size_zero", _edit_config(_input("size", 0)), [CONFIG_FILE, "size"]),
    ("view_size_absurd", _edit_config(_input("size", 10**6)), [CONFIG_FILE, "size"]),
    ("field_of_view_negative", _edit_config(_input("fov_mm", -160.0)), [CONFIG_FILE, "fov_mm"]),
    ("five_landmarks", _edit_config(_params("n_landmarks", 5)), [CONFIG_FILE, "n_landmarks"]),
    ("landmark_names", _edit_config(lambda c: c.__setitem__("landmarks", ["a", "b"])), [CONFIG_FILE, "landmarks"]),
    ("max_slices_negative", _edit_config(_params("max_slices", -1)), [CONFIG_FILE, "max_slices"]),
    ("heads_text", _edit_config(_params("heads", "four")), [CONFIG_FILE, "heads"]),
]


def _ct(tmp_path: Path) -> Path:
    hu = np.full(GRID.shape, -1000.0, np.float32)
    hu[:, 6:26, 6:26] = 40.0
    path = tmp_path / "ct.nii.gz"
    write_image(path, hu, GRID)
    return path


def _refused(argv: list[str], capsys, *words: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and re.match(r"iacseg: error( \([^)]*\))?: ", err) and "internal error" not in err, err
    for word in words:
        assert word in err, (word, err)
    return err


@pytest.mark.parametrize("damage, words", [pytest.param(d, w, id=i) for i, d, w in SEGMENTER_DAMAGE])
def test_segment_refuses_a_damaged_segmenter_folder_naming_the_file(damage, words, tmp_path, capsys):
    folder = copy_of("segmenter", tmp_path)
    damage(folder)
    out = tmp_path / "out"
    _refused(["segment", str(_ct(tmp_path)), "-o", str(out), "--model", str(folder), "--device", "cpu",
              "--progress", "none"], capsys, str(folder), *words)
    assert not out.exists() and not list(tmp_path.glob(".out*"))


@pytest.mark.parametrize("damage, words", [pytest.param(d, w, id=i) for i, d, w in LANDMARK_DAMAGE])
def test_segment_refuses_a_damaged_landmark_model_folder(damage, words, tmp_path, capsys):
    folder = copy_of("landmarks", tmp_path)
    damage(folder)
    out = tmp_path / "out"
    _refused(["segment", str(_ct(tmp_path)), "-o", str(out), "--landmark-model", str(folder), "--device", "cpu",
              "--progress", "none"], capsys, str(folder), *words)
    assert not out.exists()


DAMAGE_BY_ID = {i: (d, w) for i, d, w in SEGMENTER_DAMAGE}


@pytest.mark.parametrize("which", ["weights_truncated_half", "config_list", "negative_channels", "shape_mismatch",
                                   "weights_byte_flipped"])
@pytest.mark.parametrize("command", ["promote", "train_init", "batch"])
def test_other_commands_refuse_the_damaged_folder_the_same_way(which, command, tmp_path, capsys, monkeypatch):
    import iacseg.train.segmenter as segmenter

    monkeypatch.setattr(segmenter, "train_segmenter", lambda *a, **k: pytest.fail("training must not start"))
    folder = copy_of("segmenter", tmp_path)
    damage, words = DAMAGE_BY_ID[which]
    damage(folder)
    out = tmp_path / "out"
    if command == "promote":
        _refused(["models", "promote", str(folder)], capsys, str(folder), *words)
        assert not (tmp_path / "home" / "defaults.json").exists()
    elif command == "train_init":
        _refused(["train", "segmenter", "--phantoms", "2", "--init", str(folder), "-o", str(out), "--progress",
                  "none"], capsys, str(folder), *words)
    else:  # checked once before any case runs: one refusal, not a failure of every case
        ct = _ct(tmp_path)
        _refused(["batch", str(ct), "-o", str(out), "--model", str(folder), "--device", "cpu", "--progress", "none"],
                 capsys, str(folder), *words)
    assert not out.exists()


@pytest.mark.parametrize("damage, named", [(_replace_config(lambda c: [c]), CONFIG_FILE),
                                           (_truncate(0.5), WEIGHTS_FILE)], ids=["config_list", "truncated"])
def test_models_list_leaves_out_a_damaged_folder_with_a_warning(damage, named, tmp_path, capsys, monkeypatch):
    folder = copy_of("segmenter", tmp_path / "models")
    damage(folder)
    monkeypatch.setenv("IACSEG_MODEL_PATH", str(tmp_path / "models"))
    assert main(["models"]) == 0
    captured = capsys.readouterr()
    assert str(folder) not in captured.out and "unet-demo" in captured.out
    assert f"{folder / named}" in captured.err and "left out" in captured.err


def test_the_shipped_models_pass_the_folder_check():
    for kind in ("segmenter", "landmarks"):
        config = check_model_folder(shipped(kind), kind)
        assert config["kind"] == kind and len(config["sha256"]) == 64


# --- landmark files given to `iacseg relabel` (and read by the store through the same reader) ----------------


def _points(**changes) -> list[dict]:
    doc = markups_document([Landmark(n, 10.0 + i, (1.0, 2.0, 10.0 + i)) for i, n in enumerate(LANDMARKS)])
    points = doc["markups"][0]["controlPoints"]
    for index, change in changes.items():
        points[int(index[1:])].update(change)
    return points


def _doc(points) -> dict:
    doc = markups_document([])
    doc["markups"][0]["controlPoints"] = points
    return doc


def _json(value) -> Callable[[Path], None]:
    return lambda p: p.write_text(json.dumps(value))


LANDMARK_FILES = [
    ("missing", lambda p: None, ["does not exist"]),
    ("a_folder", lambda p: p.mkdir(), ["not a regular file"]),
    ("not_json", lambda p: p.write_text("L_carotid_canal: 10 mm\n"), ["not valid JSON"]),
    ("empty", lambda p: p.write_text(""), ["not valid JSON"]),
    ("binary", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe"), ["not a text"]),
    ("json_list", _json([1, 2, 3]), ["a JSON list"]),
    ("json_number", _json(42), ["not a JSON object"]),
    ("no_markups", _json({"@schema": "x"}), ["no markups"]),
    ("empty_markups", _json({"markups": []}), ["no markups"]),
    ("no_control_points", _json({"markups": [{"type": "Fiducial"}]}), ["no control points"]),
    ("control_points_object", _json({"markups": [{"controlPoints": {"a": 1}}]}), ["no control points"]),
    ("point_not_object", _json(_doc(["L_carotid_canal"])), ["control point 1"]),
    ("wrong_names", _json(_doc(_points(p0={"label": "L-carotid-canal"}))), ["lacks", "L_carotid_canal",
                                                                             "L-carotid-canal"]),
    ("label_number", _json(_doc(_points(p2={"label": 7}))), ["control point 3", "label"]),
    ("no_points_placed", _json(_doc([])), ["lacks", "no placed point"]),
    ("position_text", _json(_doc(_points(p1={"position": ["a", "b", "c"]}))), [LANDMARKS[1], "three numbers"]),
    ("position_two_numbers", _json(_doc(_points(p1={"position": [1.0, 2.0]}))), [LANDMARKS[1], "three numbers"]),
    ("position_null", _json(_doc(_points(p4={"position": None}))), [LANDMARKS[4], "three numbers"]),
    ("position_nan", lambda p: p.write_text(json.dumps(_doc(_points(p3={"position": [1.0, 2.0, float("nan")]})))),
     [LANDMARKS[3], "finite"]),
    ("position_infinite", lambda p: p.write_text(json.dumps(_doc(_points(p0={"position": [float("inf"), 0, 0]})))),
     [LANDMARKS[0], "finite"]),
    ("position_absurd", _json(_doc(_points(p5={"position": [0.0, 0.0, 1e300]}))), [LANDMARKS[5], "finite"]),
    ("duplicate_names", _json(_doc(_points(p1={"label": LANDMARKS[0]}))), [LANDMARKS[0], "twice"]),
    ("huge_file", lambda p: open(p, "wb").truncate(64 << 20), ["MB"]),
]


def _relabel_inputs(tmp_path: Path) -> Path:
    mask = np.zeros(GRID.shape, np.uint8)
    mask[5, 10, 10] = 1
    write_image(tmp_path / "calcifications.nii.gz", mask, GRID)
    return tmp_path / "calcifications.nii.gz"


@pytest.mark.parametrize("make, words", [pytest.param(m, w, id=i) for i, m, w in LANDMARK_FILES])
def test_relabel_refuses_a_malformed_landmark_file_naming_it(make, words, tmp_path, capsys):
    mask = _relabel_inputs(tmp_path)
    landmarks = tmp_path / "corrected.mrk.json"
    make(landmarks)
    out = tmp_path / "relabelled"
    _refused(["relabel", "--mask", str(mask), "--landmarks", str(landmarks), "-o", str(out)], capsys,
             str(landmarks), *words)
    assert not out.exists()
    with pytest.raises(IACSegError):  # the store and the evaluation read landmark files through the same reader
        read_landmarks(landmarks)


def test_a_well_formed_landmark_file_still_reads(tmp_path):
    path = tmp_path / "ok.mrk.json"
    extra = {**_points()[0], "label": "extra point"}
    path.write_text(json.dumps(_doc(_points() + [extra])))
    assert set(read_landmarks(path)) == {*LANDMARKS, "extra point"}


# --- where `iacseg train` may write the new model ------------------------------------------------------------


@pytest.fixture
def no_training(monkeypatch):
    """Training functions that fail the test when called; ``calls`` records the allowed ones."""
    import iacseg.train.landmarks as landmarks
    import iacseg.train.segmenter as segmenter

    calls: list[dict] = []

    def forbid(*args, **kwargs):
        pytest.fail("training started although the output folder is refused")

    monkeypatch.setattr(segmenter, "train_segmenter", forbid)
    monkeypatch.setattr(landmarks, "train_landmarks", forbid)

    def allow():
        def record(data, out, **kwargs):
            calls.append({"out": out, **kwargs})
            return out
        monkeypatch.setattr(segmenter, "train_segmenter", record)
        monkeypatch.setattr(landmarks, "train_landmarks", record)
        return calls
    return allow


def _train(what: str, out: Path | str, *extra: str) -> list[str]:
    return ["train", what, "--phantoms", "2", "-o", str(out), "--progress", "none", *extra]


@pytest.mark.parametrize("what", ["segmenter", "landmarks"])
def test_train_refuses_an_existing_user_folder_before_training(what, tmp_path, capsys, no_training):
    out = tmp_path / "my-notes"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    _refused(_train(what, out), capsys, str(out), "already exists", "notes.txt")
    _refused(_train(what, out, "--overwrite"), capsys, str(out), "not an earlier IACSeg model")
    assert (out / "notes.txt").read_text() == "keep me" and [p.name for p in out.iterdir()] == ["notes.txt"]


def test_train_replaces_an_earlier_model_folder_only_with_overwrite(tmp_path, capsys, no_training):
    earlier = copy_of("segmenter", tmp_path)
    before = sorted(p.name for p in earlier.iterdir())
    _refused(_train("segmenter", earlier), capsys, str(earlier), "--overwrite")
    assert sorted(p.name for p in earlier.iterdir()) == before
    calls = no_training()
    assert main(_train("segmenter", earlier, "--overwrite")) == 0
    assert calls[0]["overwrite"] is True and Path(calls[0]["out"]) == earlier
    assert "model written to" in capsys.readouterr().err
    (earlier / "extra.txt").write_text("mine")  # a model folder with a user's file in it is not ours any more
    _refused(_train("segmenter", earlier, "--overwrite"), capsys, "extra.txt")


def test_train_accepts_a_new_or_empty_folder(tmp_path, no_training):
    calls = no_training()
    (tmp_path / "empty").mkdir()
    assert main(_train("landmarks", tmp_path / "empty")) == 0
    assert main(_train("segmenter", tmp_path / "new" / "model")) == 0
    assert [c["overwrite"] for c in calls] == [False, False]


@pytest.mark.parametrize("where, words", [
    ("cwd", "current folder"), ("root", "root folder"), ("inside_data", "inside the input folder"),
    ("init_folder", "is the input"), ("a_file", "not a folder"), ("empty_text", "empty"),
])
def test_train_refuses_unsafe_model_folders(where, words, tmp_path, capsys, monkeypatch, no_training):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    if where == "cwd":
        argv = _train("segmenter", ".")
    elif where == "root":
        argv = _train("segmenter", "/")
    elif where == "inside_data":
        argv = ["train", "segmenter", "--data", str(data), "-o", str(data / "model"), "--progress", "none"]
    elif where == "init_folder":
        init = copy_of("segmenter", tmp_path)
        argv = _train("segmenter", init, "--init", str(init), "--overwrite")
    elif where == "a_file":
        (tmp_path / "model.txt").write_text("x")
        argv = _train("segmenter", tmp_path / "model.txt")
    else:
        argv = _train("segmenter", " ")
    _refused(argv, capsys, words)


def test_the_training_functions_refuse_a_user_folder_before_any_work(tmp_path, monkeypatch):
    import iacseg.train.landmarks as landmarks
    import iacseg.train.pretrain_desd as desd
    import iacseg.train.segmenter as segmenter
    from iacseg.core.errors import InputError

    for module, name in ((segmenter, "_fit"), (landmarks, "_fit"), (desd, "_prepare")):
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("work started"))
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("keep me")
    for train in (segmenter.train_segmenter, landmarks.train_landmarks, desd.pretrain_desd):
        with pytest.raises(InputError, match="thesis.tex"):
            train(range(2), out)
    from iacseg.models.networks.unet import ResEncUNet

    config = {"kind": "segmenter", "architecture": {"name": "ResEncUNet", "params": {}}}
    with pytest.raises(InputError, match="thesis.tex"):
        save_model(out, ResEncUNet(), config, "card", overwrite=True)
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]


def test_pretrain_refuses_a_user_folder_before_any_work(tmp_path, capsys, monkeypatch):
    import iacseg.train.pretrain_desd as desd

    monkeypatch.setattr(desd, "_prepare", lambda *a, **k: pytest.fail("pre-training started"))
    out = tmp_path / "mine"
    out.mkdir()
    (out / "a.txt").write_text("x")
    _refused(["pretrain", "desd", "--phantoms", "1", "-o", str(out), "--progress", "none"], capsys, str(out),
             "a.txt")
