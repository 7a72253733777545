"""Threshold calibration (Jin et al.): pick the probability threshold that minimises the mean absolute volume
difference between prediction and truth on a development set, and store it in the model's ``config.json``.

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

from ..core.contracts import CALCIUM_HU, PHANTOM_CT_FILE, PHANTOM_DICOM_DIR, TRUTH_LABELS_FILE
from ..core.errors import InputError
from ..core.progress import Progress, no_progress
from .bootstrap import bland_altman

#: Candidate thresholds when none are given: 0.01, 0.02, …, 0.99.
DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.01 * n, 2) for n in range(1, 100))


def calibrate_threshold(per_case_volumes_by_threshold: Mapping[float, Sequence[float]],
                        truth_volumes: Sequence[float]) -> tuple[float, list[dict[str, float]]]:
    """The threshold whose predicted volumes (mm³, one per case, same order as ``truth_volumes``) have the
    smallest mean absolute difference from the true volumes, and the table of every threshold.

    Table rows (ascending threshold): ``{"threshold", "mean_abs_volume_difference_mm3",
    "mean_volume_difference_mm3"}`` (difference = prediction − truth). Ties in the mean absolute difference
    (within 1e-9 mm³) go to the smaller |mean signed difference|, then to the lower threshold.
    """
    truth = np.asarray(truth_volumes, dtype=np.float64)
    if not per_case_volumes_by_threshold:
        raise ValueError("no thresholds to choose from")
    if truth.size == 0:
        raise ValueError("calibration needs at least one case")
    table = []
    for t in sorted(per_case_volumes_by_threshold):
        pred = np.asarray(per_case_volumes_by_threshold[t], dtype=np.float64)
        if pred.shape != truth.shape:
            raise ValueError(f"threshold {t}: {pred.size} predicted volumes for {truth.size} cases")
        diff = pred - truth
        table.append({"threshold": float(t), "mean_abs_volume_difference_mm3": float(np.abs(diff).mean()),
                      "mean_volume_difference_mm3": float(diff.mean())})
    best_abs = min(r["mean_abs_volume_difference_mm3"] for r in table)
    tied = [r for r in table if r["mean_abs_volume_difference_mm3"] <= best_abs + 1e-9]
    best = min(tied, key=lambda r: (abs(r["mean_volume_difference_mm3"]), r["threshold"]))
    return best["threshold"], table


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
        raise InputError(f"--thresholds must be probabilities separated by commas (0.05,0.1,0.2) or "
                         f"start:stop:step (0.02:0.9:0.02), not {text!r}") from None
    if not values or any(not 0.0 < v < 1.0 for v in values):
        raise InputError(f"--thresholds must all lie between 0 and 1 (exclusive), not {text!r}")
    return sorted(set(values))


def sweep_case(prob: np.ndarray, hu: np.ndarray, truth: np.ndarray, voxel_volume_mm3: float,
               thresholds: Sequence[float], min_hu: float = CALCIUM_HU) -> dict[str, Any]:
    """Calcium masks of one case at every threshold, compared with the truth (all ``[k, j, i]``, same grid).

    ``prob``: calcification probability; ``hu``: CT in HU; ``truth``: label map (calcified = > 0).
    Returns ``{"truth_volume_mm3", "pred_volume_mm3": [...], "dice": [...]}`` per threshold (input order).
    Only the box holding voxels with prob ≥ min(thresholds) and HU ≥ ``min_hu`` (plus one voxel) is
    thresholded: outside it every mask is empty, so the result equals thresholding the whole volume.
    """
    from ..models.postprocess import calcium_mask

    truth_mask = np.asarray(truth) > 0
    n_truth = int(truth_mask.sum())
    candidates = (prob >= min(thresholds)) & (hu >= min_hu)
    pred_vox, tp_vox = np.zeros(len(thresholds), np.int64), np.zeros(len(thresholds), np.int64)
    if candidates.any():
        nz = np.argwhere(candidates)
        box = tuple(slice(max(0, lo - 1), hi + 2) for lo, hi in zip(nz.min(0), nz.max(0)))
        p, h, t = prob[box], hu[box], truth_mask[box]
        for n, thr in enumerate(thresholds):
            mask = calcium_mask(p, h, float(thr), min_hu=min_hu)
            pred_vox[n], tp_vox[n] = int(mask.sum()), int((mask & t).sum())
    denom = pred_vox + n_truth
    dice = np.where(denom > 0, 2.0 * tp_vox / np.maximum(denom, 1), 1.0)
    return {"truth_volume_mm3": n_truth * voxel_volume_mm3,
            "pred_volume_mm3": (pred_vox * voxel_volume_mm3).tolist(), "dice": dice.tolist()}


def dev_case_folders(data: str | Path) -> list[Path]:
    """Case folders of a development set (``data`` itself or its subfolders); `InputError` when there are none."""
    from ..train.data import is_case_folder

    root = Path(data)
    if not root.exists():
        raise InputError(f"the development-set folder {root} does not exist; give a folder of case folders")
    if is_case_folder(root):
        return [root]
    found = sorted(p for p in root.iterdir() if p.is_dir() and is_case_folder(p)) if root.is_dir() else []
    if not found:
        raise InputError(f"{root} holds no development cases; each case folder needs {PHANTOM_CT_FILE} (or "
                         f"{PHANTOM_DICOM_DIR}/) and {TRUTH_LABELS_FILE}")
    return found


def dev_set_hash(folders: Sequence[Path]) -> str:
    """SHA-256 (first 16 hex digits) of the case names and their truth label files' bytes."""
    h = hashlib.sha256()
    for folder in sorted(Path(f) for f in folders):
        h.update(folder.name.encode())
        h.update((folder / TRUTH_LABELS_FILE).read_bytes())
    return h.hexdigest()[:16]


def _read_dev_case(folder: Path) -> tuple[Any, np.ndarray]:
    """CT (as `iacseg segment` reads it) and the truth label map on the CT's grid (nearest neighbour if needed)."""
    import SimpleITK as sitk

    from ..io import read_ct
    from ..io.volume import grid_from_sitk
    from ..preprocess import resample_to_grid

    ct_path = folder / PHANTOM_CT_FILE if (folder / PHANTOM_CT_FILE).is_file() else folder / PHANTOM_DICOM_DIR
    vol = read_ct(ct_path)
    try:
        image = sitk.ReadImage(str(folder / TRUTH_LABELS_FILE))
    except RuntimeError:
        raise InputError(f"cannot read {folder / TRUTH_LABELS_FILE}; it must be a label image "
                         f"(0 = background) beside the CT") from None
    truth, grid = sitk.GetArrayFromImage(image).astype(np.uint8), grid_from_sitk(image)
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
    from ..models import resolve_model
    from ..models.registry import read_config
    from ..pipeline import SegmentOptions, segment_volume

    model_dir = resolve_model(model, "segmenter")
    config = read_config(model_dir)
    if config.get("kind") != "segmenter":
        raise InputError(f"{model_dir} is a {config.get('kind')!r} model; calibration needs a segmenter")
    current = float(config.get("threshold", 0.5))
    candidates = sorted(set(float(t) for t in (thresholds or DEFAULT_THRESHOLDS)) | {current})
    folders = dev_case_folders(data)
    options = SegmentOptions(segmenter=model_dir, landmark_model=landmark_model, device=device, threshold="auto",
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
    from ..models.registry import CONFIG_FILE, WEIGHTS_FILE, read_config, sha256_file
    from ..core.files import write_text_atomic

    model_dir = Path(model_dir)
    weights_before = sha256_file(model_dir / WEIGHTS_FILE)
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
