"""Issue-2 acceptance run: 10 new phantoms (seeds never used for training), slices 0.625–5 mm, two of them
gantry-tilted DICOM series → `iacseg batch` → `iacseg evaluate`. Prints the summary and the per-case table.

    .venv/bin/python benchmarks/acceptance_phantoms.py [-o /tmp/acceptance] [--device cpu]

Training uses seeds < 50000 (see scripts/train_demo_models.py); this uses 70000+.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

CASES = [  # (seed, slice_mm, tilt_deg or None)
    (70001, 0.625, None), (70002, 1.0, None), (70003, 1.25, None), (70004, 2.0, None), (70005, 2.5, None),
    (70006, 3.0, None), (70007, 5.0, None), (70008, 1.0, None), (70009, 1.25, 15.0), (70010, 2.5, 22.0),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-o", "--output", default="/tmp/iacseg-acceptance")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--first-seed", type=int, default=70001,
                    help="seed of the first case (the slice/tilt pattern stays; 70001 = the original set, 71001 = "
                         "the fresh set used after 70001–70010 had served model selection)")
    ap.add_argument("--model", default=None, help="segmenter folder or name (default: the default model)")
    args = ap.parse_args()

    from iacseg.batch import run_batch
    from iacseg.evaluate import evaluate_folders, format_summary
    from iacseg.phantom import generate_cases
    from iacseg.pipeline import SegmentOptions

    out = Path(args.output)
    truth, pred = out / "truth", out / "pred"
    t0 = time.perf_counter()
    offset = args.first_seed - CASES[0][0]
    for seed, slice_mm, tilt in CASES:
        seed += offset
        if not (truth / f"phantom_{seed:05d}").is_dir():
            generate_cases(truth, seed, 1, slice_mm=slice_mm, tilt_deg=tilt or 0.0, dicom=tilt is not None)
    t1 = time.perf_counter()
    counts = run_batch([truth], pred, SegmentOptions(device=args.device, segmenter=args.model))
    t2 = time.perf_counter()
    result = evaluate_folders(pred, truth)
    (out / "metrics.json").write_text(json.dumps(result, indent=2, default=float))
    print(f"phantoms made in {t1 - t0:.0f} s; batch {counts} in {t2 - t1:.0f} s ({(t2 - t1) / len(CASES):.1f} s/case)")
    print(format_summary(result))


if __name__ == "__main__":
    main()
