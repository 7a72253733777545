"""``python -m iacseg.train {segmenter|landmarks} (--data FOLDER | --phantoms A:B) --out MODEL_DIR [options]``.

Trains a model with the recommended defaults (`SEGMENTER_DEFAULTS`, `LANDMARK_DEFAULTS`) and prints one JSON
line of progress per event. ``--phantoms 0:200`` generates phantoms with seeds 0..199 in memory.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence


def _phantom_range(text: str) -> range:
    a, _, b = text.partition(":")
    return range(int(a), int(b)) if b else range(int(a))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iacseg.train", description=__doc__)
    parser.add_argument("kind", choices=("segmenter", "landmarks"))
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="folder of case folders (ct.nii.gz + truth_* files)")
    src.add_argument("--phantoms", type=_phantom_range, help="phantom seeds A:B (in memory)")
    parser.add_argument("--out", required=True, help="model folder to write")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--steps-per-epoch", type=int, help="segmenter only")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--name")
    parser.add_argument("--version")
    parser.add_argument("--resume", action="store_true", help="continue from OUT.checkpoint after an interruption")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="any other hyper-parameter, e.g. --set features=[8,16,32,64]")
    args = parser.parse_args(argv)
    hp: dict[str, Any] = {k: v for k, v in {"epochs": args.epochs, "batch": args.batch, "lr": args.lr,
                                             "name": args.name, "version": args.version}.items() if v is not None}
    if args.kind == "segmenter" and args.steps_per_epoch:
        hp["steps_per_epoch"] = args.steps_per_epoch
    for item in args.set:
        key, _, value = item.partition("=")
        hp[key] = json.loads(value)

    def progress(stage: str, fraction: float, message: str = "") -> None:
        print(json.dumps({"stage": stage, "fraction": round(fraction, 4), "message": message}), flush=True)

    data = args.data if args.data else args.phantoms
    if args.kind == "segmenter":
        from .segmenter import train_segmenter as train
    else:
        from .landmarks import train_landmarks as train
    out = train(data, args.out, device=args.device, seed=args.seed, val_fraction=args.val_fraction,
                progress=progress, resume=args.resume, **hp)
    from .distributed import is_main

    if is_main():  # under torchrun the other ranks return the same folder silently
        print(json.dumps({"stage": "done", "fraction": 1.0, "message": str(out)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
