"""Evaluate a folder of predictions (``iacseg segment`` outputs) against a folder of truths (phantom layout).

Prediction case: ``<pred_dir>/<case>/calcifications.nii.gz`` + ``landmarks.mrk.json`` + ``report.json``.
Truth case: ``<truth_dir>/<case>/truth_calcifications.nii.gz`` + ``truth_landmarks.mrk.json`` + ``truth.json``.
Either directory may also be a single case folder. Cases pair by subfolder name; a truth case without a
prediction is recorded as failed (no crash). A prediction on another grid is resampled onto the truth grid by
nearest neighbour in world coordinates (LPS; identity transform). Both kinds of folder are found and read by
their owners, `iacseg.outputs.result_folder` and `iacseg.outputs.truth_folder`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.contracts import LABELS_FILE, SEGMENTS, TRUTH_LABELS_FILE
from ..core.errors import IACSegError, InputError
from ..core.progress import Progress, no_progress
from .bootstrap import bland_altman, metric_intervals
from .breakdown import by_lesion_size, by_slice_thickness, lesion_detection, risk_group_accuracy
from ..outputs.result_folder import ResultFolder, result_folders
from ..outputs.truth_folder import TruthFolder, truth_folders
from ..outputs.writer import labelled_volume_mm3
from .metrics import case_metrics, landmark_errors


def _onto(pred: Any, truth: Any) -> tuple[Any, bool]:
    """``pred`` resampled (nearest neighbour, world coordinates) onto ``truth``'s grid; flag if it was needed."""
    import SimpleITK as sitk

    from ..io.volume import grid_from_sitk

    if grid_from_sitk(pred).same_geometry(grid_from_sitk(truth)):  # the one "same grid" rule
        return pred, False
    f = sitk.ResampleImageFilter()
    f.SetReferenceImage(truth)
    f.SetInterpolator(sitk.sitkNearestNeighbor)
    f.SetTransform(sitk.Transform(3, sitk.sitkIdentity))
    f.SetDefaultPixelValue(0)
    f.SetOutputPixelType(sitk.sitkUInt8)
    return f.Execute(sitk.Cast(pred, sitk.sitkUInt8)), True


def _report_volumes_match(result: ResultFolder, pred_labels: np.ndarray, voxel_mm3: float) -> bool | None:
    """True when report.json's per-segment and total volumes equal the label map's (None: no report).

    Equal to 1e-6 relative: NIfTI stores spacing as float32, so a tilt-corrected spacing such as 2.5·cos 22°
    reads back rounded in the 8th digit.
    """
    if not result.report_path.is_file():
        return None
    try:
        report = result.report
        counts = np.bincount(pred_labels.reshape(-1).astype(np.int64), minlength=max(SEGMENTS) + 1)
        ok = all(np.isclose(labelled_volume_mm3(report["segments"][n]), counts[v] * voxel_mm3, rtol=1e-6, atol=1e-6)
                 for v, n in SEGMENTS.items())
        return bool(ok and np.isclose(report["total"]["volume_mm3"], counts[1:].sum() * voxel_mm3,
                                      rtol=1e-6, atol=1e-6))
    except (InputError, ValueError, KeyError, TypeError):
        return False


def _axial_slice_spacing(image: Any) -> float:
    """Distance (mm) between consecutive slices along z (the k axis' z component × spacing)."""
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    step = abs(direction[2, 2]) * image.GetSpacing()[2]
    return float(step if step > 1e-6 else image.GetSpacing()[2])


def evaluate_case(pred_case: Path, truth_case: Path) -> dict[str, Any]:
    """Metrics of one case (see `iacseg.evaluate.metrics`); raises `IACSegError` subclasses on unusable input."""
    import SimpleITK as sitk

    from ..core.landmarks import landmark_heights
    from ..outputs.markups import read_landmarks

    truth_folder, pred_folder = TruthFolder(truth_case), ResultFolder(pred_case)
    truth_img = truth_folder.read_label_image()
    pred_img = pred_folder.read_label_image()
    pred_native = sitk.GetArrayFromImage(pred_img)
    report_ok = _report_volumes_match(pred_folder, pred_native, float(np.prod(pred_img.GetSpacing())))
    pred_on_truth, resampled = _onto(pred_img, truth_img)
    truth = sitk.GetArrayFromImage(truth_img)
    pred = sitk.GetArrayFromImage(pred_on_truth)
    voxel_mm3 = float(np.prod(truth_img.GetSpacing()))
    result: dict[str, Any] = {"status": "ok", "resampled": resampled, "report_volumes_match": report_ok,
                              **case_metrics(pred, truth, voxel_mm3),
                              "slice_spacing_mm": float(truth_img.GetSpacing()[2]),  # the CT grid's k spacing
                              "lesions_by_size": lesion_detection(pred, truth, voxel_mm3)}
    if truth_folder.has_landmarks() and pred_folder.landmarks_path.is_file():
        truth_z = landmark_heights(truth_folder.read_landmarks())
        pred_z = landmark_heights(read_landmarks(pred_folder.landmarks_path, required=()))
        result["landmarks"] = landmark_errors(pred_z, truth_z, _axial_slice_spacing(truth_img),
                                             slice_z0_mm=float(truth_img.GetOrigin()[2]))
    else:
        result["landmarks"] = None
    return result


