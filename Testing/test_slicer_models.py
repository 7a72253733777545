"""The Slicer module's model list follows the engine's rules: ``$IACSEG_HOME/models`` (``~/.iacseg/models`` when it
is unset) and the shipped models, package data of the engine (``iacseg/models/shipped``); retraining writes into
``$IACSEG_HOME/models`` (Qt and Slicer played by ``IACSegModule/Testing/slicer_stand_ins.py``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "IACSegModule"
sys.path[:0] = [str(MODULE), str(MODULE / "Testing")]

import iacseg.core.locations  # noqa: E402
import slicer_stand_ins as stand_ins  # noqa: E402
from IACSegLib import engine  # noqa: E402
from IACSegLib.models import find_models, iacseg_home, model_search_dirs, user_models_dir  # noqa: E402

ENGINE_DIR = ROOT / "IACSegExtension"


def fake_model(folder: Path, kind: str = "segmenter", version: str = "9.0") -> Path:
    """A model folder as the panel lists it (config.json + a weights file; never loaded here)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"name": folder.name, "version": version, "kind": kind}))
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    return folder


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("IACSEG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("IACSEG_MODEL_PATH", raising=False)
    return tmp_path / "home"


def test_user_models_follow_iacseg_home_like_the_engine(home: Path) -> None:
    assert iacseg_home() == iacseg.core.locations.iacseg_home() == home
    assert user_models_dir() == iacseg.core.locations.user_models_dir() == home / "models"
    assert model_search_dirs(None)[0] == home / "models"


def test_without_iacseg_home_the_user_models_are_in_the_home_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("IACSEG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_models_dir() == iacseg.core.locations.user_models_dir() == tmp_path / ".iacseg" / "models"
    monkeypatch.setenv("IACSEG_HOME", "")  # empty counts as unset, as in the engine
    assert user_models_dir() == iacseg.core.locations.user_models_dir() == tmp_path / ".iacseg" / "models"


def test_the_same_rule_applies_when_the_engine_cannot_be_imported(home, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "iacseg.core.locations", None)  # `from iacseg.core.locations import …` fails
    assert iacseg_home() == home and user_models_dir() == home / "models"
    assert model_search_dirs(None) == [home / "models"]  # no engine: only the user's folder
    monkeypatch.setenv("IACSEG_HOME", str(home / "other"))
    assert user_models_dir() == home / "other" / "models"  # read when called, not when imported


def test_the_list_holds_the_users_models_and_the_shipped_ones(home: Path) -> None:
    fake_model(home / "models" / "my-unet")
    fake_model(home / "models" / "my-dst", kind="landmarks")
    assert engine.engine_source_dir(MODULE) == ENGINE_DIR  # the checkout's engine, as the module finds it
    dirs = model_search_dirs(ENGINE_DIR)
    assert dirs[:2] == [home / "models", ENGINE_DIR / "iacseg" / "models" / "shipped"]
    segmenters = {m.name: m for m in find_models(dirs, "segmenter")}
    assert set(segmenters) == {"my-unet", "unet-demo"}
    assert segmenters["my-unet"].path == home / "models" / "my-unet" and segmenters["my-unet"].title == "my-unet 9.0"
    assert segmenters["unet-demo"].path.parent.resolve() == iacseg.core.locations.shipped_models_dir()
    assert {m.name for m in find_models(dirs, "landmarks")} == {"my-dst", "dst-demo"}


def test_without_an_engine_folder_the_importable_engines_shipped_models_are_listed(home: Path) -> None:
    assert model_search_dirs(None) == [home / "models", iacseg.core.locations.shipped_models_dir()]
    assert [m.name for m in find_models(model_search_dirs(None), "segmenter")] == ["unet-demo"]


class RecordingLogic(stand_ins.FakeLogic):
    def __init__(self) -> None:  # nothing loaded: the panel only starts a training run here
        self.started = []

    def storePath(self) -> str:
        return "/no/store"

    def startTraining(self, params, on_progress, on_finished) -> None:
        self.started.append(params)


def test_the_panel_lists_iacseg_home_models_and_retrains_into_them(home: Path, monkeypatch) -> None:
    fake_model(home / "models" / "my-unet")
    widget = stand_ins.install(monkeypatch)
    ui, logic = stand_ins.FakeUI(), RecordingLogic()
    ui.trainDataPathLineEdit.currentPath = ""
    panel = widget.ReviewPanel(ui, logic, ENGINE_DIR)
    assert ui.modelComboBox.items[0] == "bundled demo model" and "my-unet 9.0" in ui.modelComboBox.items
    ui.trainTargetComboBox.currentText = "landmarks"
    panel.onRetrain()
    assert not sys.modules["slicer"].errors
    (params,) = logic.started
    assert params.model_dir.parent == home / "models" and params.model_dir.name.startswith("landmarks-")
