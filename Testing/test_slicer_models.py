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
from IACSegLib.model_list import iacseg_home, list_models, model_search_dirs, user_models_dir  # noqa: E402

ENGINE_DIR = ROOT / "IACSegExtension"
SHIPPED_SEGMENTER = ROOT / "IACSegExtension" / "iacseg" / "models" / "shipped" / "unet-demo"
SHIPPED_LOCALISER = ROOT / "IACSegExtension" / "iacseg" / "models" / "shipped" / "dst-demo"


def fake_model(folder: Path, kind: str = "segmenter", version: str = "9.0") -> Path:
    """A usable model folder under another name (a copy of a shipped one; the panel only lists it)."""
    source = SHIPPED_SEGMENTER if kind == "segmenter" else SHIPPED_LOCALISER
    folder.mkdir(parents=True)
    for f in source.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    config.update(name=folder.name, version=version)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("IACSEG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("IACSEG_MODEL_PATH", raising=False)
    return tmp_path / "home"


def test_user_models_follow_iacseg_home_like_the_engine(home: Path) -> None:
    assert iacseg_home() == iacseg.core.locations.iacseg_home() == home
    assert user_models_dir() == iacseg.core.locations.user_models_dir() == home / "models"
    assert model_search_dirs()[0] == home / "models"


def test_without_iacseg_home_the_user_models_are_in_the_home_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("IACSEG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_models_dir() == iacseg.core.locations.user_models_dir() == tmp_path / ".iacseg" / "models"
    monkeypatch.setenv("IACSEG_HOME", "")  # empty counts as unset, as in the engine
    assert user_models_dir() == iacseg.core.locations.user_models_dir() == tmp_path / ".iacseg" / "models"
    monkeypatch.setenv("IACSEG_HOME", str(tmp_path / "other"))
    assert user_models_dir() == tmp_path / "other" / "models"  # read when called, not when imported


def test_the_list_holds_the_users_models_and_the_shipped_ones(home: Path) -> None:
    fake_model(home / "models" / "my-unet")
    fake_model(home / "models" / "my-dst", kind="landmarks")
    assert engine.engine_source_dir(MODULE) == ENGINE_DIR  # the checkout's engine, as the module finds it
    assert model_search_dirs() == [home / "models", iacseg.core.locations.shipped_models_dir()]
    segmenters = {m.name: m for m in list_models("segmenter")}
    assert set(segmenters) == {"my-unet", "unet-demo"}
    assert segmenters["my-unet"].path == (home / "models" / "my-unet").resolve()
    assert segmenters["my-unet"].title == "my-unet 9.0"
    assert segmenters["unet-demo"].path.parent.resolve() == iacseg.core.locations.shipped_models_dir()
    assert {m.name for m in list_models("landmarks")} == {"my-dst", "dst-demo"}


def test_the_panel_lists_what_the_engine_would_load_and_skips_damaged_folders(home: Path) -> None:
    """The list is the engine's lookup: a folder whose config the engine refuses is not offered, with a reason."""
    broken = fake_model(home / "models" / "broken-unet")
    (broken / "config.json").write_text(json.dumps({"name": "broken-unet", "version": "1", "kind": "segmenter"}))
    extra = fake_model(home / "elsewhere" / "extra-unet")
    skipped: list[str] = []
    names = [m.name for m in list_models("segmenter", extra=[extra.parent], skipped=skipped)]
    assert names == ["extra-unet", "unet-demo"]
    assert len(skipped) == 1 and "broken-unet" in skipped[0]


def test_without_user_models_only_the_shipped_models_are_listed(home: Path) -> None:
    assert [m.name for m in list_models("segmenter")] == ["unet-demo"]
    assert [m.name for m in list_models("landmarks")] == ["dst-demo"]


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
