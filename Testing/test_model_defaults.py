"""`iacseg models promote|rollback`: the default model switches, can be undone, and never points at a bad folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import iacseg
from iacseg.cli.main import main
from iacseg.core.errors import ModelError
from iacseg.models.defaults import current_default, defaults_path, rollback
from iacseg.models.promote import promote
from iacseg.models.defaults import default_model_dir, resolve_model
from iacseg.models.loading import load_model, save_model
from iacseg.models.networks.unet import ResEncUNet

SHIPPED = Path(iacseg.__file__).resolve().parent / "models" / "shipped"  # package data
PARAMS = {"in_channels": 2, "features": [4, 8], "strides": [[1, 1, 1], [1, 2, 2]], "blocks": [1, 1]}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("IACSEG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("IACSEG_MODEL_PATH", raising=False)
    return tmp_path / "home"


def segmenter(folder: Path, version: str = "1.0", seed: int = 1) -> Path:
    torch.manual_seed(seed)
    config = {"name": folder.name, "version": version, "kind": "segmenter",
              "architecture": {"name": "ResEncUNet", "params": PARAMS}}
    return save_model(folder, ResEncUNet(**PARAMS), config, "# toy\n")


def test_without_a_pointer_the_shipped_demo_models_are_the_defaults(home):
    assert resolve_model(None, "segmenter") == SHIPPED / "unet-demo"
    assert default_model_dir("landmarks") == SHIPPED / "dst-demo"
    assert current_default("segmenter") is None and not defaults_path().exists()


def test_promote_then_rollback_walks_back_through_the_history(home, tmp_path):
    a, b = segmenter(tmp_path / "seg-a"), segmenter(tmp_path / "seg-b", "1.1", seed=2)
    assert promote(a)["previous"] is None
    assert resolve_model(None, "segmenter") == a.resolve() == default_model_dir("segmenter")
    assert promote(str(b))["previous"] == str(a.resolve())
    assert resolve_model(None, "segmenter") == b.resolve()
    assert resolve_model(None, "landmarks") == SHIPPED / "dst-demo"  # the other kind is untouched
    module, cfg = load_model(a, kind="segmenter")  # the old default stays loadable
    assert cfg["version"] == "1.0"
    assert rollback("segmenter")["current"] == str(a.resolve())
    assert resolve_model(None, "segmenter") == a.resolve()
    assert rollback("segmenter")["current"] is None
    assert resolve_model(None, "segmenter") == SHIPPED / "unet-demo"
    with pytest.raises(ModelError, match="no earlier default segmenter"):
        rollback("segmenter")
    assert sorted(p.name for p in home.iterdir()) == [".defaults.lock", "defaults.json"]  # no temp files left


def test_promote_finds_names_under_iacseg_home_models(home):
    folder = segmenter(home / "models" / "my-unet")
    promote("my-unet")
    assert current_default("segmenter") == folder.resolve()


@pytest.mark.parametrize("damage", ["missing", "pickle_only", "no_config", "wrong_weights", "unknown_kind"])
def test_a_folder_that_is_not_a_valid_model_is_refused(home, tmp_path, damage):
    good = segmenter(tmp_path / "good")
    promote(good)
    bad = tmp_path / "bad"
    if damage != "missing":
        shutil.copytree(good, bad)
    if damage == "pickle_only":
        (bad / "model.safetensors").unlink()
        (bad / "model.pt").write_bytes(b"pickle")
    elif damage == "no_config":
        (bad / "config.json").unlink()
    elif damage == "wrong_weights":
        cfg = json.loads((bad / "config.json").read_text())
        cfg["architecture"]["params"]["features"] = [6, 12]
        (bad / "config.json").write_text(json.dumps(cfg))
    elif damage == "unknown_kind":
        cfg = json.loads((bad / "config.json").read_text())
        cfg["kind"] = "classifier"
        (bad / "config.json").write_text(json.dumps(cfg))
    before = defaults_path().read_text()
    with pytest.raises(ModelError):
        promote(bad)
    assert defaults_path().read_text() == before and resolve_model(None, "segmenter") == good.resolve()


def test_a_vanished_or_damaged_pointer_falls_back_to_the_demo_with_a_warning(home, tmp_path):
    promote(segmenter(tmp_path / "gone"))
    shutil.rmtree(tmp_path / "gone")
    with pytest.warns(UserWarning, match="is gone"):
        assert resolve_model(None, "segmenter") == SHIPPED / "unet-demo"
    defaults_path().write_text("{not json")
    with pytest.warns(UserWarning, match="damaged"):
        assert resolve_model(None, "landmarks") == SHIPPED / "dst-demo"
    with pytest.raises(ModelError, match="damaged"):
        promote(segmenter(tmp_path / "new"))


def test_cli_promote_rollback_exit_codes_and_listing(home, tmp_path, capsys):
    folder = segmenter(tmp_path / "cli-unet", "1.3")
    assert main(["models", "rollback", "landmarks"]) == 2
    assert "no earlier default landmarks" in capsys.readouterr().err
    assert main(["models", "promote", str(tmp_path / "nowhere")]) == 2
    assert main(["models", "promote", str(folder)]) == 0
    assert "default segmenter model is now" in capsys.readouterr().out
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    marked = [line for line in lines if line.endswith("[default]")]
    assert len(marked) == 2 and any(str(folder.resolve()) in m for m in marked)  # listed although off the path
    assert not any(line.endswith("[default]") and "unet-demo" in line for line in lines)
    assert main(["models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {m["path"] for m in listing if m["default"]} == {str(folder.resolve()), str(SHIPPED / "dst-demo")}
    assert main(["models", "rollback", "segmenter"]) == 0
    assert "shipped demo model" in capsys.readouterr().out
    assert resolve_model(None, "segmenter") == SHIPPED / "unet-demo"
