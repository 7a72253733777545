"""Tiny end-to-end training runs: both trainers write loadable model folders with metrics and a model card."""

import json

import numpy as np

from iacseg.core.plane import MidsagittalPlane
from iacseg.core.contracts import LANDMARKS
from iacseg.io.volume import CTVolume
from iacseg.core.grid import Grid
from iacseg.models.segmenter import CalcificationSegmenter
from iacseg.models.localiser import LandmarkLocaliser
from iacseg.core.landmarks import Landmark
from iacseg.train.data import Case, landmark_slices
from iacseg.train.landmarks import random_crop, LandmarkCase, train_landmarks
from iacseg.train.segmenter import train_segmenter


def toy_case(seed: int) -> Case:
    """A 24×48×48 'head' (1 mm in-plane, 2 mm slices): soft tissue, a bone slab, calcium blobs, a bright
    landmark slice whose height depends on the seed."""
    rng = np.random.default_rng(seed)
    hu = rng.normal(35, 8, (24, 48, 48)).astype(np.float32)
    labels = np.zeros(hu.shape, np.uint8)
    hu[6:9, 10:38, 30:34] = 900.0  # bone
    for _ in range(3):
        k, j, i = rng.integers(4, 20), rng.integers(8, 40), rng.integers(8, 28)
        hu[k:k + 2, j:j + 2, i:i + 2] = 450.0
        labels[k:k + 2, j:j + 2, i:i + 2] = 2
    grid = Grid(hu.shape, (1.0, 1.0, 2.0), (-24.0, -24.0, -20.0))
    k_mark = 8 + seed % 6
    hu[k_mark, 20:28, 20:28] = 1500.0
    z = -20.0 + (k_mark - 0.5) * 2.0
    lms = {n: Landmark(n, z + (0.0 if "canal" in n else 2.0 if "petro" in n else 4.0), (0.0, 0.0, z))
           for n in LANDMARKS}
    return Case(f"toy_{seed}", CTVolume(hu, grid), labels, lms, MidsagittalPlane((0.0, 0.0, 0.0), (1.0, 0.0, 0.0)))


def test_train_segmenter_writes_a_loadable_calibrated_model(tmp_path):
    cases = [toy_case(s) for s in range(3)]
    reports = []
    out = train_segmenter(cases, tmp_path / "unet", epochs=2, steps_per_epoch=3, patch=(8, 16, 16), batch=2,
                          lr=1e-3, device="cpu", seed=0, val_fraction=0.34, val_every=1,
                          features=(4, 8), strides=((1, 1, 1), (1, 2, 2)), blocks=(1, 1), roi_jitter_mm=2.0,
                          progress=lambda stage, f, msg="": reports.append((stage, f, msg)))
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == "segmenter" and cfg["training"]["n_val"] == 1
    assert 0.0 <= cfg["metrics"]["val_dice_mean"] <= 1.0 and 0.01 <= cfg["threshold"] <= 0.99
    assert cfg["threshold"] == cfg["metrics"]["threshold"]  # the validation cases' calibrated threshold
    assert cfg["architecture"]["params"]["deep_supervision"] is False
    assert [r for r in reports if r[0] == "train"][-1][1] == 1.0
    assert "val_dice_mean" in (out / "MODEL_CARD.md").read_text()
    seg = CalcificationSegmenter.load(out)
    prob = seg.predict_proba(cases[0].ct)
    assert prob.shape == cases[0].ct.hu.shape and np.isfinite(prob).all()


def test_train_landmarks_writes_a_loadable_model(tmp_path):
    cases = [toy_case(s) for s in range(4)]
    out = train_landmarks(cases, tmp_path / "dst", epochs=2, batch=2, lr=1e-3, device="cpu", seed=0,
                          val_fraction=0.25, val_every=1, encoder_features=(4, 8), dim=16, depth=1, heads=2,
                          max_slices=32, fov_mm=48.0, size=16)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == "landmarks" and cfg["landmarks"] == list(LANDMARKS)
    assert cfg["metrics"]["val_mae_slices"] >= 0 and 0 <= cfg["metrics"]["val_within_1_slice"] <= 1
    loc = LandmarkLocaliser.load(out)
    lms = loc.predict(cases[0].ct, cases[0].plane)
    assert set(lms) == set(LANDMARKS)


def test_targets_follow_the_slice_convention_and_crops_keep_them():
    case = toy_case(3)
    k = landmark_slices(case, LANDMARKS)
    assert k[0] == 8 + 3  # the canal plane lies half a slice below the marked slice
    lc = LandmarkCase("x", np.zeros((24, 4, 4), np.int16), k, 2.0)
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = random_crop(lc, rng, margin=2)
        assert a <= k.min() - 2 or a == 0
        assert b >= k.max() + 3 or b == 24


def test_fine_tuning_starts_from_the_parent_and_records_it(tmp_path):
    import pytest

    from iacseg.core.errors import InputError
    from iacseg.models.loading import load_state
    from iacseg.core.files import sha256_of

    cases = [toy_case(s) for s in range(3)]
    tiny = dict(patch=(8, 16, 16), batch=2, device="cpu", val_fraction=0.34, features=(4, 8),
                strides=((1, 1, 1), (1, 2, 2)), blocks=(1, 1))
    parent = train_segmenter(cases, tmp_path / "parent", epochs=1, steps_per_epoch=2, **tiny)
    # lr=0 and one step: the child's weights are the parent's, whatever widths the call asks for
    child = train_segmenter(cases, tmp_path / "child", epochs=1, steps_per_epoch=1, lr=0.0, init=parent,
                            **{**tiny, "features": (6, 12)})
    cfg = json.loads((child / "config.json").read_text())
    assert cfg["architecture"]["params"]["features"] == [4, 8]
    assert cfg["training"]["hyperparameters"]["parent"]["sha256"] == sha256_of(parent / "model.safetensors")
    a, b = load_state(parent), load_state(child)
    assert a.keys() == b.keys() and all(np.allclose(a[k].numpy(), b[k].numpy()) for k in a)
    (tmp_path / "broken").mkdir()
    wrong = json.loads((parent / "config.json").read_text())
    wrong["architecture"]["params"]["features"] = [6, 12]
    (tmp_path / "broken" / "config.json").write_text(json.dumps(wrong))
    (tmp_path / "broken" / "model.safetensors").write_bytes((parent / "model.safetensors").read_bytes())
    with pytest.raises(InputError, match="do not match"):
        train_segmenter(cases, tmp_path / "bad", epochs=1, steps_per_epoch=1, init=tmp_path / "broken", **tiny)
