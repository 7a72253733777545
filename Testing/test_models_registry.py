"""Model folders: safetensors round trip, refusing pickle weights, hashes and the model search path."""

import json

import pytest
import torch

from iacseg.core.errors import ModelError
from iacseg.models.folders import CONFIG_FILE, WEIGHTS_FILE, find_models
from iacseg.models.loading import load_model, save_model
from iacseg.models.defaults import resolve_model
from iacseg.core.files import sha256_of
from iacseg.models.networks.unet import ResEncUNet

PARAMS = {"in_channels": 2, "features": [4, 8], "strides": [[1, 1, 1], [1, 2, 2]], "blocks": [1, 1]}


def config(name="toy-unet"):
    return {"name": name, "version": "0.1", "kind": "segmenter",
            "architecture": {"name": "ResEncUNet", "params": PARAMS}, "threshold": 0.4}


def saved(tmp_path, name="toy-unet"):
    torch.manual_seed(1)
    net = ResEncUNet(**PARAMS).eval()
    folder = save_model(tmp_path / name, net, config(name), "# toy\n")
    return net, folder


def test_round_trip_gives_identical_outputs_and_records_the_hash(tmp_path):
    net, folder = saved(tmp_path)
    loaded, cfg = load_model(folder)
    x = torch.randn(1, 2, 4, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(x), loaded(x))
    assert cfg["sha256"] == sha256_of(folder / WEIGHTS_FILE)
    on_disk = json.loads((folder / CONFIG_FILE).read_text())
    assert on_disk["sha256"] == cfg["sha256"] and on_disk["threshold"] == 0.4
    assert "not for clinical use" in on_disk["disclaimer"]
    assert (folder / "MODEL_CARD.md").read_text() == "# toy\n"


def test_hash_is_stable_across_saves_of_the_same_weights(tmp_path):
    _, a = saved(tmp_path, "a")
    _, b = saved(tmp_path, "b")
    assert sha256_of(a / WEIGHTS_FILE) == sha256_of(b / WEIGHTS_FILE)


def test_a_folder_with_only_pickle_weights_is_refused_without_loading_it(tmp_path, monkeypatch):
    folder = tmp_path / "legacy"
    folder.mkdir()
    (folder / "model.pt").write_bytes(b"not really a pickle")
    (folder / CONFIG_FILE).write_text(json.dumps(config()))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load must never be called"))
    with pytest.raises(ModelError, match="only pickle-based weights.*convert to safetensors"):
        load_model(folder)


def test_wrong_kind_and_unknown_architecture_are_model_errors(tmp_path):
    _, folder = saved(tmp_path)
    with pytest.raises(ModelError, match="landmarks"):
        load_model(folder, kind="landmarks")
    cfg = json.loads((folder / CONFIG_FILE).read_text())
    cfg["architecture"]["name"] = "Mystery"
    (folder / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="unknown model architecture"):
        load_model(folder)


def test_models_are_found_by_name_on_the_search_path(tmp_path, monkeypatch):
    _, folder = saved(tmp_path, "my-unet")
    monkeypatch.setenv("IACSEG_MODEL_PATH", str(tmp_path))
    assert resolve_model("my-unet", "segmenter") == folder
    assert resolve_model(str(folder), "segmenter") == folder
    assert any(m["name"] == "my-unet" and m["kind"] == "segmenter" for m in find_models())
    with pytest.raises(ModelError, match="IACSEG_MODEL_PATH"):
        resolve_model("no-such-model", "segmenter")
