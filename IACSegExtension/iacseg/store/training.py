"""Retraining from the corrections store: approved corrections → fine-tuned model → old vs new on the test split.

`retrain_from_store` is what ``iacseg train segmenter|landmarks --from-store STORE --init MODEL -o NEW`` runs:

1. the store's approved cases, read as training cases (CT + approved label map + approved landmarks, brought to
   axial LPS like every training case), grouped by the store's fixed patient-level split;
2. fine-tuning from ``init`` (default: the current default model of that kind) on the *train* split, validating
   (and, for the segmenter, calibrating the threshold) on the *val* split;
3. the parent and the new model run through the whole engine on each *test* case; Dice / label accuracy
   (segmenter) or landmark error in mm and slices (localiser) against the reader's approved result;
4. those numbers, the store cases used and the parent are written into the new model's config and card.
The new model is a new folder with a new version; nothing is promoted (``iacseg models promote``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..core.errors import InputError
from ..core.progress import Progress, no_progress

if TYPE_CHECKING:
    from ..train.data import Case
    from .store import CorrectionStore

KINDS = {"segmenter": "segmenter", "landmarks": "landmarks"}
FINE_TUNE_LR = {"segmenter": 5e-4, "landmarks": 1.25e-4}


def load_store_case(store: "CorrectionStore", case_id: str, which: str = "approved") -> "Case":
    """One store case as a training `Case` (CT, the ``which`` label map and landmarks, axial LPS)."""
    import SimpleITK as sitk

    from ..io import read_ct
    from ..io.volume import grid_from_sitk
    from ..outputs.markups import read_landmarks
    from ..train.data import to_training_case

    ct = read_ct(store.image_path(case_id))
    image = sitk.ReadImage(str(store.labels_path(case_id, which)))
    labels = sitk.GetArrayFromImage(image).astype(np.uint8)
    landmarks = read_landmarks(store.landmarks_path(case_id, which))
    return to_training_case(case_id, ct, labels, landmarks, label_grid=grid_from_sitk(image))


def approved_by_split(store: "CorrectionStore") -> dict[str, list[str]]:
    """Case ids of the approved cases in each split ("train", "val", "test")."""
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for info in store.cases():
        if info.status == "approved":
            out[info.split].append(info.case_id)
    return out


def _evaluate(kind: str, model_dir: Path, store: "CorrectionStore", case_ids: Sequence[str], device: str,
              progress: Progress, label: str) -> dict[str, Any]:
    """Run the engine with ``model_dir`` on the test cases; metrics against the approved corrections."""
    import SimpleITK as sitk

    from ..evaluate.metrics import label_accuracy, landmark_errors, overlap_metrics
    from ..io import read_ct
    from ..outputs.markups import read_landmarks
    from ..pipeline import SegmentOptions, segment_volume

    options = SegmentOptions(device=device, **({"segmenter": model_dir} if kind == "segmenter"
                                               else {"landmark_model": model_dir}))
    per_case = {}
    for n, case_id in enumerate(case_ids):
        progress("evaluate", n / max(1, len(case_ids)), f"{label} model on test case {case_id}")
        vol = read_ct(store.image_path(case_id))
        labels, landmarks, _, _ = segment_volume(vol, options)
        if kind == "segmenter":
            truth = sitk.GetArrayFromImage(sitk.ReadImage(str(store.labels_path(case_id, "approved"))))
            ov = overlap_metrics(labels, truth)
            per_case[case_id] = {"dice": ov["dice"], "precision": ov["precision"], "recall": ov["recall"],
                                 "label_accuracy": label_accuracy(labels, truth)}
        else:
            truth_lm = read_landmarks(store.landmarks_path(case_id, "approved"))
            sk = float(vol.grid.spacing[2])
            err = landmark_errors({k: v.z_mm for k, v in landmarks.items()},
                                  {k: v.z_mm for k, v in truth_lm.items()}, sk)
            per_case[case_id] = {"landmark_error_mm": err["mean_abs_error_mm"],
                                 "landmark_error_slices": err["mean_abs_error_slices"],
                                 "within_1_slice": err["within_1_slice"]}
    keys = sorted({k for m in per_case.values() for k in m})
    mean = {k: float(np.mean([m[k] for m in per_case.values() if m.get(k) is not None]))
            for k in keys if any(m.get(k) is not None for m in per_case.values())}
    return {"cases": per_case, "mean": mean}


def _better(kind: str, old: dict[str, Any], new: dict[str, Any]) -> bool | None:
    if not old["cases"]:
        return None
    if kind == "segmenter":
        return new["mean"].get("dice", 0.0) >= old["mean"].get("dice", 0.0)
    return new["mean"].get("landmark_error_mm", np.inf) <= old["mean"].get("landmark_error_mm", np.inf)


def _record(model_dir: Path, summary: dict[str, Any]) -> None:
    """Add the store evaluation to the new model's config.json and MODEL_CARD.md (weights untouched)."""
    from ..core.files import write_text_atomic

    cfg_path = model_dir / "config.json"
    config = json.loads(cfg_path.read_text())
    config["store_evaluation"] = {k: summary[k] for k in ("store", "cases", "test", "improved")}
    write_text_atomic(cfg_path, json.dumps(config, indent=2, default=str))
    card = model_dir / "MODEL_CARD.md"
    old, new = summary["test"]["parent"]["mean"], summary["test"]["new"]["mean"]
    lines = ["", "## Retrained from a corrections store", "",
             f"- store: `{summary['store']}`; approved cases used: train {len(summary['cases']['train'])}, "
             f"val {len(summary['cases']['val'])}, test {len(summary['cases']['test'])}",
             f"- parent: {summary['parent']['name']} {summary['parent']['version']} "
             f"(sha256 {str(summary['parent']['sha256'])[:12]}…)"]
    if summary["cases"]["test"]:
        lines.append("- test split, parent → new: " + ", ".join(
            f"{k} {old[k]:.3f} → {new.get(k, float('nan')):.3f}" for k in sorted(old)))
    else:
        lines.append("- the store's test split has no approved case yet: old and new were not compared")
    write_text_atomic(card, (card.read_text() if card.is_file() else "") + "\n".join(lines) + "\n")


