"""`iacseg demo`: a sample phantom segmented with the bundled demo models, a report and a PNG overview."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .cli.progress_view import make_progress


def _num(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def run_demo(out: Path, seed: int = 90001, device: str = "auto", progress_mode: str = "bar") -> dict[str, Any]:
    """Make phantom ``seed`` under ``out/phantom``, segment it into ``out/result`` (with ``overview.png``),
    compare with the phantom's truth and return the report."""
    from .evaluate import evaluate_folders
    from .phantom import generate_cases
    from .pipeline import SegmentOptions, segment_case

    out = Path(out)
    progress, close = make_progress(progress_mode, desc="demo ")
    try:
        phantom_dir = out / "phantom"
        case = phantom_dir / f"phantom_{seed:05d}"
        if not case.is_dir():
            print(f"Making sample phantom (seed {seed}) in {phantom_dir} …", file=sys.stderr)
            generate_cases(phantom_dir, seed, 1, slice_mm=1.0, progress=progress)
        print("Segmenting it with the bundled demo models …", file=sys.stderr)
        result_dir = out / "result" / case.name
        options = SegmentOptions(device=device, overwrite=True, overview_png=True)
        result = segment_case(case / "ct.nii.gz", result_dir, options, progress=progress)
    finally:
        close()
    scores = evaluate_folders(out / "result", phantom_dir)["summary"]
    from .cli.commands_segment import print_summary

    print_summary(result.report, result_dir)
    print(f"  against the phantom's truth: Dice {_num(scores.get('mean_dice')):.3f}, "
          f"label accuracy {_num(scores.get('mean_label_accuracy')):.3f}, "
          f"landmark error {_num(scores.get('landmark_mean_error_slices')):.2f} slices", file=sys.stderr)
    print(f"  overview image: {result_dir / 'overview.png'}", file=sys.stderr)
    return result.report
