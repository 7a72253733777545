"""``iacseg phantom``: synthetic head CTs with exact ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from .progress_view import PROGRESS_MODES, make_progress


def cmd_phantom(args: argparse.Namespace) -> int:
    from ..core.errors import InputError
    from ..core.folder_guard import check_phantom_output
    from ..phantom.generate import case_name, generate_cases

    if args.count < 1:
        raise InputError("--count must be at least 1")
    if args.tilt and not args.dicom:
        raise InputError("--tilt needs --dicom: a gantry tilt only exists in a DICOM series")
    if args.slice_mm is not None and not 0.3 <= args.slice_mm <= 10:
        raise InputError(f"--slice-mm must be between 0.3 and 10 mm, not {args.slice_mm}")
    opts = {k: v for k, v in {"slice_mm": args.slice_mm, "tilt_deg": args.tilt, "matrix": args.matrix,
                              "head_rest": args.head_rest, "family": args.family,
                              "truncate": args.truncate}.items() if v is not None}
    # before anything is generated: never /, the current or home folder, nor a user's folder named like a case
    check_phantom_output(args.output, [case_name(args.seed + n) for n in range(args.count)])
    progress, close = make_progress(args.progress, desc="phantom ")
    try:
        paths = generate_cases(Path(args.output), args.seed, args.count, dicom=args.dicom, progress=progress, **opts)
    finally:
        close()
    for p in paths:
        print(p)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from ..phantom.style import FAMILIES, describe_families

    p = sub.add_parser("phantom", help="make deterministic synthetic head CTs with exact ground truth",
                       description="Make deterministic synthetic head CTs with exact ground truth. Families: "
                                   "classic (the original generator, default); " + describe_families()
                                   + "; any (one of the randomised families, drawn from the seed).")
    p.add_argument("-o", "--output", required=True, help="folder for the case folders (phantom_<seed>)")
    p.add_argument("--seed", type=int, required=True, help="first seed; case i uses seed+i")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--slice-mm", type=float, default=None, help="slice spacing/thickness in mm (default: random)")
    p.add_argument("--tilt", type=float, default=None, help="gantry tilt in degrees (needs --dicom)")
    p.add_argument("--dicom", action="store_true", help="write the CT as a DICOM series instead of ct.nii.gz")
    p.add_argument("--matrix", type=int, default=None,
                   help="in-plane matrix size (default 512 for classic, else the family's draw)")
    p.add_argument("--family", choices=[*FAMILIES, "any"], default=None,
                   help="phantom family: " + ", ".join(FAMILIES) + " or any (default classic)")
    p.add_argument("--truncate", choices=("bottom", "top"), default=None,
                   help="partial coverage: bottom = no cervical segment (scan starts inside the petrous), "
                        "top = scan ends between the petrolingual and the anterior clinoid")
    rest = p.add_mutually_exclusive_group()
    rest.add_argument("--head-rest", dest="head_rest", action="store_true", default=None)
    rest.add_argument("--no-head-rest", dest="head_rest", action="store_false")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="bar")
    p.set_defaults(func=cmd_phantom)
