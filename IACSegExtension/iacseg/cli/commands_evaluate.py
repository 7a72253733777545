"""``iacseg evaluate``: predictions against truth (Dice, volumes, labels, landmarks)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .progress_view import PROGRESS_MODES, make_progress


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..core.errors import InputError
    from ..evaluate import evaluate_folders, format_summary

    if args.bootstrap < 1:
        raise InputError(f"--bootstrap must be at least 1 resample, not {args.bootstrap}")
    from .validate import parse_cutpoints

    cut = parse_cutpoints(args.risk_cutpoints)
    progress, close = make_progress(args.progress, desc="evaluate ")
    try:
        result = evaluate_folders(Path(args.pred), Path(args.truth), progress=progress, n_resamples=args.bootstrap,
                                  seed=args.seed, risk_cutpoints_mm3=cut)
    finally:
        close()
    if args.plots:
        from ..evaluate.plots import evaluation_plots

        result["plots"] = evaluation_plots(Path(args.plots), result)
    if args.output:
        from ..core.files import write_text_atomic

        write_text_atomic(args.output, json.dumps(result, indent=2, default=float))
    print(format_summary(result))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="compare predictions with truth (Dice, volumes, labels, landmarks)")
    p.add_argument("--pred", required=True, help="folder of prediction case folders (or one case folder)")
    p.add_argument("--truth", required=True, help="folder of truth case folders (or one case folder)")
    p.add_argument("-o", "--output", default=None, help="write all metrics as JSON here")
    p.add_argument("--plots", default=None, help="folder for bland_altman.png and segment_volumes.png")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95 %% intervals")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default 0)")
    p.add_argument("--risk-cutpoints", default=None,
                   help="risk groups from the engine's cut points in mm³ (e.g. 30,100) instead of quartiles of "
                        "the true volumes")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="none")
    p.set_defaults(func=cmd_evaluate)
