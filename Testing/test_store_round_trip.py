"""The corrections loop end to end: segment phantoms → a reader corrects a landmark and a lesion in the module's
review session → saves into the store → approves → export → fine-tune a tiny step from the shipped segmenter
on the store (``iacseg train --from-store``) → the new version is listed, compared with its parent on the store's
test split, and the old model still loads (and comes back with ``iacseg models rollback``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

MODULE = Path(__file__).resolve().parents[1] / "IACSegModule"
sys.path[:0] = [str(MODULE)]

from iacseg.cli.main import main  # noqa: E402
from iacseg.io.writers import write_image  # noqa: E402
from iacseg.models.folders import find_models, read_config
from iacseg.models.loading import load_model
from iacseg.models.defaults import resolve_model  # noqa: E402
from iacseg.phantom import make_phantom  # noqa: E402
from iacseg.pipeline import SegmentOptions, segment_case  # noqa: E402
from iacseg.store import CorrectionStore  # noqa: E402
from iacseg.store.export import export_training_set  # noqa: E402
from iacseg.store.layout import split_of_subject, subject_hash  # noqa: E402
from IACSegLib.corrections import save_correction  # noqa: E402
from IACSegLib.results import load_case_result  # noqa: E402
from IACSegLib.review import ReviewSession  # noqa: E402

SEEDS = {"train": 33, "val": 31, "test": 32}  # small 5 mm phantoms (192²) with calcium


def _subject_for(store: CorrectionStore, split: str) -> str:
    """A patient key that the store's fixed split puts in ``split``."""
    info = json.loads((store.root / "store.json").read_text())
    for n in range(1000):
        key = f"patient-{n}"
        if split_of_subject(info["salt"], subject_hash(info["salt"], key), info["split"]) == split:
            return key
    raise AssertionError(f"no subject lands in {split}")


def _segmented_phantom(folder: Path, seed: int) -> tuple[Path, Path, np.ndarray]:
    ph = make_phantom(seed, slice_mm=5.0, matrix=192)
    folder.mkdir(parents=True)
    ct = write_image(folder / "ct.nii.gz", ph.ct.hu.astype(np.int16), ph.ct.grid)
    segment_case(ct, folder / "out", SegmentOptions(device="cpu"))
    return ct, folder / "out", ph.labels


def _review(out: Path, truth: np.ndarray, reader: str) -> ReviewSession:
    """What a reader does: move the left petrolingual plane and fix a lesion (paint a missed one, else delete)."""
    result = load_case_result(out)
    session = ReviewSession(result.labels, result.grid, result.plane, result.landmarks, reader=reader)
    lms = result.landmarks
    session.move_landmark("L_petrolingual", z_mm=(lms["L_carotid_canal"].z_mm + lms["L_petrolingual"].z_mm) / 2)
    missed = (truth > 0) & (result.labels == 0)
    if missed.any():
        session.add_lesion(missed)
    else:
        session.delete_lesion(1)
    return session


@pytest.mark.slow
def test_correct_save_export_retrain_and_roll_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IACSEG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("IACSEG_MODEL_PATH", str(tmp_path / "models"))
    store = CorrectionStore.init(tmp_path / "store")
    ids = {}
    for split, seed in SEEDS.items():
        ct, out, truth = _segmented_phantom(tmp_path / split, seed)
        ids[split] = store.add_case(ct, out, subject=_subject_for(store, split))
        saved = save_correction(store.root, _review(out, truth, "Dr A"), image=ct, engine_output=out,
                                case_id=ids[split])
        assert (saved.case_id, saved.version) == (ids[split], 1)
        store.set_status(ids[split], "approved", "Dr B")
    assert {c.case_id: c.split for c in store.cases()} == {v: k for k, v in ids.items()}
    kinds = [e["kind"] for e in store.ledger()]
    assert kinds.count("landmark_moved") == 3 and kinds.count("lesion_added") + kinds.count("lesion_deleted") == 3
    assert store.verify().ok

    dataset = export_training_set(store, tmp_path / "export")
    assert sorted(p.name for p in (dataset / "imagesTr").iterdir()) == sorted(
        f"{ids[s]}_0000.nii.gz" for s in ("train", "val"))
    assert [p.name for p in (dataset / "imagesTs").iterdir()] == [f"{ids['test']}_0000.nii.gz"]

    parent = resolve_model(None, "segmenter")
    new = tmp_path / "models" / "unet-store"
    code = main(["train", "segmenter", "--from-store", str(store.root), "--init", str(parent), "-o", str(new),
                 "--epochs", "1", "--steps-per-epoch", "2", "--patch", "16", "32", "32", "--batch", "1",
                 "--device", "cpu", "--progress", "none"])
    assert code == 0
    config = read_config(new)
    parent_config = read_config(parent)
    assert config["version"] != parent_config["version"]  # a new version, named after its parent
    assert config["training"]["hyperparameters"]["parent"]["sha256"] == parent_config["sha256"]
    evaluation = config["store_evaluation"]
    assert evaluation["cases"] == {"train": [ids["train"]], "val": [ids["val"]], "test": [ids["test"]]}
    for which in ("parent", "new"):
        assert 0.0 <= evaluation["test"][which]["cases"][ids["test"]]["dice"] <= 1.0
    assert "Retrained from a corrections store" in (new / "MODEL_CARD.md").read_text()

    listed = {Path(m["path"]).resolve() for m in find_models()}
    assert {new.resolve(), parent.resolve()} <= listed  # the new version is listed beside the old one
    load_model(parent)  # the old one still loads
    load_model(new)
    assert main(["models", "promote", str(new)]) == 0
    assert resolve_model(None, "segmenter").resolve() == new.resolve()
    assert main(["models", "rollback", "segmenter"]) == 0
    assert resolve_model(None, "segmenter").resolve() == parent.resolve()
