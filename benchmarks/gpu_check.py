"""Run the engine's core (preprocess → landmarks → segment → mapping → measures) on one phantom on CUDA and on
the CPU, in memory (no file I/O, so it runs where SimpleITK is absent), and compare: agreement of the label maps,
landmark heights, and time per stage on each device.

    python benchmarks/gpu_check.py [--seed 70002] [--slice-mm 1.0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=70002)
    ap.add_argument("--slice-mm", type=float, default=1.0)
    args = ap.parse_args()

    import torch

    from iacseg.measure import measure_case
    from iacseg.phantom import make_phantom
    from iacseg.pipeline import SegmentOptions, segment_volume

    ph = make_phantom(args.seed, slice_mm=args.slice_mm)
    truth = ph.labels > 0
    results = {}
    for device in ("cuda", "cpu"):
        if device == "cuda" and not torch.cuda.is_available():
            print("no CUDA device: CPU only")
            continue
        segment_volume(ph.ct, SegmentOptions(device=device))  # warm-up (CUDA context, kernels)
        t0 = time.perf_counter()
        labels, landmarks, plane, info = segment_volume(ph.ct, SegmentOptions(device=device))
        measures = measure_case(labels, ph.ct.hu, ph.ct.grid)
        total = time.perf_counter() - t0
        dice = 2 * (truth & (labels > 0)).sum() / (truth.sum() + (labels > 0).sum())
        results[device] = (labels, {n: lm.z_mm for n, lm in landmarks.items()})
        print(f"{device}: {total:.2f} s, stages {info['timings_s']}, Dice vs truth {dice:.3f}, "
              f"total volume {measures['total']['volume_mm3']:.1f} mm³")
    if len(results) == 2:
        a, b = results["cuda"][0], results["cpu"][0]
        same = (a == b).mean()
        dz = max(abs(results["cuda"][1][n] - results["cpu"][1][n]) for n in results["cpu"][1])
        print(f"CUDA vs CPU: {100 * same:.4f} % of voxels share a label; "
              f"{int(((a > 0) != (b > 0)).sum())} voxels differ in calcium; largest landmark difference {dz:.2f} mm")


if __name__ == "__main__":
    main()
