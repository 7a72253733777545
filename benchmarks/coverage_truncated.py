"""Partial coverage (issue 10): does the quality control call exactly the segments a truncated scan cuts *not
assessable*?

    .venv/bin/python benchmarks/coverage_truncated.py [--families soft,bone,thick,aged] [--per-family 2] [-o DIR]

For each family and each truncation (``top``: the last slice lies between the petrolingual ligament + 2 mm and the
anterior clinoid − 2 mm; ``bottom``: the first slice between the carotid canal + 2 mm and the petrolingual − 2 mm),
``--per-family`` phantoms (matrix 256 to keep it quick; seeds 86000 + …, reserved for this run), segmented with
the default models. By construction a ``top`` scan cuts the cavernous segment and misses the supraclinoid one on
both sides; a ``bottom`` scan misses the cervical and cuts the petrous segment. Per case: the segments called not
assessable against that set — *missed* (a cut segment reported with a volume, the error that matters) and *extra*
(a covered segment withheld). Writes ``coverage.json`` with the numbers and the commit.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "IACSegExtension"))
sys.path.insert(0, str(ROOT / "benchmarks"))
SEED0 = 86000


def cut_by_design(truncate: str) -> set[str]:
    """The segments a ``truncate`` phantom cuts or misses on both sides."""
    parts = ("cavernous", "supraclinoid") if truncate == "top" else ("cervical", "petrous")
    return {f"{side}_{p}" for side in "LR" for p in parts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default="soft,bone,thick,aged")
    ap.add_argument("--per-family", type=int, default=2)
    ap.add_argument("-o", "--output", default="coverage_truncated")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from iacseg.phantom import generate_cases
    from robustness_families import checkout_commit, run_case

    out = Path(args.output)
    commit = checkout_commit()
    rows, seed, t0 = [], SEED0, time.perf_counter()
    for family in [f.strip() for f in args.families.split(",") if f.strip()]:
        for truncate in ("top", "bottom"):
            for _ in range(args.per_family):
                truth = out / "truth" / f"{family}_{truncate}"
                case = truth / f"phantom_{seed:05d}"
                if not case.is_dir():
                    generate_cases(truth, seed, 1, family=family, truncate=truncate, matrix=256)
                rec = run_case(case / "ct.nii.gz", out / "pred" / f"{family}_{truncate}_{seed}", args.device)
                expected, called = cut_by_design(truncate), set(rec.get("not_assessable", []))
                rows.append({"case": f"{family}/{case.name}", "truncate": truncate, "ok": rec["ok"],
                             "qc_status": rec.get("qc_status"), "not_assessable": sorted(called),
                             "missed": sorted(expected - called), "extra": sorted(called - expected),
                             "error": rec.get("error")})
                print(json.dumps(rows[-1]), flush=True)
                seed += 1
    done = [r for r in rows if r["ok"]]
    summary = {"commit": commit, "cases": len(rows), "failed": len(rows) - len(done),
               "exact": sum(1 for r in done if not r["missed"] and not r["extra"]),
               "cut_segments": 4 * len(done), "missed": sum(len(r["missed"]) for r in done),
               "extra": sum(len(r["extra"]) for r in done), "minutes": round((time.perf_counter() - t0) / 60, 1)}
    (out / "coverage.json").write_text(json.dumps({"summary": summary, "cases": rows}, indent=2))
    print(f"\n{summary['cases']} cases ({summary['failed']} failed): {summary['exact']} exactly right; of "
          f"{summary['cut_segments']} cut segments {summary['missed']} reported with a volume (missed); "
          f"{summary['extra']} covered segments withheld (extra); {summary['minutes']} min at {commit}")


if __name__ == "__main__":
    main()
