"""Landmark correction in the Slicer module: time of one `ReviewSession.move_landmark` (target ≤ 100 ms).

A 512×512×300 grid (0.45 × 0.45 × 0.6 mm, axial LPS) with a sparse calcification label map (a few thousand
voxels along both ICAs). Each repeat moves a landmark up or down by a few slices, which re-runs the engine's
mapping rule on the calcified voxels only and counts the voxels that changed label. Prints the median of the
whole correction and of the whole-grid `iacseg.relabel.relabel_arrays` (what it re-ran before). The module's
correction end to end (segments and tables in a real MRML scene) is `slicer_correction.py`. No pytest needed:

    .venv/bin/python benchmarks/bench_relabel_slicer.py [--repeats 9] [--voxels 4000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "IACSegModule"))

from iacseg.core.plane import MidsagittalPlane  # noqa: E402
from iacseg.core.contracts import LANDMARKS  # noqa: E402
from iacseg.core.grid import Grid  # noqa: E402
from iacseg.core.landmarks import Landmark  # noqa: E402
from iacseg.relabel import relabel_arrays  # noqa: E402
from IACSegLib.review import ReviewSession  # noqa: E402


def case(n_voxels: int) -> tuple[np.ndarray, Grid, MidsagittalPlane, dict[str, Landmark]]:
    shape = (300, 512, 512)
    grid = Grid(shape, (0.45, 0.45, 0.6), (-115.0, -115.0, -90.0))
    rng = np.random.default_rng(0)
    k = rng.integers(20, 280, n_voxels)
    side = rng.integers(0, 2, n_voxels)
    i = np.where(side == 0, 200, 312) + rng.integers(-6, 7, n_voxels)
    j = 256 + rng.integers(-6, 7, n_voxels)
    mask = np.zeros(shape, dtype=np.uint8)
    mask[k, j, i] = 1
    plane = MidsagittalPlane((0.0, 0.0, 0.0), (1.0, 0.0, 0.0))
    heights = {"L_carotid_canal": -60.0, "L_petrolingual": -40.0, "L_anterior_clinoid": -20.0,
               "R_carotid_canal": -58.0, "R_petrolingual": -41.0, "R_anterior_clinoid": -18.0}
    landmarks = {n: Landmark(n, z, (25.0 if n[0] == "R" else -25.0, 0.0, z)) for n, z in heights.items()}
    labels = relabel_arrays(mask, grid, plane, landmarks)
    assert set(landmarks) == set(LANDMARKS)
    return labels, grid, plane, landmarks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--voxels", type=int, default=4000)
    args = parser.parse_args()
    labels, grid, plane, landmarks = case(args.voxels)
    session = ReviewSession(labels, grid, plane, landmarks, reader="benchmark")
    session.set_landmark_slice("L_petrolingual", 84)  # warm-up
    correction, changed = [], []
    for n in range(args.repeats):
        result = session.set_landmark_slice("L_petrolingual", 84 + (n % 2 + 1) * 4)
        correction.append(result.milliseconds)
        changed.append(result.changed_voxels)
    mapping = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        relabel_arrays(session.mask, grid, plane, session.landmarks)
        mapping.append((time.perf_counter() - t0) * 1000.0)
    print(f"grid {grid.shape[::-1]} (i,j,k), {int(np.count_nonzero(labels))} calcified voxels, "
          f"{int(np.median(changed))} voxels relabelled per move (median)")
    print(f"move_landmark (relabel + change count): {np.median(correction):.1f} ms median of {args.repeats} "
          f"(min {np.min(correction):.1f}, max {np.max(correction):.1f}); target <= 100 ms")
    print(f"relabel_arrays alone: {np.median(mapping):.1f} ms median")


if __name__ == "__main__":
    main()
