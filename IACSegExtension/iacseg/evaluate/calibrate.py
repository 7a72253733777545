"""Threshold calibration (Jin et al.): pick the probability threshold that minimises the mean absolute volume
difference between prediction and truth on a development set, and store it in the model's ``config.json``. The rule
and the candidate grid are `iacseg.models.calibration`'s, the same that training calibrates with.

The engine computes each case's calcification probability once (`iacseg.pipeline.segment_volume` with
``keep_probability``); every candidate threshold is then applied to that map with the engine's own rule
(`iacseg.models.calcium_mask`: probability ≥ threshold, ≥ 130 HU, no isolated single voxels), so the volume at
threshold t is exactly what ``iacseg segment --threshold t`` would measure on the same CT grid.

Development set: case folders in the truth layout (``ct.nii.gz`` or ``dicom/``, plus
``truth_calcifications.nii.gz``), or one such folder. Volumes are mm³ on the CT grid as read; the volume
difference is prediction − truth.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.contracts import CALCIUM_HU, TRUTH_LABELS_FILE
from ..core.errors import InputError
from ..core.progress import Progress, no_progress
from ..core.threshold import model_threshold
from ..models.calibration import THRESHOLDS, calibrate_threshold, threshold_sweep
from .bootstrap import bland_altman

#: Candidate thresholds when none are given: 0.01, 0.02, …, 0.99 (the grid training calibrates on too).
DEFAULT_THRESHOLDS: tuple[float, ...] = THRESHOLDS


def parse_thresholds(text: str | None) -> list[float]:
    """Candidate thresholds from ``"0.05,0.1,0.2"`` or ``"start:stop:step"`` (stop included); None → defaults.

    Every threshold must lie in (0, 1); an `InputError` says what to type otherwise.
    """
    if text is None or not str(text).strip():
        return list(DEFAULT_THRESHOLDS)
    text = str(text).strip()
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            values = [round(v, 6) for v in np.arange(start, stop + step / 2, step)]
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"candidate thresholds must be probabilities separated by commas (0.05,0.1,0.2) or "
                         f"start:stop:step (0.02:0.9:0.02), not {text!r}", parameter="thresholds") from None
    if not values or any(not 0.0 < v < 1.0 for v in values):
        raise InputError(f"candidate thresholds must all lie between 0 and 1 (exclusive), not {text!r}",
                         parameter="thresholds")
    return sorted(set(values))


def sweep_case(prob: np.ndarray, hu: np.ndarray, truth: np.ndarray, voxel_volume_mm3: float,
               thresholds: Sequence[float], min_hu: float = CALCIUM_HU) -> dict[str, Any]:
    """Calcium masks of one case at every threshold, compared with the truth (all ``[k, j, i]``, same grid).

    ``prob``: calcification probability; ``hu``: CT in HU; ``truth``: label map (calcified = > 0).
    Returns ``{"truth_volume_mm3", "pred_volume_mm3": [...], "dice": [...]}`` per threshold (input order).
    The masks are those of `iacseg.models.calibration.threshold_sweep` (the sweep training validates with).
    """
    counts = threshold_sweep(prob, hu, truth, thresholds, min_hu)
    n_truth, pred_vox, tp_vox = counts["truth_voxels"], counts["pred_voxels"], counts["overlap_voxels"]
    denom = pred_vox + n_truth
    dice = np.where(denom > 0, 2.0 * tp_vox / np.maximum(denom, 1), 1.0)
    return {"truth_volume_mm3": n_truth * voxel_volume_mm3,
            "pred_volume_mm3": (pred_vox * voxel_volume_mm3).tolist(), "dice": dice.tolist()}


def dev_case_folders(data: str | Path) -> list[Path]:
    """Case folders of a development set (``data`` itself or its subfolders); `InputError` when there are none."""
    from ..outputs.truth_folder import case_folders

    root = Path(data)
    if not root.exists():
        raise InputError(f"the development-set folder {root} does not exist; give a folder of case folders")
    return case_folders(root, "development")


def dev_set_hash(folders: Sequence[Path]) -> str:
    """SHA-256 (first 16 hex digits) of the case names and their truth label files' bytes."""
    h = hashlib.sha256()
    for folder in sorted(Path(f) for f in folders):
        h.update(folder.name.encode())
        h.update((folder / TRUTH_LABELS_FILE).read_bytes())
    return h.hexdigest()[:16]


def _read_dev_case(folder: Path) -> tuple[Any, np.ndarray]:
    """CT (as `iacseg segment` reads it) and the truth label map on the CT's grid (nearest neighbour if needed)."""
    from ..outputs.truth_folder import TruthFolder
    from ..preprocess import resample_to_grid

    case = TruthFolder(Path(folder))
    vol = case.read_ct()
    truth, grid = case.read_labels()
    if not grid.same_geometry(vol.grid):
        truth = resample_to_grid(truth, grid, vol.grid, order=0)
    return vol, truth


def _at(sweeps: list[dict[str, Any]], index: int, threshold: float) -> dict[str, Any]:
    """Agreement over cases at one threshold (the sweep's ``index``)."""
    pred = [s["pred_volume_mm3"][index] for s in sweeps]
    truth = [s["truth_volume_mm3"] for s in sweeps]
    diff = np.asarray(pred) - np.asarray(truth)
    ba = bland_altman(pred, truth)
    return {"threshold": float(threshold), "mean_abs_volume_difference_mm3": float(np.abs(diff).mean()),
            "mean_volume_difference_mm3": float(diff.mean()),
            "mean_dice": float(np.mean([s["dice"][index] for s in sweeps])),
            "bland_altman_mm3": {k: ba[k] for k in ("mean_difference", "sd_difference", "lower_limit",
                                                    "upper_limit")}}


