"""Robustness run (issue 10): does `iacseg segment` finish, with ordered landmarks and a QC status, on phantoms of
families never used in training, on truncated scans and on the real GE series?

    .venv/bin/python benchmarks/robustness_families.py [--families thick,aged] [--per-family 10] [-o DIR]

For each family: ``--per-family`` phantoms (seeds 80000 + 100·family index + n), every third one a DICOM series
(tilt/uneven spacing come from the family), two truncated (one ``bottom``, one ``top``). Then the GE series of
Testing/data. Each case is segmented in-process with the default models (a DICOM series with missing slices is
refused by design unless gaps are allowed: such a case is run again with ``allow_gaps`` and recorded as
``refused_without_allow_gaps``); a case *fails* when segment raises,
when a contract file is missing, when landmarks are out of order, or when a truncated case does not report the
segments it cannot cover as not assessable. Prints a table and writes ``robustness.json`` (numbers, commit).
Seeds 80000–80999 are reserved for this run (training < 50000, acceptance 70000+, LOFO evaluation 81000+).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "IACSegExtension"))
GE = ROOT / "Testing" / "data" / "dcm_qa_ct_GE"


def expected_missing(truncate: str | None) -> set[str]:
    """Segments a truncated phantom cannot show (its scan stops short of them entirely)."""
    if truncate == "bottom":
        return {"L_cervical", "R_cervical"}
    if truncate == "top":
        return {"L_supraclinoid", "R_supraclinoid"}
    return set()


def checkout_commit() -> str:
    """The short hash of the checkout the benchmark runs from (recorded with its numbers)."""
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()


def run_case(ct: Path, out: Path, device: str, segmenter: str | None = None, landmarks: str | None = None) -> dict:
    """Segment ``ct`` into ``out`` in-process and check the result (`check_output`); any exception is a failure."""
    from iacseg.pipeline import SegmentOptions, segment_case

    from iacseg.core.errors import InputError

    t0 = time.perf_counter()
    refused = None
    options = SegmentOptions(device=device, overwrite=True, segmenter=segmenter, landmark_model=landmarks)
    try:
        try:
            segment_case(ct, out, options)
        except InputError as exc:
            if "missing slices" not in str(exc):
                raise
            # by design (issue 11): a series with missing slices is refused with one line unless the user allows
            # gaps; the case counts only if it then runs
            refused = str(exc).splitlines()[0]
            segment_case(ct, out, dataclasses.replace(options, allow_gaps=True))
    except Exception as exc:  # noqa: BLE001 — the point is to record any failure
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc(limit=3),
                "seconds": time.perf_counter() - t0, "refused_without_allow_gaps": refused}
    return {**check_output(out), "seconds": round(time.perf_counter() - t0, 1),
            "refused_without_allow_gaps": refused}


def check_output(out: Path) -> dict:
    """Every contract file, landmarks in order, a QC status: ``{"ok", "qc_status", "qc_codes", "not_assessable", …}``."""
    from iacseg.core.contracts import LABELS_FILE, LANDMARKS_FILE, REPORT_CSV, REPORT_JSON, SEGMENTATION_FILE
    from iacseg.mapping import check_landmark_order
    from iacseg.outputs.markups import read_landmarks

    missing = [f for f in (LABELS_FILE, SEGMENTATION_FILE, LANDMARKS_FILE, REPORT_JSON, REPORT_CSV)
               if not (out / f).is_file()]
    record: dict = {"ok": not missing, "missing_files": missing}
    try:
        check_landmark_order(read_landmarks(out / LANDMARKS_FILE))
        record["landmarks_ordered"] = True
    except Exception as exc:  # noqa: BLE001
        record.update(ok=False, landmarks_ordered=False, error=str(exc))
    report = json.loads((out / REPORT_JSON).read_text()) if (out / REPORT_JSON).is_file() else {}
    qc = report.get("qc") or {}
    record.update(qc_status=qc.get("status"), qc_codes=[r["code"] for r in qc.get("reasons", [])],
                  not_assessable=qc.get("not_assessable", []))
    if record["qc_status"] not in ("ok", "review", "unusable"):
        record["ok"] = False
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default="soft,bone,thick,aged")
    ap.add_argument("--per-family", type=int, default=6)
    ap.add_argument("-o", "--output", default="/tmp/iacseg-robustness")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from iacseg.phantom import FAMILIES, generate_cases

    out = Path(args.output)
    commit = checkout_commit()
    rows = []
    t_start = time.perf_counter()
    for family in [f.strip() for f in args.families.split(",") if f.strip()]:
        fi = FAMILIES.index(family)
        for n in range(args.per_family):
            seed = 80000 + 100 * fi + n
            truncate = {0: "bottom", 1: "top"}.get(n)
            dicom = n % 3 == 2
            case_dir = out / "truth" / family / f"phantom_{seed:05d}"
            if not case_dir.is_dir():
                generate_cases(case_dir.parent, seed, 1, dicom=dicom, family=family, truncate=truncate)
            ct = case_dir / ("dicom" if dicom else "ct.nii.gz")
            rec = run_case(ct, out / "pred" / family / case_dir.name, args.device)
            expected = expected_missing(truncate)
            if expected and not expected <= set(rec.get("not_assessable", [])):
                rec.update(ok=False, error=f"truncated ({truncate}) but not assessable = {rec.get('not_assessable')}")
            rows.append({"case": f"{family}/{case_dir.name}", "truncate": truncate, "dicom": dicom, **rec})
            print(json.dumps({k: rows[-1].get(k) for k in ("case", "ok", "qc_status", "not_assessable", "seconds",
                                                          "error", "refused_without_allow_gaps")}), flush=True)
    rec = run_case(GE, out / "pred" / "GE", args.device)
    rows.append({"case": "real/GE_dcm_qa_ct", "truncate": None, "dicom": True, **rec})
    print(json.dumps({k: rows[-1].get(k) for k in ("case", "ok", "qc_status", "qc_codes", "seconds", "error")}))
    failed = [r for r in rows if not r["ok"]]
    statuses = {s: sum(1 for r in rows if r.get("qc_status") == s) for s in ("ok", "review", "unusable")}
    refused = sum(1 for r in rows if r.get("refused_without_allow_gaps"))
    summary = {"commit": commit, "cases": len(rows), "failed": len(failed), "qc": statuses,
               "refused_without_allow_gaps": refused,
               "minutes": round((time.perf_counter() - t_start) / 60, 1)}
    (out / "robustness.json").write_text(json.dumps({"summary": summary, "cases": rows}, indent=2))
    print(f"\n{len(rows)} cases, {len(failed)} failed; QC {statuses}; {refused} refused for missing slices until "
          f"gaps were allowed; {summary['minutes']} min at {commit}")
    for r in failed:
        print(f"  FAILED {r['case']}: {r.get('error')}")


if __name__ == "__main__":
    main()
