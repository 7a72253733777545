"""``iacseg segment``, ``batch``, ``relabel`` and ``demo``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .progress_view import PROGRESS_MODES, make_progress


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="segmenter: model folder or name, or nnunet:PATH[,fold=0][,label=N] for a trained "
                        "nnU-Net v2 model (needs iacseg[nnunet]) (default: the bundled demo model)")
    p.add_argument("--landmark-model", default=None, help="landmark model folder or name (default: bundled DST)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--threshold", default="auto", help="probability threshold, or 'auto' for the model's calibrated one")
    p.add_argument("--series", dest="series_uid", default=None, help="DICOM SeriesInstanceUID to use")
    p.add_argument("--risk-cutpoints", default=None,
                   help="total-volume cut points in mm³ for the risk groups, comma-separated: low|moderate and moderate|high (e.g. 30,100)")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="bar",
                   help="bar for people, jsonl (JSON lines on stdout) for programs, none")
    p.add_argument("--allow-gaps", action="store_true",
                   help="read a DICOM series with missing slices (unreadable slice files or a gap in the slice "
                        "positions), filling the gap by interpolation with a warning; refused without it")


def options_from_args(args: argparse.Namespace, overwrite: bool = False):
    from ..core.threshold import parse_threshold
    from ..pipeline import SegmentOptions

    from .validate import parse_cutpoints

    cut = parse_cutpoints(args.risk_cutpoints)
    return SegmentOptions(segmenter=args.model, landmark_model=args.landmark_model, device=args.device,
                          threshold=parse_threshold(args.threshold), series_uid=args.series_uid,
                          overwrite=overwrite, overview_png=getattr(args, "overview", False), risk_cutpoints_mm3=cut,
                          allow_gaps=getattr(args, "allow_gaps", False))


def print_summary(report: dict, out_dir: Path, stream=None) -> None:
    """A short human summary of a report (on stderr unless ``stream`` is given)."""
    stream = stream or sys.stderr
    total = report.get("total", {})
    rg = report.get("risk_group", {})
    print(f"Wrote {out_dir}", file=stream)
    incomplete = "" if total.get("complete", True) else " (incomplete: some segments not assessable)"
    print(f"  total calcium {total.get('volume_mm3') or 0:.1f} mm³{incomplete}, Agatston {total.get('agatston') or 0:.1f}, "
          f"{total.get('lesion_count') or 0} lesion(s), risk group {rg.get('group', rg) if isinstance(rg, dict) else rg}",
          file=stream)
    for name, seg in report.get("segments", {}).items():
        if seg.get("assessable") is False:
            print(f"  {name:16s} not assessable (outside the scanned range)", file=stream)
        elif (seg.get("volume_mm3") or 0) > 0:
            print(f"  {name:16s} {seg['volume_mm3']:8.1f} mm³  Agatston {seg.get('agatston') or 0:7.1f}  "
                  f"lesions {seg.get('lesion_count') or 0}", file=stream)
    qc = report.get("qc") or {}
    if qc:
        print(f"  quality control: {qc.get('status')}", file=stream)
        for r in qc.get("reasons", []):
            print(f"    - {r.get('message')}", file=stream)
    for w in report.get("warnings", []):
        print(f"  warning: {w}", file=stream)


def cmd_segment(args: argparse.Namespace) -> int:
    from ..pipeline import segment_case

    options = options_from_args(args, overwrite=args.overwrite)
    progress, close = make_progress(args.progress, desc="iacseg ")
    try:
        result = segment_case(args.input, args.output, options, progress=progress)
    finally:
        close()
    if args.progress != "jsonl":
        print_summary(result.report, result.out_dir)
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from ..batch import parse_shard, run_batch
    from ..batch.ranks import run_ranked, torchrun_world

    options = options_from_args(args, overwrite=args.overwrite)
    failures: list[str] = []
    progress, close = make_progress(args.progress, desc="batch ")
    def status_line(status: dict) -> None:  # jsonl: one structured line per finished case, beside the stages
        print(json.dumps({"stage": "batch_status", **status}), flush=True)

    on_status = status_line if args.progress == "jsonl" else None
    run = dict(progress=progress, on_status=on_status, read_workers=args.read_workers,
               write_workers=args.write_workers, prefetch=args.prefetch,
               on_failure=lambda case, message: failures.append(f"batch: {case} failed: {message}"))
    try:
        if torchrun_world() is not None:  # started by torchrun: this process is one rank
            counts = run_ranked(args.inputs, args.output, options, **run)
        else:
            counts = run_batch(args.inputs, args.output, options, shard=parse_shard(args.shard), **run)
    finally:
        close()
    for line in failures:  # after the progress bar is closed: one line per failed case
        print(line, file=sys.stderr)
    print(f"batch: {counts['done']} done, {counts['skipped']} skipped (already finished), "
          f"{counts['failed']} failed — see {Path(args.output) / 'summary.csv'}", file=sys.stderr)
    return 1 if counts["failed"] else 0


def _count(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 64:
        raise argparse.ArgumentTypeError(f"{text} is not a count from 0 to 64")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"{text} is not a count from 1 to 64")
    return value


def cmd_relabel(args: argparse.Namespace) -> int:
    from ..relabel import relabel_case

    result = relabel_case(args.mask, args.landmarks, args.output, ct_path=args.ct, report_path=args.report,
                          overwrite=args.overwrite)
    print_summary(result, Path(args.output))
    return 0


def _num(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def print_demo(demo, stream=None) -> None:
    """The demo's summary for people (on stderr unless ``stream`` is given): the report, the scores against the
    phantom's truth and where the overview image is."""
    stream = stream or sys.stderr
    print_summary(demo.report, demo.result_dir, stream=stream)
    scores = demo.scores
    print(f"  against the phantom's truth: Dice {_num(scores.get('mean_dice')):.3f}, "
          f"label accuracy {_num(scores.get('mean_label_accuracy')):.3f}, "
          f"landmark error {_num(scores.get('landmark_mean_error_slices')):.2f} slices", file=stream)
    print(f"  overview image: {demo.overview}", file=stream)


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    progress, close = make_progress(args.progress, desc="demo ")
    try:
        demo = run_demo(Path(args.output), seed=args.seed, device=args.device, progress=progress,
                        announce=lambda step: print(step, file=sys.stderr))
    finally:
        close()
    print_demo(demo)
    report = demo.report
    print(json.dumps({k: report[k] for k in ("total", "risk_group") if k in report}, indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="segment one CT into the contract output folder")
    p.add_argument("input", help="DICOM folder, NIfTI (.nii/.nii.gz), NRRD or MHA file")
    p.add_argument("-o", "--output", required=True, help="output folder (created atomically)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output folder that holds a previous IACSeg result (nothing else)")
    p.add_argument("--overview", action="store_true", help="also write overview.png")
    add_model_options(p)
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("batch", help="segment many CTs (a case per subfolder); writes summary.csv")
    p.add_argument("inputs", nargs="+", help="CT files, case folders, or folders of case folders")
    p.add_argument("-o", "--output", required=True, help="output folder: one subfolder per case + summary.csv")
    p.add_argument("--shard", default=None, help="i/n: process every n-th case starting at i (parallel runs)")
    p.add_argument("--overwrite", action="store_true",
                   help="segment again cases that already have an IACSeg result (replaces only those folders)")
    p.add_argument("--overview", action="store_true", help="also write overview.png per case")
    p.add_argument("--read-workers", type=_count, default=1,
                   help="processes reading CTs ahead while the current one is computed (0: read in turn; default 1)")
    p.add_argument("--prefetch", type=_positive, default=2, help="CTs read ahead at most (memory bound; default 2)")
    p.add_argument("--write-workers", type=_count, default=1,
                   help="threads writing finished cases while the next is computed (0: write in turn; default 1)")
    add_model_options(p)
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("relabel", help="re-map a calcification mask to ICA segments with corrected landmarks")
    p.add_argument("--mask", required=True, help="calcifications.nii.gz (any non-zero voxel is calcium)")
    p.add_argument("--landmarks", required=True, help="corrected landmarks (.mrk.json)")
    p.add_argument("--ct", default=None, help="the CT, for HU-based measures (Agatston, mass, peak HU)")
    p.add_argument("--report", default=None, help="the original report.json (default: beside the mask) for the plane")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output folder that holds a previous IACSeg result (nothing else)")
    p.set_defaults(func=cmd_relabel)

    p = sub.add_parser("demo", help="make a sample phantom, segment it with the demo models, write a PNG overview")
    p.add_argument("-o", "--output", default="demo-output", help="folder for the phantom and the results")
    p.add_argument("--seed", type=int, default=90001, help="phantom seed (default 90001, never used for training)")
    p.add_argument("--device", default="auto")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="bar")
    p.set_defaults(func=cmd_demo)
