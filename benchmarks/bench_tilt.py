"""Time `segment_case` on a gantry-tilted DICOM series against the same patient's axial NIfTI (issue 14 item 3).

One phantom (seed, slice spacing, matrix) is acquired twice: with a gantry tilt, written as its sheared DICOM series
(`dicom/`, read and tilt-corrected onto an oblique grid by `iacseg.io`), and without tilt, written as the axial
NIfTI `ct.nii.gz` with the same number of slices, spacing and matrix. Each case is segmented ``--repeat`` times
(interleaved, so load changes hit all alike); the median of each stage of ``report.json`` ``timings_s`` is
printed with the tilted/axial ratio (target: end to end ≤ 1.3×).

In the same run the tilted series also goes through the *former* path, kept here as reference functions: the HU
and the probability resampled over the whole destination grid (`reference_resample_to_grid`) and the calcium
mask computed on the whole CT grid (`reference_probability_in_ct_box` returns the whole grid as its box). The
labels of both paths are checked to be identical.

    .venv/bin/python benchmarks/bench_tilt.py [--repeat 3] [--slice-mm 1.25] [--tilt-deg 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def reference_resample_to_grid(array, src, dst, *, order=1, fill=0.0, device=None):
    """The former `iacseg.preprocess.resample_to_grid`: every destination voxel through grid_sample."""
    from iacseg.core.device import resolve_device
    from iacseg.preprocess import orient

    if src.same_geometry(dst):
        return np.array(array, copy=True) if order == 0 else np.asarray(array, dtype=np.float32).copy()
    dev = resolve_device(device)
    out_dtype = array.dtype if order == 0 else np.float32
    a, b = orient._index_map(src, dst)
    a_t = torch.as_tensor(a, dtype=torch.float32, device=dev)
    b_t = torch.as_tensor(b, dtype=torch.float32, device=dev)
    nk, nj, ni = src.shape
    source = (torch.as_tensor(np.ascontiguousarray(array, dtype=np.float32), device=dev) - float(fill))[None, None]
    mk, mj, mi = dst.shape
    rows_per_chunk = max(1, orient.CHUNK_VOXELS // max(1, mj * mi))
    jj, ii = torch.meshgrid(torch.arange(mj, device=dev, dtype=torch.float32),
                            torch.arange(mi, device=dev, dtype=torch.float32), indexing="ij")
    out = np.empty(dst.shape, dtype=out_dtype)
    mode = "nearest" if order == 0 else "bilinear"
    for k0 in range(0, mk, rows_per_chunk):
        k1 = min(mk, k0 + rows_per_chunk)
        kk = torch.arange(k0, k1, device=dev, dtype=torch.float32)[:, None, None].expand(-1, mj, mi)
        dst_index = torch.stack([ii.expand_as(kk), jj.expand_as(kk), kk], dim=-1)
        src_index = dst_index @ a_t.T + b_t
        coords = torch.stack([orient._normalise(src_index[..., 0], ni), orient._normalise(src_index[..., 1], nj),
                              orient._normalise(src_index[..., 2], nk)], dim=-1)
        values = F.grid_sample(source, coords[None], mode=mode, padding_mode="zeros", align_corners=True)
        values = (values[0, 0] + float(fill)).cpu().numpy()
        if order == 0 and np.issubdtype(out_dtype, np.integer):
            values = np.rint(values)
        out[k0:k1] = values.astype(out_dtype, copy=False)
    return out


def reference_probability_in_ct_box(prob_axial, roi, axial, ct, device=None):
    """The former mapping: the whole probability volume resampled onto the CT grid (the box is the whole grid)."""
    prob = reference_resample_to_grid(prob_axial, axial, ct, order=1, fill=0.0, device=device).astype(np.float32)
    return tuple(slice(0, n) for n in ct.shape), prob


@contextlib.contextmanager
def former_path():
    """Run `segment_case` with the reference functions in place of the current ones."""
    import iacseg.pipeline as pipeline
    import iacseg.preprocess as preprocess
    from iacseg.preprocess import orient

    saved = (orient.resample_to_grid, preprocess.resample_to_grid, pipeline.probability_in_ct_box)
    orient.resample_to_grid = preprocess.resample_to_grid = reference_resample_to_grid
    pipeline.probability_in_ct_box = reference_probability_in_ct_box
    try:
        yield
    finally:
        orient.resample_to_grid, preprocess.resample_to_grid, pipeline.probability_in_ct_box = saved


STAGES = ("read", "load_models", "preprocess", "landmarks", "segment", "mapping", "quality", "measure", "write",
          "total")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--slice-mm", type=float, default=1.25)
    ap.add_argument("--tilt-deg", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=99001)
    ap.add_argument("--matrix", type=int, default=512)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-former", action="store_true", help="skip the former full-volume path")
    args = ap.parse_args()

    from iacseg.phantom import make_phantom, write_phantom
    from iacseg.pipeline import SegmentOptions, segment_case

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        tilted = make_phantom(args.seed, slice_mm=args.slice_mm, tilt_deg=args.tilt_deg, matrix=args.matrix)
        write_phantom(tilted, tmp / "tilted", dicom=True)
        axial = make_phantom(args.seed, slice_mm=args.slice_mm, tilt_deg=0.0, matrix=args.matrix)
        write_phantom(axial, tmp / "axial")
        print(f"phantom {args.seed}: {axial.ct.shape} (k, j, i) slices of {args.slice_mm} mm, tilt "
              f"{args.tilt_deg}° as DICOM ({len(list((tmp / 'tilted' / 'dicom').iterdir()))} files) and 0° as "
              f"NIfTI; made in {time.perf_counter() - t0:.1f} s")
        cases = {"axial": (tmp / "axial" / "ct.nii.gz", contextlib.nullcontext),
                 "tilted": (tmp / "tilted" / "dicom", contextlib.nullcontext)}
        if not args.no_former:
            cases["tilted_former"] = (tmp / "tilted" / "dicom", former_path)
        timings: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
        labels: dict[str, np.ndarray] = {}
        for r in range(args.repeat):
            for name, (path, context) in cases.items():
                with context():
                    res = segment_case(path, tmp / f"out_{name}_{r}",
                                       SegmentOptions(device=args.device, overwrite=True))
                timings[name].append(res.report["timings_s"])
                labels[name] = res.labels
                print(f"  run {r + 1} {name:14s} total {res.report['timings_s']['total']:.2f} s "
                      f"(load {os.getloadavg()[0]:.2f})", flush=True)

    med = {name: {s: statistics.median(t.get(s, 0.0) for t in runs) for s in STAGES} for name, runs in timings.items()}
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"median of {args.repeat} (seconds)")
    names = list(cases)
    print(f"{'stage':12s}" + "".join(f"{n:>15s}" for n in names) + "".join(f"{n + '/axial':>22s}" for n in names[1:]))
    for s in STAGES:
        row = f"{s:12s}" + "".join(f"{med[n][s]:15.3f}" for n in names)
        row += "".join(f"{med[n][s] / med['axial'][s]:21.2f}×" if med["axial"][s] > 0 else f"{'–':>22s}"
                       for n in names[1:])
        print(row)
    ratio = med["tilted"]["total"] / med["axial"]["total"]
    print(f"\ntilted DICOM / axial NIfTI end to end: {ratio:.2f}× (target ≤ 1.3×) — {'OK' if ratio <= 1.3 else 'OVER'}")
    if "tilted_former" in labels:
        same = np.array_equal(labels["tilted"], labels["tilted_former"])
        print(f"former full-volume path: {med['tilted_former']['total'] / med['axial']['total']:.2f}× axial; "
              f"labels identical to the current path: {same} ({int((labels['tilted'] > 0).sum())} calcium voxels)")
        if not same:
            raise SystemExit("the current and the former path disagree")


if __name__ == "__main__":
    main()
