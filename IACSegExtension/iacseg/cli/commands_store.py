"""``iacseg store …``: the corrections store from the command line (init, add, list, show, status, verify,
export, agreement). Exit codes: 0 ok, 1 ``verify`` found damage, 2 bad input (one line on stderr)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _open(args: argparse.Namespace) -> Any:
    from ..store import CorrectionStore

    return CorrectionStore.open(args.store)


def _print_warnings(store: Any) -> None:
    """What a write noted for the user (e.g. removed leftovers of crashed saves), on stderr."""
    for w in getattr(store, "warnings", []):
        print(f"iacseg: warning: {w}", file=sys.stderr)


def cmd_init(args: argparse.Namespace) -> int:
    """``store init STORE``: create an empty store."""
    from ..store import CorrectionStore

    store = CorrectionStore.init(args.store)
    print(f"created corrections store {store.root}")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    """``store add``: add a CT and its engine output; prints the new case id."""
    store = _open(args)
    try:
        case_id = store.add_case(Path(args.image), Path(args.engine_output), case_id=args.case_id,
                                 subject=args.subject, keep_identifiers=args.keep_identifiers, reader=args.reader,
                                 allow_gaps=args.allow_gaps)
    finally:
        _print_warnings(store)
    print(case_id)
    return 0


def _approved_text(approved: Any) -> str:
    return f"{approved[0]}:v{approved[1]}" if approved else "-"


def cmd_list(args: argparse.Namespace) -> int:
    """``store list``: one line (or JSON object) per case."""
    from ..store.cases import describe_corrections

    infos = _open(args).cases()
    if args.json:
        print(json.dumps([{"case_id": c.case_id, "split": c.split, "status": c.status, "created": c.created,
                           "corrections": c.corrections, "approved": list(c.approved) if c.approved else None}
                          for c in infos], indent=2))
        return 0
    if not infos:
        print("no cases yet; add one with 'iacseg store add STORE --image CT --engine-output OUT'")
        return 0
    print(f"{'case':<16} {'split':<6} {'status':<10} {'approved':<16} corrections")
    for c in infos:
        print(f"{c.case_id:<16} {c.split:<6} {c.status:<10} {_approved_text(c.approved):<16} "
              f"{describe_corrections(c.corrections) or '-'}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """``store show``: one case's acquisition, models, corrections and status."""
    shown = _open(args).show(args.case_id)
    if args.json:
        print(json.dumps(shown, indent=2))
        return 0
    acq = shown.get("acquisition") or {}
    print(f"case {shown['case_id']}  split {shown['split']}  status {shown['status']}  "
          f"approved {_approved_text(shown['approved'])}")
    print(f"  added {shown['created']} from {shown.get('source_kind')}; engine {shown.get('engine_version')}; "
          f"slice thickness {acq.get('slice_thickness_mm')} mm")
    for m in shown.get("models") or []:
        print(f"  model {m.get('kind')}: {m.get('name')} {m.get('version')} ({str(m.get('sha256'))[:12]})")
    for c in shown["corrections"]:
        note = f" — {c['note']}" if c["note"] else ""
        print(f"  correction {c['reader']} v{c['version']} saved {c['saved']} ({c['edit_count']} edits){note}")
    print(f"  {len(shown['ledger'])} ledger entries")
    return 0


def _parse_approve(text: str) -> tuple[str, int]:
    from ..core.errors import InputError

    reader, _, version = text.rpartition(":")
    version = version.lstrip("vV")
    if not reader or not version.isdigit():
        raise InputError(f"--approve {text!r} must be READER:VERSION, e.g. 'Dr A:2'")
    return reader, int(version)


def cmd_status(args: argparse.Namespace) -> int:
    """``store status``: set a case's status; ``--approve READER:VERSION`` picks the approved correction."""
    store = _open(args)
    approved = _parse_approve(args.approve) if args.approve else None
    try:
        store.set_status(args.case_id, args.status, args.reader, approved=approved)
    finally:
        _print_warnings(store)
    info = store.case(args.case_id)
    print(f"{info.case_id}: {info.status}" + (f" ({_approved_text(info.approved)})" if info.approved else ""))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """``store verify``: exit 0 when every file matches the ledger (warnings printed), else 1."""
    report = _open(args).verify()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0 if report.ok else 1
    for w in report.warnings:
        print(f"warning: {w}")
    for p in report.problems:
        print(f"problem: {p}")
    state = "ok" if report.ok else f"DAMAGED ({len(report.problems)} problems)"
    anchored = f", {report.anchored_entries} anchored" if report.anchored_entries is not None else ""
    print(f"{state}: {report.files_checked} files match the ledger ({report.entries} entries{anchored}, "
          f"{len(report.warnings)} warnings)")
    return 0 if report.ok else 1


