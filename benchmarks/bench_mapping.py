"""Benchmark of `segment_labels` (re-run on every landmark correction in Slicer; target ≤ 100 ms).

Grid 512×512×300 (0.45 × 0.45 × 0.6 mm, tilted 12° about x like a tilt-corrected series), a realistic sparse
mask (a few thousand calcified voxels along two vertical "ICAs"). Prints the median time of `segment_labels`
and its ratio to a plain full-volume ``np.nonzero`` of the same mask measured in the same run.

    .venv/bin/python benchmarks/bench_mapping.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from iacseg.core.plane import MidsagittalPlane
from iacseg.core.grid import Grid
from iacseg.mapping import segment_labels


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--voxels", type=int, default=4000, help="calcified voxels in the mask")
    args = parser.parse_args()

    shape = (300, 512, 512)
    t = np.radians(12.0)
    direction = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    grid = Grid(shape, (0.45, 0.45, 0.6), (-115.0, -115.0, -90.0), tuple(direction.ravel()))
    rng = np.random.default_rng(0)
    mask = np.zeros(shape, dtype=bool)
    k = rng.integers(20, 280, args.voxels)
    side = rng.integers(0, 2, args.voxels)
    i = np.where(side == 0, 200, 312) + rng.integers(-6, 7, args.voxels)
    j = 256 + rng.integers(-6, 7, args.voxels)
    mask[k, j, i] = True
    plane = MidsagittalPlane((0.0, 0.0, 0.0), (0.998, 0.05, 0.0))
    landmark_z = {"L_carotid_canal": -60.0, "L_petrolingual": -40.0, "L_anterior_clinoid": -20.0,
                  "R_carotid_canal": -58.0, "R_petrolingual": -41.0, "R_anterior_clinoid": -18.0}

    segment_labels(mask, grid, plane, landmark_z)  # warm-up
    ms = _median_ms(lambda: segment_labels(mask, grid, plane, landmark_z), args.repeats)
    base = _median_ms(lambda: np.nonzero(mask), args.repeats)
    print(f"grid {shape[::-1]} (i,j,k), {int(mask.sum())} calcified voxels")
    print(f"segment_labels: {ms:.1f} ms (median of {args.repeats}); full-volume np.nonzero: {base:.1f} ms; "
          f"ratio {ms / base:.2f}")


if __name__ == "__main__":
    main()
