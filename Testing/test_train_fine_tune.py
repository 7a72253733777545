"""Trainer options the corrections store relies on: a given validation set, fine-tuned versions, landmark init."""

from __future__ import annotations

import json

import numpy as np
import pytest

from iacseg.core.errors import InputError
from iacseg.models.loading import load_state
from iacseg.train.common import next_version
from iacseg.train.landmarks import train_landmarks
from iacseg.train.segmenter import train_segmenter
from test_train_models import toy_case

SEG = dict(epochs=1, steps_per_epoch=1, patch=(8, 16, 16), batch=2, device="cpu", features=(4, 8),
           strides=((1, 1, 1), (1, 2, 2)), blocks=(1, 1))
DST = dict(epochs=1, batch=2, device="cpu", encoder_features=(4, 8), dim=16, depth=1, heads=2, max_slices=32,
           fov_mm=48.0, size=16)


def config(folder):
    return json.loads((folder / "config.json").read_text())


@pytest.mark.parametrize("parent, child", [("1.0", "1.1"), ("1.9", "1.10"), ("2", "3"), ("1.0-rc", "1.0-rc.1"),
                                           (None, "1.1")])
def test_next_version_bumps_the_last_number(parent, child):
    assert next_version(parent) == child


def test_given_validation_cases_are_used_and_all_data_trains(tmp_path):
    out = train_segmenter([toy_case(s) for s in range(2)], tmp_path / "m", val_data=[toy_case(7)],
                          val_fraction=0.5, **SEG)
    training = config(out)["training"]
    assert (training["n_train"], training["n_val"], training["validation"]) == (2, 1, "given cases")
    assert config(out)["metrics"]["val_cases"] == 1 and config(out)["version"] == "1.0"
    out = train_landmarks([toy_case(s) for s in range(2)], tmp_path / "l", val_data=[toy_case(5), toy_case(6)], **DST)
    assert (config(out)["training"]["n_train"], config(out)["metrics"]["val_cases"]) == (2, 2)


def test_a_fine_tune_takes_the_parents_name_and_next_version_unless_given(tmp_path):
    cases = [toy_case(s) for s in range(3)]
    parent = train_segmenter(cases, tmp_path / "p", name="site-unet", version="1.4", val_fraction=0.34, **SEG)
    child = train_segmenter(cases, tmp_path / "c", init=parent, val_fraction=0.34, **SEG)
    assert (config(child)["name"], config(child)["version"]) == ("site-unet", "1.5")
    named = train_segmenter(cases, tmp_path / "n", init=parent, name="x", version="2.0", val_fraction=0.34, **SEG)
    assert (config(named)["name"], config(named)["version"]) == ("x", "2.0")


def test_the_localiser_fine_tunes_from_its_parent(tmp_path):
    cases = [toy_case(s) for s in range(3)]
    parent = train_landmarks(cases, tmp_path / "p", val_fraction=0.34, **DST)
    # lr=0: the child's weights are the parent's, whatever architecture the call asks for
    child = train_landmarks(cases, tmp_path / "c", init=parent, val_fraction=0.34, **{**DST, "lr": 0.0, "dim": 32})
    a, b = load_state(parent), load_state(child)
    assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    cfg = config(child)
    assert cfg["version"] == "1.1" and cfg["name"] == "dst-demo" and cfg["architecture"]["params"]["dim"] == 16
    assert cfg["training"]["hyperparameters"]["parent"]["version"] == "1.0"
    segmenter = train_segmenter(cases, tmp_path / "s", val_fraction=0.34, **SEG)
    with pytest.raises(InputError, match="not a landmark"):
        train_landmarks(cases, tmp_path / "bad", init=segmenter, **DST)


def test_train_from_store_passes_the_options_and_prints_the_summary(tmp_path, monkeypatch, capsys):
    import iacseg.store.training as store_training
    from iacseg.cli.main import main

    calls = []

    def fake_retrain(what, store_root, **kwargs):
        calls.append((what, store_root, kwargs))
        return {"model": str(kwargs["out"]), "version": "1.1", "improved": True}

    monkeypatch.setattr(store_training, "retrain_from_store", fake_retrain)
    code = main(["train", "landmarks", "--from-store", str(tmp_path / "S"), "--init", "dst-demo", "-o",
                 str(tmp_path / "new"), "--epochs", "3", "--version", "1.1", "--progress", "none"])
    assert code == 0
    what, root, kwargs = calls[0]
    assert (what, root, kwargs["init"], kwargs["epochs"], kwargs["version"]) == \
        ("landmarks", str(tmp_path / "S"), "dst-demo", 3, "1.1")
    assert json.loads(capsys.readouterr().out) == {"model": str(tmp_path / "new"), "version": "1.1",
                                                   "improved": True}
