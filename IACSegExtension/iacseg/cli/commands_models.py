"""``iacseg models [promote|rollback]`` and ``iacseg train``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .progress_view import PROGRESS_MODES, make_progress


def _default_paths() -> dict[str, str]:
    """Resolved folder of the default model of each kind (promoted, else the shipped demo), when it exists."""
    from ..core.errors import ModelError
    from ..models.folders import KINDS
    from ..models.defaults import resolve_model

    out = {}
    for kind in KINDS:
        try:
            out[kind] = str(resolve_model(None, kind).resolve())
        except ModelError:
            pass
    return out


def cmd_models(args: argparse.Namespace) -> int:
    from ..core.errors import ModelError
    from ..models.folders import find_models
    from ..models.folders import describe_model

    skipped: list[str] = []
    models = find_models(skipped)
    defaults = _default_paths()
    listed = {m["path"] for m in models}
    for kind, path in defaults.items():  # a promoted model outside the search path is listed too
        if path not in listed:
            try:
                models.append(describe_model(path))
            except ModelError as exc:
                skipped.append(str(exc))
    for m in models:
        m["default"] = defaults.get(str(m.get("kind"))) == m["path"]
    for reason in skipped:  # damaged folders are left out of the list, each said on one line
        print(f"iacseg: warning: model folder left out: {reason}", file=sys.stderr)
    if args.json:
        print(json.dumps(models, indent=2, default=str))
        return 0
    if not models:
        print("no models found (search path: $IACSEG_MODEL_PATH, $IACSEG_HOME/models (~/.iacseg/models), "
              "the shipped iacseg/models/shipped)")
        return 0
    print(f"{'name':24s} {'kind':12s} {'version':8s} {'sha256':12s} path")
    for m in models:
        print(f"{str(m.get('name', '?')):24s} {str(m.get('kind', '?')):12s} {str(m.get('version', '?')):8s} "
              f"{str(m.get('sha256', ''))[:12]:12s} {m.get('path', '')}" + ("  [default]" if m["default"] else ""))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from ..models.promote import promote

    result = promote(args.model)
    was = result["previous"] or "the shipped demo model"
    if result["changed"]:
        print(f"default {result['kind']} model is now {result['current']} (was {was}; undo with "
              f"`iacseg models rollback {result['kind']}`)")
    else:
        print(f"{result['current']} is already the default {result['kind']} model")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from ..models.defaults import rollback

    result = rollback(args.kind)
    print(f"default {result['kind']} model is now {result['current'] or 'the shipped demo model'} "
          f"(was {result['previous'] or 'the shipped demo model'})")
    return 0


def _hyperparameters(args: argparse.Namespace) -> dict[str, Any]:
    """Trainer keyword arguments from the options given (absent options keep the trainer's defaults)."""
    from ..core.errors import InputError

    if args.what == "landmarks" and (args.patch is not None or args.steps_per_epoch is not None):
        raise InputError("--patch and --steps-per-epoch are segmenter options; a landmarks epoch is every "
                         "training case once")
    if args.patch is not None and min(args.patch) < 1:
        raise InputError("--patch needs three positive voxel counts K J I (slices, rows, columns)")
    network = {"arch": args.arch, "decoder": args.decoder, "vit_config": args.vit_config, "vit_patch": args.vit_patch}
    if args.what == "landmarks" and any(v is not None for v in network.values()):
        raise InputError("--arch, --decoder, --vit-config and --vit-patch are segmenter options; leave them out "
                         "for the landmarks model")
    hp = {"epochs": args.epochs, "device": args.device, "seed": args.seed, "batch": args.batch, "lr": args.lr,
          "steps_per_epoch": args.steps_per_epoch, "patch": tuple(args.patch) if args.patch else None,
          "name": args.name, "version": args.version, "augment": args.augment,
          "checkpoint_every": _checkpoint_every(args.checkpoint_every), "resume": True if args.resume else None,
          **network}
    return {k: v for k, v in hp.items() if v is not None}


def _checkpoint_every(text: str | None) -> str | int | None:
    """--checkpoint-every: "epoch", "none" or a number of optimiser steps."""
    from ..core.errors import InputError

    if text is None or text in ("epoch", "none"):
        return text
    if not text.isdigit() or int(text) < 1:
        raise InputError(f"--checkpoint-every takes 'epoch', 'none' or a number of steps ≥ 1, not {text!r}")
    return int(text)


def _check_segmenter_network(hp: dict[str, Any], init_dir: Path | None) -> None:
    """Refuse an --arch / --decoder / --vit-* / --init combination before any data is read (exit 2, one line)."""
    from ..train.networks import check_request, read_parent

    check_request(hp.get("arch"), hp, read_parent(init_dir))


def training_data(args: argparse.Namespace, purpose: str = "training",
                  min_phantoms: int = 2) -> tuple[Any, dict[str, Any] | None]:
    """``(data, phantom_options)`` from --data or --phantoms (``purpose`` names the data in the errors; a
    training run holds one phantom out for validation, so it needs ``min_phantoms`` 2)."""
    from ..core.errors import InputError

    if args.data is not None:
        data = Path(args.data)
        if not data.is_dir():
            raise InputError(f"{purpose} data folder {data} does not exist")
        return data, None
    if args.phantoms < min_phantoms:
        raise InputError(f"--phantoms needs at least {min_phantoms}"
                         + (" (one is held out for validation)" if min_phantoms > 1 else ""))
    options = {k: v for k, v in {"slice_mm": args.phantom_slice_mm, "matrix": args.phantom_matrix}.items()
               if v is not None}
    return range(args.phantom_seed, args.phantom_seed + args.phantoms), options or None


def _checked_init(args: argparse.Namespace) -> Path | None:
    """The --init model folder (for --from-store: the default model when none is given), fully checked
    (`iacseg.models.loading.check_model_folder`: config, weights file, shapes) and of a kind that can start the
    training; None for a fresh training."""
    from ..core.errors import InputError
    from ..models.defaults import resolve_model
    from ..models.loading import check_model_folder

    if not args.init and args.from_store is None:
        return None
    folder = resolve_model(args.init, args.what)
    kind = check_model_folder(folder).get("kind")
    allowed = (args.what,) if args.from_store is not None or args.what == "landmarks" \
        else ("segmenter", "desd-encoder", "mae")
    if kind not in allowed:
        raise InputError(f"--init {args.init or folder} is a {kind} model; fine-tuning the {args.what} needs a "
                         f"{args.what} model" + (", a desd-encoder or an mae" if len(allowed) > 1 else ""))
    return folder


def cmd_train(args: argparse.Namespace) -> int:
    from ..core.errors import InputError
    from ..models.output_folder import check_model_output
    from ..train.distributed import is_main

    sources = [s for s in (args.data, args.phantoms, args.from_store) if s is not None]
    if len(sources) != 1:
        raise InputError("give either --data DIR (case folders in the truth format), --phantoms N (synthetic) or "
                         "--from-store STORE (approved corrections)")
    if args.overwrite and args.from_store is not None:
        raise InputError("--overwrite does not apply to --from-store, which always writes a new model folder; give "
                         "a new folder (-o)")
    hp = _hyperparameters(args)
    init = _checked_init(args)
    # before any data is read or any training step: never an input, a user's folder or the current/home folder
    check_model_output(args.output, inputs=[args.data, args.from_store, init], overwrite=args.overwrite)
    main_rank = is_main()  # under torchrun only rank 0 reports
    if args.from_store is not None:
        from ..store.training import retrain_from_store

        progress, close = make_progress(args.progress if main_rank else "none", desc=f"retrain {args.what} ")
        try:
            summary = retrain_from_store(args.what, args.from_store, init=args.init, out=Path(args.output),
                                         progress=progress, **hp)
        finally:
            close()
        if main_rank:  # one line after the JSON progress lines for programs, indented for people
            print(json.dumps(summary, indent=None if args.progress == "jsonl" else 2, default=str), flush=True)
        return 0
    data, phantom_options = training_data(args)
    if init is not None:
        hp["init"] = init
    if args.what == "segmenter":
        _check_segmenter_network(hp, hp.get("init"))
    progress, close = make_progress(args.progress if main_rank else "none", desc=f"train {args.what} ")
    try:
        if args.what == "segmenter":
            from ..train.segmenter import train_segmenter as train
        else:
            from ..train.landmarks import train_landmarks as train
        out = train(data, Path(args.output), progress=progress, phantom_options=phantom_options,
                    overwrite=args.overwrite, **hp)
    finally:
        close()
    if main_rank:
        print(f"model written to {out}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the models (default marked); promote or roll back the default")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    q = actions.add_parser("promote", help="make a model folder (or name) the default of its kind")
    q.add_argument("model", help="model folder or model name")
    q.set_defaults(func=cmd_promote)
    q = actions.add_parser("rollback", help="go back to the previous default model of a kind")
    q.add_argument("kind", choices=("segmenter", "landmarks"))
    q.set_defaults(func=cmd_rollback)

    p = sub.add_parser("train", help="train the segmenter or the landmark model (also under torchrun)",
                       description="Train or fine-tune a model. Under `torchrun --nproc_per_node N -m iacseg train "
                                   "…` the N processes train one model with DDP (effective batch = batch × N); "
                                   "rank 0 validates, saves and reports.")
    p.add_argument("what", choices=("segmenter", "landmarks"))
    p.add_argument("--data", default=None, help="folder of case folders (ct + truth_* files)")
    p.add_argument("--phantoms", type=int, default=None, help="train on N synthetic phantoms made on the fly")
    p.add_argument("--from-store", default=None, metavar="STORE",
                   help="fine-tune on the approved corrections of a corrections store (see `iacseg store`)")
    p.add_argument("--phantom-seed", type=int, default=1000, help="first phantom seed (default 1000)")
    p.add_argument("--phantom-slice-mm", type=float, default=None, help="phantom slice thickness (mm; default random)")
    p.add_argument("--phantom-matrix", type=int, default=None, help="phantom in-plane matrix (pixels; default 512)")
    p.add_argument("-o", "--output", required=True, help="new model folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output folder that holds an earlier IACSeg model (nothing else)")
    p.add_argument("--init", default=None, help="fine-tune from this model (folder or name) of the same kind; "
                   "segmenter: also a desd-encoder folder (resenc-unet: its encoder weights, a fresh decoder) or "
                   "an mae folder (vit: its encoder weights and patch; grcsf: the MAE of its residual maps)")
    p.add_argument("--arch", choices=("resenc-unet", "vit", "grcsf"), default=None,
                   help="segmenter network (default resenc-unet, or the --init model's)")
    p.add_argument("--decoder", choices=("unetr", "sfpn", "upscale-transposed", "upscale-nearest", "mae"),
                   default=None, help="--arch vit: segmentation decoder (default unetr)")
    p.add_argument("--vit-config", choices=("tiny", "S", "M", "L"), default=None,
                   help="--arch vit without an MAE: ViTiac encoder size (default S)")
    p.add_argument("--vit-patch", type=int, choices=(4, 8, 16), default=None,
                   help="--arch vit without an MAE: cube edge of a token in voxels (default 8)")
    p.add_argument("--name", default=None, help="name of the new model (fine-tune: the parent's)")
    p.add_argument("--version", default=None,
                   help="version of the new model (fresh: 1.0; fine-tune: the parent's last number + 1)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--steps-per-epoch", type=int, default=None, help="segmenter: optimiser steps per epoch")
    p.add_argument("--batch", type=int, default=None, help="samples per step and process")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--patch", type=int, nargs=3, default=None, metavar=("K", "J", "I"),
                   help="segmenter: training patch and inference window (slices, rows, columns)")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=None, help="random seed of training")
    p.add_argument("--augment", choices=("monai", "basic", "none"), default=None,
                   help="training augmentation (default monai: spatial, kernel, noise, contrast and, for landmarks, "
                        "slice-thickness transforms; basic: flips and HU jitter; none)")
    p.add_argument("--checkpoint-every", default=None, metavar="N|epoch|none",
                   help="write a checkpoint beside the output (OUTPUT.checkpoint) every N steps or each epoch "
                        "(default epoch); it is removed once the model is written")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted training from OUTPUT.checkpoint (same data and settings)")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="bar")
    p.set_defaults(func=cmd_train)
