"""Time `iacseg segment` on a 512×512×160 phantom, stage by stage (target: ≤ 30 s end to end on 2 CPU cores).

Baseline measured in the same run: reading the same CT and a plain ≥130 HU threshold with connected-component
labelling of the whole volume (what a naive calcium score costs) — the ratio shows the model's overhead.

    .venv/bin/python benchmarks/bench_segment.py [--device cpu] [--repeat 1] [--slice-mm 1.0]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def baseline(ct_path: Path) -> float:
    from scipy import ndimage

    from iacseg.io import read_ct

    t0 = time.perf_counter()
    vol = read_ct(ct_path)
    mask = vol.hu >= 130
    ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--slice-mm", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=99001)
    args = ap.parse_args()

    import torch

    from iacseg.phantom import make_phantom, write_phantom
    from iacseg.pipeline import SegmentOptions, segment_case

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        ph = make_phantom(args.seed, slice_mm=args.slice_mm, coverage_mm=160 * args.slice_mm)
        case = write_phantom(ph, tmp / "case")
        print(f"phantom {ph.ct.shape} (k, j, i) voxels {ph.ct.spacing} mm made in {time.perf_counter() - t0:.1f} s")
        base = min(baseline(case / "ct.nii.gz") for _ in range(args.repeat))
        runs = []
        for r in range(args.repeat):
            t1 = time.perf_counter()
            res = segment_case(case / "ct.nii.gz", tmp / f"out{r}", SegmentOptions(device=args.device))
            runs.append((time.perf_counter() - t1, res.report["timings_s"]))
        total, stages = min(runs, key=lambda x: x[0])
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}")
    print("stage timings (s):", json.dumps(stages))
    print(f"end-to-end segment: {total:.2f} s (target ≤ 30 s) — {'OK' if total <= 30 else 'OVER TARGET'}")
    print(f"baseline (read + 130 HU threshold + components): {base:.2f} s; ratio segment/baseline = {total / base:.1f}×")


if __name__ == "__main__":
    main()
