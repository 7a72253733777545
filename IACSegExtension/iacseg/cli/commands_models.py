"""``iacseg models`` and ``iacseg train``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .progress_view import PROGRESS_MODES, make_progress


def cmd_models(args: argparse.Namespace) -> int:
    from ..models import find_models

    models = find_models()
    if args.json:
        print(json.dumps(models, indent=2, default=str))
        return 0
    if not models:
        print("no models found (search path: $IACSEG_MODEL_PATH, ~/.iacseg/models, Resources/Models)")
        return 0
    print(f"{'name':24s} {'kind':10s} {'version':8s} {'sha256':12s} path")
    for m in models:
        print(f"{m.get('name', '?'):24s} {m.get('kind', '?'):10s} {str(m.get('version', '?')):8s} "
              f"{str(m.get('sha256', ''))[:12]:12s} {m.get('path', '')}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..train import train_landmarks, train_segmenter

    if (args.data is None) == (args.phantoms is None):
        raise InputError("give either --data DIR (case folders in the truth format) or --phantoms N (synthetic)")
    if args.data is not None:
        data = Path(args.data)
        if not data.is_dir():
            raise InputError(f"training data folder {data} does not exist")
    else:
        if args.phantoms < 2:
            raise InputError("--phantoms needs at least 2 (one is held out for validation)")
        data = range(args.phantom_seed, args.phantom_seed + args.phantoms)
    hp = {k: v for k, v in {"epochs": args.epochs, "device": args.device, "seed": args.seed}.items() if v is not None}
    if args.init:
        if args.what != "segmenter":
            raise InputError("--init (fine-tuning) is available for the segmenter only")
        from ..models import resolve_model

        hp["init"] = resolve_model(args.init, "segmenter")
    progress, close = make_progress(args.progress, desc=f"train {args.what} ")
    try:
        fn = train_segmenter if args.what == "segmenter" else train_landmarks
        out = fn(data, Path(args.output), progress=progress, **hp)
    finally:
        close()
    print(f"model written to {out}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the models on the search path")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("train", help="train the segmenter or the landmark model")
    p.add_argument("what", choices=("segmenter", "landmarks"))
    p.add_argument("--data", default=None, help="folder of case folders (ct + truth_* files)")
    p.add_argument("--phantoms", type=int, default=None, help="train on N synthetic phantoms made on the fly")
    p.add_argument("--phantom-seed", type=int, default=1000, help="first phantom seed (default 1000)")
    p.add_argument("-o", "--output", required=True, help="new model folder")
    p.add_argument("--init", default=None, help="fine-tune from this segmenter (model folder or name)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=None, help="random seed of training")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="bar")
    p.set_defaults(func=cmd_train)