def retrain_from_store(what: str, store_root: str | Path, *, out: str | Path, init: str | Path | None = None,
                       device: str = "auto", progress: Progress = no_progress, **hp: Any) -> dict[str, Any]:
    """Fine-tune the ``what`` model ("segmenter" | "landmarks") on the store's approved corrections.

    ``init``: parent model folder or name (default: the current default model of that kind). ``hp``: trainer
    hyper-parameters (epochs, lr, seed, …). Returns a JSON-able summary (model path, parent, cases used per
    split, test metrics of parent and new model, whether the new one is at least as good)."""
    from ..models.defaults import resolve_model
    from ..models.folders import read_config
    from ..core.files import sha256_of
    from ..train import train_landmarks, train_segmenter
    from .store import CorrectionStore

    if what not in KINDS:
        raise InputError(f"can retrain 'segmenter' or 'landmarks', not {what!r}")
    store = CorrectionStore.open(store_root)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out} already exists and is not empty; give a new folder for the new model")
    split = approved_by_split(store)
    if not split["train"]:
        raise InputError(f"the store {store.root} has no approved correction in its training split "
                         f"(approved: val {len(split['val'])}, test {len(split['test'])}); approve corrections "
                         "with `iacseg store status … approved` first")
    parent_dir = resolve_model(init, what)
    parent_cfg = read_config(parent_dir)
    if parent_cfg.get("kind") != what:
        raise InputError(f"{parent_dir} is a {parent_cfg.get('kind')} model, not a {what} model")
    parent = {"name": parent_cfg.get("name"), "version": parent_cfg.get("version"), "path": str(parent_dir),
              "sha256": sha256_of(parent_dir / "model.safetensors")}

    progress("prepare", 0.0, f"reading {len(split['train']) + len(split['val'])} approved cases")
    train_cases = [load_store_case(store, c) for c in split["train"]]
    val_cases = [load_store_case(store, c) for c in split["val"]]
    trainer = train_segmenter if what == "segmenter" else train_landmarks
    kwargs: dict[str, Any] = {"device": device, "progress": progress, "init": parent_dir, **hp}
    if kwargs.get("lr") is None:  # fine-tuning: a quarter of the from-scratch rate (as for unet-demo 1.1)
        kwargs["lr"] = FINE_TUNE_LR[what]
    if val_cases:
        kwargs["val_data"] = val_cases
    if len(train_cases) < 2 and not val_cases:
        raise InputError("retraining needs at least 2 approved cases, or one in the store's validation split")
    model_dir = Path(trainer(train_cases, out, **kwargs))
    from ..train.distributed import is_main

    if not is_main():  # under torchrun only rank 0 evaluates and writes the card
        return {"model": str(model_dir), "kind": what, "rank_returned_early": True}

    test_ids = split["test"]
    old = _evaluate(what, parent_dir, store, test_ids, device, progress, "parent")
    new = _evaluate(what, model_dir, store, test_ids, device, progress, "new")
    new_cfg = read_config(model_dir)
    summary = {
        "model": str(model_dir), "name": new_cfg.get("name"), "version": new_cfg.get("version"),
        "sha256": sha256_of(model_dir / "model.safetensors"), "kind": what, "parent": parent,
        "store": str(store.root), "cases": split, "test": {"parent": old, "new": new},
        "improved": _better(what, old, new),
    }
    _record(model_dir, summary)
    progress("done", 1.0, f"wrote {model_dir}")
    return summary