def _mean(values: list[Any]) -> float | None:
    values = [float(v) for v in values if v is not None]
    return float(np.mean(values)) if values else None


def summarise(cases: list[dict[str, Any]], n_resamples: int = 1000, seed: int = 0,
              risk_cutpoints_mm3: list[float] | None = None) -> dict[str, Any]:
    """Means over the cases that were evaluated (failed cases are counted, not averaged), their 95 % bootstrap
    intervals (``n_resamples`` over cases, ``seed``), Bland–Altman limits of the total volume, breakdowns by
    slice thickness and lesion size, and risk-group accuracy (quartiles, or the engine's groups with
    ``risk_cutpoints_mm3``; see `iacseg.evaluate.breakdown`)."""
    ok = [c for c in cases if c.get("status") == "ok"]
    lms = [c["landmarks"] for c in ok if c.get("landmarks")]
    per_landmark = [v for lm in lms for v in lm["landmarks"].values()]
    flags = [c.get("report_volumes_match") for c in ok]
    return {
        "n_cases": len(cases),
        "n_evaluated": len(ok),
        "n_failed": len(cases) - len(ok),
        "mean_dice": _mean([c["dice"] for c in ok]),
        "mean_precision": _mean([c["precision"] for c in ok]),
        "mean_recall": _mean([c["recall"] for c in ok]),
        "mean_abs_volume_difference_mm3": _mean([c["abs_volume_difference_mm3"] for c in ok]),
        "mean_volume_difference_mm3": _mean([c["volume_difference_mm3"] for c in ok]),
        "mean_label_accuracy": _mean([c["label_accuracy"] for c in ok]),
        "landmark_mean_error_mm": _mean([v["abs_error_mm"] for v in per_landmark]),
        "landmark_mean_error_slices": _mean([v["abs_error_slices"] for v in per_landmark]),
        "landmark_within_1_slice": _mean([v["abs_error_slices"] <= 1.0 + 1e-9 for v in per_landmark]),
        "report_volumes_match": bool(ok) and all(f is True for f in flags),
        **_statistics(ok, n_resamples, seed, risk_cutpoints_mm3),
    }


def _statistics(ok: list[dict[str, Any]], n_resamples: int, seed: int,
                risk_cutpoints_mm3: list[float] | None) -> dict[str, Any]:
    """The interval and breakdown entries of `summarise` (evaluated cases only)."""
    pred = [float(c["pred_volume_mm3"]) for c in ok]
    truth = [float(c["truth_volume_mm3"]) for c in ok]
    ba = bland_altman(pred, truth)
    return {
        "confidence_intervals": metric_intervals(ok, n_resamples=n_resamples, seed=seed),
        "bland_altman_mm3": {k: ba[k] for k in ("n", "mean_difference", "sd_difference", "lower_limit",
                                                "upper_limit")},
        "by_slice_thickness": by_slice_thickness(ok),
        "by_lesion_size": by_lesion_size(ok),
        "risk_groups": risk_group_accuracy(pred, truth, risk_cutpoints_mm3),
    }


def evaluate_folders(pred_dir: Path, truth_dir: Path, progress: Progress = no_progress, n_resamples: int = 1000,
                     seed: int = 0, risk_cutpoints_mm3: list[float] | None = None) -> dict[str, Any]:
    """Evaluate every truth case in ``truth_dir`` against its prediction in ``pred_dir``.

    Returns ``{"cases": [{"case", "status", dice, precision, recall, volumes, label_accuracy, landmarks,
    report_volumes_match, slice_spacing_mm, lesions_by_size, …}], "summary": {...}}`` (summary: see
    `summarise`). Raises `InputError` when a folder is missing or holds no truth case.
    """
    pred_dir, truth_dir = Path(pred_dir), Path(truth_dir)
    for folder, what in ((pred_dir, "prediction"), (truth_dir, "truth")):
        if not folder.is_dir():
            raise InputError(f"the {what} folder {folder} does not exist; give the folder of case subfolders")
    truths = truth_folders(truth_dir)
    if not truths:
        raise InputError(f"{truth_dir} holds no {TRUTH_LABELS_FILE} (directly or in case subfolders); "
                         f"give a folder of truth cases")
    preds = result_folders(pred_dir)
    if len(truths) == 1 and len(preds) == 1 and (pred_dir / LABELS_FILE).is_file():
        preds = {next(iter(truths)): next(iter(preds.values()))}  # two single case folders: pair them
    cases = []
    for n, (name, truth_case) in enumerate(truths.items()):
        progress("evaluate", n / len(truths), name)
        record: dict[str, Any] = {"case": name}
        if name not in preds:
            record.update(status="failed", error=f"no prediction ({LABELS_FILE}) for this case in {pred_dir}")
        else:
            try:
                record.update(evaluate_case(preds[name], truth_case))
            except IACSegError as exc:
                record.update(status="failed", error=str(exc))
        cases.append(record)
    progress("evaluate", 1.0, f"{len(cases)} cases")
    return {"cases": cases, "summary": summarise(cases, n_resamples=n_resamples, seed=seed,
                                                 risk_cutpoints_mm3=risk_cutpoints_mm3)}