def cmd_export(args: argparse.Namespace) -> int:
    """``store export``: nnU-Net v2 dataset + landmark list of the cases with the given statuses."""
    from ..store.export import export_training_set

    statuses = tuple(args.status) if args.status else ("approved",)
    path = export_training_set(_open(args), Path(args.output), dataset_id=args.dataset_id,
                               dataset_name=args.dataset_name, statuses=statuses)
    print(path)
    return 0


def cmd_agreement(args: argparse.Namespace) -> int:
    """``store agreement``: model vs reader and reader vs reader agreement (text or JSON, CSV with -o)."""
    from ..store import agreement

    result = agreement.store_agreement(_open(args))
    if args.output:
        agreement.write_agreement_csv(result, Path(args.output))
    formatter = getattr(agreement, "format_agreement", None)
    if args.json or formatter is None:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(formatter(result))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``iacseg store`` and its sub-commands to the top-level parser."""
    p = sub.add_parser("store", help="the corrections store: readers' corrections, ledger, export for training")
    ssub = p.add_subparsers(dest="store_command", metavar="STORE_COMMAND")
    ssub.required = True

    def add(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        """A ``store`` sub-command taking the store folder as its first argument."""
        q = ssub.add_parser(name, help=help_text)
        q.add_argument("store", metavar="STORE", help="the store folder")
        q.set_defaults(func=func)
        return q

    add("init", cmd_init, "create an empty store in a new or empty folder")
    q = add("add", cmd_add, "add a CT and its engine output as a new case (prints the case id)")
    q.add_argument("--image", required=True, help="the CT: DICOM folder, .nii.gz, .nrrd or .mha")
    q.add_argument("--engine-output", required=True, help="the folder 'iacseg segment CT -o OUT' wrote for it")
    q.add_argument("--case-id", default=None, help="case id (letters, digits, _ or -; default: random opaque id)")
    q.add_argument("--subject", default=None,
                   help="patient key for the split (default: DICOM PatientID, else the case id); stored hashed")
    q.add_argument("--keep-identifiers", action="store_true",
                   help="keep the DICOM patient/study identifiers in case.json (default: not copied)")
    q.add_argument("--reader", default="engine", help="who adds the case (recorded in the ledger)")
    q.add_argument("--allow-gaps", action="store_true",
                   help="fill missing or unreadable DICOM slices by interpolation (named in a warning) instead of "
                        "refusing the series")
    q = add("list", cmd_list, "list cases: split, status, approved correction, readers and versions")
    q.add_argument("--json", action="store_true")
    q = add("show", cmd_show, "one case: acquisition, models, corrections, status")
    q.add_argument("case_id", metavar="CASE_ID")
    q.add_argument("--json", action="store_true", help="everything, including the case's ledger entries")
    q = add("status", cmd_status, "set a case's status (approve a correction)")
    q.add_argument("case_id", metavar="CASE_ID")
    q.add_argument("status", choices=("todo", "in_review", "corrected", "approved"))
    q.add_argument("--reader", required=True, help="who sets the status (recorded in the ledger)")
    q.add_argument("--approve", default=None, metavar="READER:VERSION",
                   help="the correction approved (default: the newest one)")
    q = add("verify", cmd_verify, "check every file against the ledger's checksums and the ledger against its "
                                  "anchor in store.json (exit 1 on damage)")
    q.add_argument("--json", action="store_true")
    q = add("export", cmd_export, "export an nnU-Net v2 dataset and a landmark list for training")
    q.add_argument("-o", "--output", required=True, help="folder to write Dataset<ID>_<NAME> into")
    q.add_argument("--dataset-id", type=int, default=501)
    q.add_argument("--dataset-name", default="ICACalc")
    q.add_argument("--status", action="append", default=None, choices=("todo", "in_review", "corrected", "approved"),
                   help="export cases with this status (repeatable; default: approved)")
    q = add("agreement", cmd_agreement, "agreement model vs reader and reader vs reader (Dice, volume, landmarks)")
    q.add_argument("--json", action="store_true", help="print the whole result as JSON")
    q.add_argument("-o", "--output", default=None, help="also write the per-case rows as CSV here")
