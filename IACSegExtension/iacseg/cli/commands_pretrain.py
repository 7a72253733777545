"""``iacseg pretrain mae|desd``: self-supervised pre-training on unlabelled CT (no truth labels needed)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .progress_view import PROGRESS_MODES, make_progress


def _pretraining_data(args: argparse.Namespace) -> tuple[Any, dict[str, Any] | None]:
    """``(data, phantom_options)`` from exactly one of --data or --phantoms."""
    from ..core.errors import InputError
    from .commands_models import training_data

    if (args.data is None) == (args.phantoms is None):
        raise InputError("give either --data DIR (a folder of CTs or case folders) or --phantoms N (synthetic)")
    return training_data(args, "pre-training", min_phantoms=1)


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    """The options among ``names`` that were given (absent ones keep the trainer's defaults)."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _run(args: argparse.Namespace, what: str, hp: dict[str, Any]) -> int:
    from ..models.output_folder import check_model_output

    # before any data is read: never a user's folder, an input, the current/home folder; an earlier model
    # folder of ours only with --overwrite
    check_model_output(args.output, inputs=[args.data], overwrite=args.overwrite)
    data, phantom_options = _pretraining_data(args)
    if what == "mae":
        from ..train.pretrain_mae import pretrain_mae as pretrain
    else:
        from ..train.pretrain_desd import pretrain_desd as pretrain
    progress, close = make_progress(args.progress, desc=f"pretrain {what} ")
    try:
        out = pretrain(data, Path(args.output), progress=progress, phantom_options=phantom_options, **hp)
    finally:
        close()
    print(f"model written to {out}", file=sys.stderr)
    return 0


_COMMON = ("epochs", "steps_per_epoch", "batch", "lr", "device", "seed")


def cmd_pretrain_mae(args: argparse.Namespace) -> int:
    from ..core.errors import InputError

    hp = _given(args, _COMMON + ("config", "patch", "mask_ratio", "name"))
    if args.roi is not None:
        if min(args.roi) < 1:
            raise InputError("--roi needs three positive voxel counts K J I (slices, rows, columns)")
        hp["roi_size"] = tuple(args.roi)
    return _run(args, "mae", hp)


def cmd_pretrain_desd(args: argparse.Namespace) -> int:
    from ..core.errors import InputError

    hp = _given(args, _COMMON + ("name",))
    if args.patch is not None:
        if min(args.patch) < 1:
            raise InputError("--patch needs three positive voxel counts K J I (slices, rows, columns)")
        hp["patch"] = tuple(args.patch)
    return _run(args, "desd", hp)


def _add_common(p: argparse.ArgumentParser, data_help: str) -> None:
    p.add_argument("--data", default=None, help=data_help)
    p.add_argument("--phantoms", type=int, default=None, help="pre-train on N synthetic phantoms made on the fly")
    p.add_argument("--phantom-seed", type=int, default=1000, help="first phantom seed (default 1000)")
    p.add_argument("--phantom-slice-mm", type=float, default=None, help="phantom slice thickness (mm; default random)")
    p.add_argument("--phantom-matrix", type=int, default=None, help="phantom in-plane matrix (pixels; default 512)")
    p.add_argument("-o", "--output", required=True, help="new model folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output folder that holds an earlier IACSeg model (nothing else)")
    p.add_argument("--name", default=None, help="name of the new model")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--steps-per-epoch", type=int, default=None, help="optimiser steps per epoch")
    p.add_argument("--batch", type=int, default=None, help="samples per step")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=None, help="random seed")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="bar")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="self-supervised pre-training on unlabelled CT (MAE for ViTs, DeSD for the "
                                        "U-Net encoder)")
    kinds = p.add_subparsers(dest="what", metavar="METHOD")
    kinds.required = True
    q = kinds.add_parser("mae", help="3D masked autoencoder: pre-train a ViTiac encoder (Jin et al.)",
                         description="Pre-train a 3D ViT as a masked autoencoder on the skull-base ICA regions of "
                                     "unlabelled CTs; the model folder initialises ViT segmenters and gives GRCSF "
                                     "its residual maps.")
    _add_common(q, "folder of CTs or case folders (no truth needed; truth_landmarks.mrk.json is used when present)")
    q.add_argument("--config", choices=("tiny", "S", "M", "L"), default=None,
                   help="ViTiac size: S/M/L = encoder width 240/480/960 (default S); tiny for tests")
    q.add_argument("--patch", type=int, choices=(4, 8, 16), default=None,
                   help="cube (token) size in voxels (default 8)")
    q.add_argument("--roi", type=int, nargs=3, default=None, metavar=("K", "J", "I"),
                   help="training block (slices, rows, columns), multiples of the patch (default 32 64 64)")
    q.add_argument("--mask-ratio", type=float, default=None, help="fraction of cubes hidden (default 0.9)")
    q.set_defaults(func=cmd_pretrain_mae)
    q = kinds.add_parser("desd", help="DeSD self-distillation: pre-train the U-Net encoder (Seia et al.)",
                         description="Pre-train the segmenter's ResEnc U-Net encoder by deep self-distillation on "
                                     "unlabelled CT; `iacseg train segmenter --init FOLDER` then fine-tunes it.")
    _add_common(q, "folder of case folders (ct + truth_* files; the labels are not used)")
    q.add_argument("--patch", type=int, nargs=3, default=None, metavar=("K", "J", "I"),
                   help="view size (slices, rows, columns)")
    q.set_defaults(func=cmd_pretrain_desd)