def format_summary(result: dict[str, Any]) -> str:
    """A human-readable table of ``evaluate_folders`` output: the per-case rows, then the means."""
    def f(v: Any, fmt: str = "{:.3f}") -> str:
        return "—" if v is None else fmt.format(v)

    lines = [f"{'case':20s} {'status':7s} {'dice':>6s} {'prec':>6s} {'recall':>6s} {'vol_diff_mm3':>12s} "
             f"{'label_acc':>9s} {'lm_err_mm':>9s} {'lm_err_sl':>9s}"]
    for c in result["cases"]:
        lm = c.get("landmarks") or {}
        lines.append(f"{c['case'][:20]:20s} {c['status'][:7]:7s} {f(c.get('dice')):>6s} {f(c.get('precision')):>6s} "
                     f"{f(c.get('recall')):>6s} {f(c.get('volume_difference_mm3'), '{:.1f}'):>12s} "
                     f"{f(c.get('label_accuracy')):>9s} {f(lm.get('mean_abs_error_mm'), '{:.2f}'):>9s} "
                     f"{f(lm.get('mean_abs_error_slices'), '{:.2f}'):>9s}"
                     + (f"  {c.get('error')}" if c.get("status") != "ok" else ""))
    s = result["summary"]
    lines.append("")
    lines.append(f"cases {s['n_evaluated']}/{s['n_cases']} evaluated ({s['n_failed']} failed)")
    lines.append(f"mean Dice {f(s['mean_dice'])}, precision {f(s['mean_precision'])}, recall {f(s['mean_recall'])}")
    lines.append(f"mean |volume difference| {f(s['mean_abs_volume_difference_mm3'], '{:.2f}')} mm³ "
                 f"(signed {f(s['mean_volume_difference_mm3'], '{:.2f}')} mm³)")
    lines.append(f"label accuracy {f(s['mean_label_accuracy'])}")
    lines.append(f"landmark error {f(s['landmark_mean_error_mm'], '{:.2f}')} mm, "
                 f"{f(s['landmark_mean_error_slices'], '{:.2f}')} slices; within 1 slice "
                 f"{f(s['landmark_within_1_slice'])}")
    lines.append(f"report volumes equal label-map volumes: {s['report_volumes_match']}")
    lines.extend(_format_statistics(s, f))
    return "\n".join(lines)


def _format_statistics(s: dict[str, Any], f: Any) -> list[str]:
    """Summary lines for the intervals, Bland–Altman limits, breakdowns and risk groups (absent keys: none)."""
    lines: list[str] = []
    ci = s.get("confidence_intervals") or {}
    if ci:
        first = next(iter(ci.values()))
        lines.append(f"{100 * first['confidence']:.0f} % bootstrap intervals ({first['n_resamples']} resamples "
                     f"over {first['n']} cases, seed {first['seed']}):")
        for name, r in ci.items():
            fmt = "{:.3f}" if "mm3" not in name else "{:.2f}"
            lines.append(f"  {name:26s} {f(r['estimate'], fmt):>9s} [{f(r['ci_low'], fmt)}; {f(r['ci_high'], fmt)}]")
    ba = s.get("bland_altman_mm3")
    if ba:
        lines.append(f"Bland–Altman total volume: mean difference {f(ba['mean_difference'], '{:.2f}')} mm³, "
                     f"95 % limits of agreement [{f(ba['lower_limit'], '{:.2f}')}; {f(ba['upper_limit'], '{:.2f}')}]")
    if s.get("by_slice_thickness"):
        lines.append("by slice thickness:")
        for name, r in s["by_slice_thickness"].items():
            lines.append(f"  {name:9s} n={r['n_cases']:<3d} Dice {f(r['mean_dice'])}, precision "
                         f"{f(r['mean_precision'])}, recall {f(r['mean_recall'])}, |ΔV| "
                         f"{f(r['mean_abs_volume_difference_mm3'], '{:.2f}')} mm³")
    if s.get("by_lesion_size"):
        lines.append("by truth-lesion size (26-connected):")
        for name, r in s["by_lesion_size"].items():
            lines.append(f"  {name:9s} {r['n_detected']}/{r['n_lesions']} detected (rate {f(r['detection_rate'])}), "
                         f"voxel recall {f(r['voxel_recall'])}")
    rg = s.get("risk_groups")
    if rg and rg.get("n_cases"):
        cuts = rg["cutpoints_mm3"]
        cuts = (", ".join(f"{k} {'>' if v == 0 else '≥'} {v:g}" for k, v in cuts.items() if k != "none")
                if isinstance(cuts, dict)
                else ", ".join(f"{v:.1f}" for v in cuts))
        lines.append(f"risk group accuracy {f(rg['accuracy'])} ({rg['n_correct']}/{rg['n_cases']}; {rg['method']}, "
                     f"cut points {cuts} mm³)")
    return lines
