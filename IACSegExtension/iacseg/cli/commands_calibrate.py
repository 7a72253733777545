"""``iacseg calibrate``: choose a segmenter's probability threshold on a development set (Jin et al.)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .progress_view import PROGRESS_MODES, make_progress


def format_calibration(report: dict[str, Any], written: bool) -> str:
    """Before/after lines of a calibration report (volumes in mm³)."""
    def row(tag: str, r: dict[str, Any]) -> str:
        ba = r["bland_altman_mm3"]
        limits = ("—" if ba["lower_limit"] is None
                  else f"[{ba['lower_limit']:.2f}; {ba['upper_limit']:.2f}]")
        return (f"{tag:7s} threshold {r['threshold']:.3f}: mean |ΔV| {r['mean_abs_volume_difference_mm3']:.2f} mm³, "
                f"mean ΔV {r['mean_volume_difference_mm3']:+.2f} mm³, Dice {r['mean_dice']:.3f}, "
                f"Bland–Altman {ba['mean_difference']:+.2f} mm³, 95 % limits {limits}")

    m, d = report["model"], report["data"]
    lines = [f"model {m.get('name', m['path'])} {m.get('version') or ''} on {d['n_cases']} development case(s) "
             f"(hash {d['hash']})",
             row("before", report["before"]), row("after", report["after"])]
    lines.append(f"stored threshold {report['after']['threshold']:.3f} in {Path(m['path']) / 'config.json'}"
                 if written else "not stored (add --write to store the threshold in the model's config.json)")
    return "\n".join(lines)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..evaluate.calibrate import calibrate_model, parse_thresholds, write_calibration

    thresholds = parse_thresholds(args.thresholds)
    progress, close = make_progress(args.progress, desc="calibrate ")
    try:
        report = calibrate_model(args.model, Path(args.data), thresholds=thresholds, device=args.device,
                                 landmark_model=args.landmark_model, progress=progress)
    finally:
        close()
    if args.write:
        write_calibration(report["model"]["path"], report)
    if args.output:
        from ..core.files import write_text_atomic

        write_text_atomic(args.output, json.dumps(report, indent=2, default=float))
    if args.png:
        from ..evaluate.plots import bland_altman_png

        truth = [c["truth_volume_mm3"] for c in report["cases"]]
        bland_altman_png(args.png, [
            (f"before (threshold {report['before']['threshold']:.3f})",
             [c["pred_volume_before_mm3"] for c in report["cases"]], truth),
            (f"after (threshold {report['after']['threshold']:.3f})",
             [c["pred_volume_after_mm3"] for c in report["cases"]], truth)])
    print(format_calibration(report, written=args.write))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="choose a segmenter's probability threshold on development cases "
                                         "(minimum mean absolute volume difference)")
    p.add_argument("--model", default=None, help="segmenter model folder or name (default: the default segmenter)")
    p.add_argument("--data", required=True,
                   help="development set: folder of case folders (ct.nii.gz or dicom/ + truth_calcifications.nii.gz)")
    p.add_argument("--landmark-model", default=None, help="landmark model folder or name (default: bundled DST)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--thresholds", default=None,
                   help="candidate thresholds: 0.05,0.1,0.2 or start:stop:step (default 0.01:0.99:0.01)")
    p.add_argument("-o", "--output", default=None, help="write the calibration report (JSON) here")
    p.add_argument("--png", default=None, help="write before/after Bland–Altman plots (PNG) here")
    p.add_argument("--write", action="store_true",
                   help="store the chosen threshold and a calibration record in the model's config.json "
                        "(the weights are not touched)")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="bar")
    p.set_defaults(func=cmd_calibrate)
