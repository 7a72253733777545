"""``iacseg export-nnunet``: truth-layout case folders → an nnU-Net v2 raw dataset.

(Running a trained nnU-Net v2 model needs no command of its own: ``iacseg segment --model nnunet:PATH``.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .progress_view import PROGRESS_MODES, make_progress


def cmd_export_nnunet(args: argparse.Namespace) -> int:
    from ..train.nnunet_export import export_truth_cases

    progress, close = make_progress(args.progress, desc="export ")
    try:
        path = export_truth_cases(args.data, Path(args.output), dataset_id=args.dataset_id,
                                  dataset_name=args.dataset_name, val_fraction=args.val_fraction,
                                  keep_names=args.keep_names, progress=progress)
    finally:
        close()
    print(path)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from ..train.nnunet_export import DEFAULT_DATASET_ID, DEFAULT_DATASET_NAME

    p = sub.add_parser("export-nnunet", help="export truth-layout case folders as an nnU-Net v2 dataset "
                                             "(imagesTr/labelsTr, dataset.json, splits_final.json)")
    p.add_argument("--data", required=True,
                   help="folder of case folders (ct.nii.gz or dicom/ + truth_calcifications.nii.gz + "
                        "truth_landmarks.mrk.json), or one case folder")
    p.add_argument("-o", "--output", required=True, help="folder to write Dataset<ID>_<NAME> into (nnUNet_raw)")
    p.add_argument("--dataset-id", type=int, default=DEFAULT_DATASET_ID, help="nnU-Net dataset id, 1..999")
    p.add_argument("--dataset-name", default=DEFAULT_DATASET_NAME)
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of cases in the validation fold of splits_final.json (default 0.2)")
    p.add_argument("--keep-names", action="store_true",
                   help="use the case folder names as case ids (default: <name>_000, … — folder names can "
                        "identify people)")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="bar")
    p.set_defaults(func=cmd_export_nnunet)