def calibrate_model(model: str | Path | None, data: str | Path, thresholds: Sequence[float] | None = None,
                    device: str = "auto", landmark_model: str | Path | None = None,
                    progress: Progress = no_progress) -> dict[str, Any]:
    """Run the segmenter once per development case, sweep the thresholds, and choose the calibrated one.

    Returns the calibration report: ``model`` (path, name, version, sha256), ``data`` (path, cases, hash),
    ``before`` (the model's current threshold) and ``after`` (the chosen one), each with mean |ΔV| and mean
    ΔV (mm³), mean Dice and Bland–Altman mean difference and 95 % limits of agreement; ``table`` (every
    threshold); ``cases`` (per-case volumes and Dice before/after).
    """
    from ..models.defaults import resolve_model
    from ..models.folders import read_config
    from ..pipeline import SegmentOptions, segment_volume

    model_dir = resolve_model(model, "segmenter")
    config = read_config(model_dir)
    if config.get("kind") != "segmenter":
        raise InputError(f"{model_dir} is a {config.get('kind')!r} model; calibration needs a segmenter")
    current = model_threshold(config)
    candidates = sorted(set(float(t) for t in (thresholds or DEFAULT_THRESHOLDS)) | {current})
    folders = dev_case_folders(data)
    options = SegmentOptions(segmenter=model_dir, landmark_model=landmark_model, device=device, threshold=None,
                             keep_probability=True)
    sweeps, described = [], None
    for n, folder in enumerate(folders):
        progress("calibrate", n / len(folders), f"case {n + 1}/{len(folders)}: {folder.name}")
        vol, truth = _read_dev_case(folder)
        labels, _, _, info = segment_volume(vol, options)
        described = described or info["models"]["segmenter"]
        voxel = float(vol.grid.voxel_volume_mm3)
        sweep = sweep_case(info["probability"], vol.hu, truth, voxel, candidates)
        sweep.update(case=folder.name, slice_spacing_mm=float(vol.grid.spacing[2]),
                     engine_volume_mm3=float((labels > 0).sum() * voxel))  # at the model's threshold
        sweeps.append(sweep)
    progress("calibrate", 1.0, f"{len(folders)} cases")
    truth_volumes = [s["truth_volume_mm3"] for s in sweeps]
    best, table = calibrate_threshold({t: [s["pred_volume_mm3"][i] for s in sweeps]
                                       for i, t in enumerate(candidates)}, truth_volumes)
    i_before, i_after = candidates.index(current), candidates.index(best)
    for i, row in enumerate(table):  # table rows are in ascending threshold order, like candidates
        row["mean_dice"] = float(np.mean([s["dice"][i] for s in sweeps]))
    return {
        "model": {"path": str(model_dir), **(described or {})},
        "data": {"path": str(Path(data).resolve()), "n_cases": len(sweeps), "cases": [f.name for f in folders],
                 "hash": dev_set_hash(folders), "hash_of": "case names and truth label files (sha256, 16 hex)"},
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "criterion": "minimum mean absolute volume difference (mm³) over the development cases",
        "before": _at(sweeps, i_before, current),
        "after": _at(sweeps, i_after, best),
        "table": table,
        "cases": [{"case": s["case"], "slice_spacing_mm": s["slice_spacing_mm"],
                   "truth_volume_mm3": s["truth_volume_mm3"], "engine_volume_mm3": s["engine_volume_mm3"],
                   "pred_volume_before_mm3": s["pred_volume_mm3"][i_before],
                   "pred_volume_after_mm3": s["pred_volume_mm3"][i_after],
                   "dice_before": s["dice"][i_before], "dice_after": s["dice"][i_after]} for s in sweeps],
    }


def write_calibration(model_dir: str | Path, report: Mapping[str, Any]) -> dict[str, Any]:
    """Store the calibrated threshold in ``model_dir/config.json`` (atomically), leaving the weights untouched.

    Sets ``threshold`` and a ``calibration`` record (date, criterion, dev set path/cases/hash, before/after);
    the previous threshold is kept in the record. Returns the new config. Raises `ModelError` when the weights
    are not the ones the report calibrated (their SHA-256 differs). Nothing but config.json is written.
    """
    from ..core.errors import ModelError
    from ..models.folders import CONFIG_FILE, WEIGHTS_FILE, read_config
    from ..core.files import sha256_of
    from ..core.files import write_text_atomic

    model_dir = Path(model_dir)
    weights_before = sha256_of(model_dir / WEIGHTS_FILE)
    config = read_config(model_dir)
    if report["model"].get("sha256") not in (None, weights_before):
        raise ModelError(f"the weights in {model_dir} are not the ones calibrated "
                         f"({report['model']['sha256'][:12]}…); run calibrate again on this model")
    before, after = report["before"], report["after"]
    config["calibration"] = {
        "date": report["date"], "criterion": report["criterion"], "previous_threshold": before["threshold"],
        "threshold": after["threshold"], "weights_sha256": weights_before,
        "data": {k: report["data"][k] for k in ("path", "n_cases", "cases", "hash", "hash_of")},
        "before": before, "after": after,
    }
    config["threshold"] = float(after["threshold"])
    write_text_atomic(model_dir / CONFIG_FILE, json.dumps(config, indent=2, default=float))
    return config
