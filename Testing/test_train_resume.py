"""Checkpoints and resume (iacseg.train.checkpoint): an interrupted tiny training, resumed, ends with exactly the
weights of an uninterrupted one; a checkpoint of another training is refused, and without resume a training starts
afresh and says so."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from iacseg.core.errors import InputError
from iacseg.models.loading import load_state
from iacseg.train.checkpoint import checkpoint_dir, interval
from iacseg.train.landmarks import train_landmarks
from iacseg.train.segmenter import train_segmenter
from test_train_models import toy_case

SEG = dict(epochs=3, steps_per_epoch=2, patch=(8, 16, 16), batch=2, lr=1e-3, device="cpu", seed=5,
           val_fraction=0.34, val_every=1, features=(4, 8), strides=((1, 1, 1), (1, 2, 2)), blocks=(1, 1))
DST = dict(epochs=3, batch=2, lr=1e-3, device="cpu", seed=5, val_fraction=0.25, val_every=1, encoder_features=(4, 8),
           dim=16, depth=1, heads=2, max_slices=32, fov_mm=48.0, size=16)
# every augmentation on, so that resuming must replay the MONAI transforms' random draws too
ALL_SEG = {k: 0.5 for k in ("affine", "elastic", "blur", "sharpen", "low_resolution", "thick_slab", "noise",
                            "correlated_noise", "hu_field", "gamma")}
ALL_DST = {**{k: 0.5 for k in ALL_SEG if k != "elastic"}, "slice_thickness": 0.5}


class Interrupted(Exception):
    pass


def stop_after_epoch(n: int):
    def progress(stage, fraction, message=""):
        if stage == "train" and message.startswith(f"epoch {n}/"):
            raise Interrupted(message)
    return progress


@pytest.fixture(scope="module")
def cases():
    return [toy_case(s) for s in range(4)]


def same_weights(a, b) -> bool:
    wa, wb = load_state(a), load_state(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def config(folder):
    return json.loads((folder / "config.json").read_text())


@pytest.mark.parametrize("every", ["epoch", 3])  # 3 steps: the checkpoint falls inside the second epoch
def test_resumed_segmenter_ends_with_the_uninterrupted_weights(tmp_path, cases, every):
    hp = {**SEG, "augment_p": ALL_SEG}
    whole = train_segmenter(cases, tmp_path / "whole", **hp)
    out = tmp_path / "resumed"
    with pytest.raises(Interrupted):
        train_segmenter(cases, out, checkpoint_every=every, progress=stop_after_epoch(2), **hp)
    ckpt = checkpoint_dir(out)
    assert not out.exists() and sorted(p.name for p in ckpt.iterdir()) == \
        ["best.safetensors", "model.safetensors", "optimizer.pt", "state.json"]
    state = json.loads((ckpt / "state.json").read_text())
    assert state["loop"]["step"] == (4 if every == "epoch" else 3)
    messages = []
    resumed = train_segmenter(cases, out, checkpoint_every=every, resume=True,
                              progress=lambda s, f, m="": messages.append(m), **hp)
    assert any(m.startswith("resuming from") for m in messages)
    assert same_weights(whole, resumed)
    a, b = config(whole), config(resumed)
    assert a["metrics"] == b["metrics"] and a["threshold"] == b["threshold"]
    assert b["training"]["steps"] == 6 and b["training"]["augmentation"]["mode"] == "monai"
    assert "## Augmentation" in (resumed / "MODEL_CARD.md").read_text()
    assert not ckpt.exists() and not list(tmp_path.glob(".*"))


def test_resumed_localiser_ends_with_the_uninterrupted_weights(tmp_path, cases):
    hp = {**DST, "augment_p": ALL_DST}
    whole = train_landmarks(cases, tmp_path / "whole", **hp)
    out = tmp_path / "resumed"
    with pytest.raises(Interrupted):
        train_landmarks(cases, out, progress=stop_after_epoch(1), **hp)
    resumed = train_landmarks(cases, out, resume=True, **hp)
    assert same_weights(whole, resumed) and config(whole)["metrics"] == config(resumed)["metrics"]
    assert not checkpoint_dir(out).exists()


def test_a_checkpoint_of_another_training_is_refused(tmp_path, cases, monkeypatch):
    out = tmp_path / "m"
    with pytest.raises(Interrupted):
        train_segmenter(cases, out, progress=stop_after_epoch(1), **SEG)
    with pytest.raises(InputError, match="different training .*patch"):
        train_segmenter(cases, out, resume=True, **{**SEG, "patch": (8, 8, 8)})
    with pytest.raises(InputError, match="training_data"):
        train_segmenter(cases[:3] + [toy_case(9)], out, resume=True, **SEG)
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(k) or real_load(*a, **k))
    # settings that do not change the weights may differ
    train_segmenter(cases, out, resume=True, checkpoint_every=5, name="renamed", **SEG)
    assert loads and all(k.get("weights_only") is True for k in loads)
    assert config(out)["name"] == "renamed" and not checkpoint_dir(out).exists()


def test_without_resume_a_leftover_checkpoint_is_replaced(tmp_path, cases):
    whole = train_landmarks(cases, tmp_path / "whole", **DST)
    out = tmp_path / "again"
    with pytest.raises(Interrupted):  # a run that stops after its first checkpoint …
        train_landmarks(cases, out, progress=stop_after_epoch(1), **{**DST, "lr": 5e-2})
    messages = []  # … is not continued by a call without resume: it starts afresh and says so
    again = train_landmarks(cases, out, progress=lambda s, f, m="": messages.append(m), **DST)
    assert any(m.startswith("starting afresh") and "epoch 2, step 2" in m for m in messages)
    assert same_weights(whole, again) and not checkpoint_dir(out).exists()


def test_resume_without_a_checkpoint_trains_from_the_start(tmp_path, cases):
    messages = []
    out = train_landmarks(cases, tmp_path / "m", resume=True, progress=lambda s, f, m="": messages.append(m),
                          **{**DST, "epochs": 1})
    assert any("training from the start" in m for m in messages) and (out / "config.json").is_file()
    assert interval("epoch") == ("epoch", 1) and interval(10) == ("steps", 10) and interval("none") == ("off", 0)
    with pytest.raises(InputError, match="checkpoint_every"):
        interval("often")


def test_the_cli_passes_resume_checkpoint_and_augment_options(tmp_path, monkeypatch, capsys):
    import iacseg.train.segmenter as segmenter
    from iacseg.cli.main import main

    out = tmp_path / "M"
    assert main(["train", "segmenter", "--phantoms", "2", "-o", str(out), "--checkpoint-every", "often"]) == 2
    assert "--checkpoint-every" in capsys.readouterr().err
    calls = []
    monkeypatch.setattr(segmenter, "train_segmenter", lambda data, o, **kw: calls.append(kw) or o)
    assert main(["train", "segmenter", "--phantoms", "2", "-o", str(out), "--resume", "--checkpoint-every", "25",
                 "--augment", "none", "--progress", "none"]) == 0
    assert (calls[0]["resume"], calls[0]["checkpoint_every"], calls[0]["augment"]) == (True, 25, "none")


def test_prepared_cases_round_trip_through_the_npz_cache(tmp_path):
    from iacseg.models.localiser import DEFAULT_LOCALISER_INPUT
    from iacseg.train.case_cache import load_cases, save_cases
    from iacseg.train.landmarks import LandmarkCase, prepare_landmark_case
    from iacseg.train.segmenter import SegmenterCase, prepare_segmenter_case

    case = toy_case(2)
    seg = prepare_segmenter_case(case, (8, 16, 16), np.random.default_rng(0), 2.0)
    lm = prepare_landmark_case(case, {**DEFAULT_LOCALISER_INPUT, "fov_mm": 48.0, "size": 16}, 32)
    kinds = {"segmenter": SegmenterCase, "landmarks": LandmarkCase}
    path = save_cases(tmp_path / "c" / "x.npz", {"segmenter": seg, "landmarks": lm}, {"seed": 2, "patch": (8, 16, 16)})
    back = load_cases(path, kinds, {"seed": 2, "patch": [8, 16, 16]})
    assert back is not None
    for a, b in ((seg, back["segmenter"]), (lm, back["landmarks"])):
        for f in a.__dataclass_fields__:
            x, y = getattr(a, f), getattr(b, f)
            assert (np.array_equal(x, y) and x.dtype == y.dtype) if isinstance(x, np.ndarray) else x == y, f
    assert load_cases(path, kinds, {"seed": 3, "patch": [8, 16, 16]}) is None  # made otherwise: not reused
    assert load_cases(tmp_path / "missing.npz", kinds, {}) is None
    assert [p.name for p in path.parent.iterdir()] == ["x.npz"]


def test_training_seeds_are_spread_over_the_families_and_unknown_families_are_refused():
    from iacseg.train.phantom_cases import check_families, describe_jobs, family_of, phantom_options

    families = ["soft", "bone", "thick", "aged", "classic"]
    assert [family_of(n, families) for n in range(6)] == families + families[:1]
    jobs = [(s, family_of(n, families)) for n, s in enumerate(range(10, 30))]
    text = describe_jobs(jobs, 7)
    assert "soft: 4 (seeds 10, 15, …, 25" in text and "classic: 4 (seeds 14, 19" in text
    check_families(["classic", "soft"])
    with pytest.raises(ValueError, match="unknown phantom families"):
        check_families(["soft", "cartoon"])
    assert phantom_options(10, "classic", 7) == {"family": "classic", "tilt_deg": 20.0}  # 10 % 7 == 3
    assert phantom_options(10, "thick", 7) == {"family": "thick"}  # randomised families draw their own tilt
