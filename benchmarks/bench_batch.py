"""CT/s and per-stage time of N cases read from .nii.gz: the batch engine vs the one-case loop vs an nnU-Net-style
reference (issue 14 item 4).

Three variants, each in its own child process (so peak memory and model loading are per variant):

* **loop** — the previous way: `iacseg.pipeline.segment_case` per case in a Python loop (models reloaded per case);
* **batch** — `iacseg.batch.run_batch(inputs, out_dir, options, shard=(0, 1), progress=…)` (plus any of
  ``read_workers``/``write_workers``/``prefetch``/``on_status`` that its signature has);
* **reference** — nnU-Net-style whole-volume inference with *random weights*, timing only: a residual-encoder
  U-Net like nnU-Net's ResEnc-M 3d_fullres (`iacseg.models.networks.unet.build_unet`: features 32…320, blocks
  1-3-4-6-6-6, one decoder conv per stage), sliding window over the whole volume (patch ``--ref-patch``, default
  128³ on CUDA, 64³ on CPU), step 0.5, Gaussian weighting, 8× mirroring (all flips of three axes), fp16 autocast
  on CUDA (``--ref-dtype`` on CPU: fp32 or bf16), argmax. On CPU only ``--ref-cases`` cases (default 1) and
  ``--ref-windows`` windows per case (default 2 on CPU, all on CUDA) are run; the whole case is extrapolated
  from the time per window — the table says so.

Cases are synthetic phantoms (`iacseg.phantom.make_phantom`, classic family) made once into ``--cache`` at
``--size I J K`` (in-plane matrix I, J rows, K slices; slices are 160/K mm thick, clamped 0.5–5 mm, then cropped
or padded to exactly K). Peak memory: ``ru_maxrss`` of the variant's process and of its largest child.

    .venv/bin/python benchmarks/bench_batch.py --quick                  # 4 cases 256×256×80, a few minutes on CPU
    .venv/bin/python benchmarks/bench_batch.py --cases 20 --size 512 512 160 --device cuda --json out.json
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()
#: nnU-Net ResEnc-M 3d_fullres (6 stages, 1 decoder conv per stage), one input channel (CT), one output logit.
RESENC_M = {"in_channels": 1, "features": [32, 64, 128, 256, 320, 320],
            "strides": [[1, 1, 1]] + [[2, 2, 2]] * 5, "blocks": [1, 3, 4, 6, 6, 6], "deep_supervision": False}


# --------------------------------------------------------------------------------------------------- cases


def case_dirs(cache: Path, n: int, size: tuple[int, int, int], seed0: int) -> list[Path]:
    """``n`` case folders ``cache/IxJxK/caseNNN/ct.nii.gz``, made (once) from phantoms seed0, seed0+1, …"""
    from iacseg.core.grid import Grid
    from iacseg.io.writers import write_image
    from iacseg.phantom.generate import make_phantom

    ni, nj, nk = size
    root = cache / f"{ni}x{nj}x{nk}"
    out = []
    for c in range(n):
        folder = root / f"case{c:03d}"
        ct = folder / "ct.nii.gz"
        if not ct.is_file():
            t0 = time.perf_counter()
            slice_mm = float(min(5.0, max(0.5, 160.0 / nk)))
            ph = make_phantom(seed0 + c, family="classic", matrix=max(ni, nj), slice_mm=slice_mm,
                              coverage_mm=nk * slice_mm, n_plaques=6)
            hu, g = np.round(ph.ct.hu).astype(np.int16), ph.ct.grid
            j0, i0 = max(0, (hu.shape[1] - nj) // 2), max(0, (hu.shape[2] - ni) // 2)
            hu = hu[:nk, j0:j0 + nj, i0:i0 + ni]
            if hu.shape[0] < nk:  # pad on top with air
                hu = np.concatenate([hu, np.full((nk - hu.shape[0],) + hu.shape[1:], -1024, np.int16)])
            origin = g.index_to_world(np.array([i0, j0, 0], dtype=np.float64))
            grid = Grid(shape=hu.shape, spacing=g.spacing, direction=g.direction, origin=tuple(origin))
            folder.mkdir(parents=True, exist_ok=True)
            write_image(ct, np.ascontiguousarray(hu), grid)
            print(f"  made {ct} {hu.shape} (k, j, i) in {time.perf_counter() - t0:.1f} s", flush=True)
        out.append(folder)
    return out


# --------------------------------------------------------------------------------------------------- helpers


def peak_memory_mib() -> dict[str, float]:
    """Peak resident memory (MiB) of this process and of its largest (waited-for) child."""
    scale = 1.0 / 1024 if sys.platform != "darwin" else 1.0 / 1024 / 1024  # ru_maxrss: KiB on Linux, B on macOS
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale
    return {"self_mib": round(own, 1), "largest_child_mib": round(child, 1), "self_plus_child_mib": round(own + child, 1)}


def load_average() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def stage_medians(reports: list[dict]) -> dict[str, float]:
    keys: list[str] = []
    for rep in reports:
        keys += [k for k in rep.get("timings_s", {}) if k not in keys]
    return {k: round(statistics.median([r["timings_s"][k] for r in reports if k in r.get("timings_s", {})]), 3)
            for k in keys}


def read_reports(out: Path, names: list[str]) -> list[dict]:
    reports = []
    for name in names:
        try:
            reports.append(json.loads((out / name / "report.json").read_text()))
        except (OSError, ValueError):
            pass
    return reports


def options_for(device: str):
    from iacseg.pipeline import SegmentOptions

    return SegmentOptions(device=device, overwrite=True)


# --------------------------------------------------------------------------------------------------- variants


def variant_loop(cases: list[Path], out: Path, device: str) -> dict[str, Any]:
    from iacseg.pipeline import segment_case

    per_case = []
    t0 = time.perf_counter()
    for case in cases:
        t = time.perf_counter()
        segment_case(case / "ct.nii.gz", out / case.name, options_for(device))
        per_case.append(round(time.perf_counter() - t, 3))
    wall = time.perf_counter() - t0
    reports = read_reports(out, [c.name for c in cases])
    stages = stage_medians(reports)
    if reports and all("total_before_write" in r.get("timings_s", {}) for r in reports):
        # report.json is written before the write is timed: the rest of each case's wall time is the write
        stages["write_and_rest"] = round(statistics.median(
            [t - r["timings_s"]["total_before_write"] for t, r in zip(per_case, reports)]), 3)
    return {"wall_s": round(wall, 3), "cases": len(cases), "ct_per_s": len(cases) / wall, "per_case_s": per_case,
            "stages_median_s": stages}


def variant_batch(cases: list[Path], out: Path, device: str, read_workers: int | None,
                  write_workers: int | None) -> dict[str, Any]:
    from iacseg.batch import run_batch

    params = inspect.signature(run_batch).parameters
    kwargs: dict[str, Any] = {}
    statuses: list[dict] = []
    if "on_status" in params:
        kwargs["on_status"] = statuses.append
    if read_workers is not None and "read_workers" in params:
        kwargs["read_workers"] = read_workers
    if write_workers is not None and "write_workers" in params:
        kwargs["write_workers"] = write_workers
    t0 = time.perf_counter()
    counts = run_batch([str(c) for c in cases], out, options=options_for(device), shard=(0, 1),
                       progress=lambda stage, fraction, message="": None, **kwargs)
    wall = time.perf_counter() - t0
    reports = read_reports(out, [c.name for c in cases])
    return {"wall_s": round(wall, 3), "cases": len(cases), "ct_per_s": len(cases) / wall, "counts": counts,
            "engine_ct_per_s": statuses[-1].get("ct_per_s") if statuses else None,
            "keywords": sorted(kwargs), "stages_median_s": stage_medians(reports)}


def gaussian_map(patch: tuple[int, ...], device: Any):
    from iacseg.models.sliding import gaussian_importance

    return gaussian_importance(patch).to(device)  # σ = patch/8, as nnU-Net


def ref_starts(size: int, patch: int, step: float = 0.5) -> list[int]:
    """nnU-Net's `compute_steps_for_sliding_window`."""
    if size <= patch:
        return [0]
    n = int(math.ceil((size - patch) / (patch * step))) + 1
    actual = (size - patch) / (n - 1)
    return [int(round(actual * i)) for i in range(n)]


def variant_reference(cases: list[Path], device: str, patch: tuple[int, int, int], dtype: str,
                      max_windows: int | None, net: str) -> dict[str, Any]:
    import torch

    from iacseg.core.device import resolve_device
    from iacseg.io import read_ct
    from iacseg.models.networks.unet import build_unet

    dev = resolve_device(device)
    torch.manual_seed(0)
    params = dict(RESENC_M)
    if net == "shipped":
        from iacseg.models.defaults import resolve_model

        cfg = json.loads((Path(resolve_model(None, "segmenter")) / "config.json").read_text())
        params = {**cfg["architecture"]["params"], "in_channels": 1, "deep_supervision": False}
    model = build_unet(params).to(dev).eval()
    divisor = model.divisor
    patch = tuple(int(math.ceil(p / d) * d) for p, d in zip(patch, divisor))  # type: ignore[assignment]
    if dev.type == "cuda":
        amp = torch.autocast("cuda", dtype=torch.float16)
    elif dtype == "bf16":
        amp = torch.autocast("cpu", dtype=torch.bfloat16)
    else:
        amp = torch.autocast("cpu", enabled=False)
    flips = [tuple(a for a, bit in zip((2, 3, 4), (m & 1, m & 2, m & 4)) if bit) for m in range(8)]
    per_case, extrapolated, windows_total, windows_run = [], False, 0, 0

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    with torch.inference_mode():
        x = torch.zeros((1, 1) + patch, device=dev)
        with amp:
            model(x)  # warm-up (cuDNN autotune / oneDNN primitives), not timed
        sync()
        for case in cases:
            t0 = time.perf_counter()
            vol = read_ct(case / "ct.nii.gz")
            read_s = time.perf_counter() - t0
            img = torch.from_numpy(np.ascontiguousarray(vol.hu, dtype=np.float32)).to(dev)
            img = (img.clamp(-1000, 2000) - 40.0) / 400.0  # CT normalisation (clip + z-score), nnU-Net style
            pads = [max(0, p - s) for p, s in zip(patch, img.shape)]
            img = torch.nn.functional.pad(img, (0, pads[2], 0, pads[1], 0, pads[0]))
            shape = tuple(img.shape)
            boxes = [(a, b, c) for a in ref_starts(shape[0], patch[0]) for b in ref_starts(shape[1], patch[1])
                     for c in ref_starts(shape[2], patch[2])]
            acc = torch.zeros((1,) + shape, device=dev, dtype=torch.float16 if dev.type == "cuda" else torch.float32)
            weight = torch.zeros(shape, device=dev, dtype=acc.dtype)
            gauss = gaussian_map(patch, dev).to(acc.dtype)
            run = boxes if max_windows is None else boxes[:max_windows]
            sync()
            t1 = time.perf_counter()
            for a, b, c in run:
                win = img[a:a + patch[0], b:b + patch[1], c:c + patch[2]][None, None]
                pred = None
                with amp:
                    for axes in flips:
                        y = model(torch.flip(win, axes) if axes else win)
                        y = torch.flip(y, axes) if axes else y
                        pred = y if pred is None else pred + y
                pred = pred[0].to(acc.dtype) / len(flips)
                acc[:, a:a + patch[0], b:b + patch[1], c:c + patch[2]] += pred * gauss
                weight[a:a + patch[0], b:b + patch[1], c:c + patch[2]] += gauss
            sync()
            infer_s = time.perf_counter() - t1
            if len(run) < len(boxes):  # extrapolate to every window of the case
                infer_s = infer_s / len(run) * len(boxes)
                extrapolated = True
            t2 = time.perf_counter()
            seg = (acc / weight.clamp_min(1e-8) > 0)[0].cpu().numpy()  # one logit: > 0 ⇔ argmax of two classes
            sync()
            del seg, acc, weight, img
            per_case.append(round(read_s + infer_s + time.perf_counter() - t2, 3))
            windows_total, windows_run = len(boxes), len(run)
    per = statistics.median(per_case)
    return {"per_case_s": per_case, "case_s_median": round(per, 3), "ct_per_s": 1.0 / per if per else None,
            "patch": list(patch), "windows_per_case": windows_total, "windows_timed": windows_run,
            "mirrors": len(flips), "dtype": "fp16 autocast" if dev.type == "cuda" else dtype,
            "extrapolated": extrapolated, "cases": len(cases), "net": net,
            "n_parameters": int(sum(p.numel() for p in model.parameters()))}


def worker(args: argparse.Namespace) -> None:
    """Run one variant in this process and print its result as one JSON line."""
    import torch

    cases = [Path(p) for p in args.worker_cases]
    if args.worker == "loop":
        res = variant_loop(cases, Path(args.worker_out), args.device)
    elif args.worker == "batch":
        res = variant_batch(cases, Path(args.worker_out), args.device, args.read_workers, args.write_workers)
    else:
        res = variant_reference(cases, args.device, tuple(args.ref_patch), args.ref_dtype, args.ref_windows,
                                args.ref_net)
    res["peak_memory"] = peak_memory_mib()
    res["torch_threads"] = torch.get_num_threads()
    if torch.cuda.is_available() and args.device != "cpu":
        res["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    print("RESULT " + json.dumps(res), flush=True)


def run_variant(name: str, args: argparse.Namespace, cases: list[Path], out: Path) -> dict[str, Any]:
    cmd = [sys.executable, str(HERE), "--worker", name, "--worker-out", str(out), "--device", args.device,
           "--ref-patch", *map(str, args.ref_patch), "--ref-dtype", args.ref_dtype, "--ref-net", args.ref_net,
           "--worker-cases", *map(str, cases)]
    if args.ref_windows is not None:
        cmd += ["--ref-windows", str(args.ref_windows)]
    if args.read_workers is not None:
        cmd += ["--read-workers", str(args.read_workers)]
    if args.write_workers is not None:
        cmd += ["--write-workers", str(args.write_workers)]
    load_before = load_average()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"{name} failed (exit {proc.returncode})")
    res = json.loads(lines[-1][len("RESULT "):])
    res.update(process_wall_s=round(wall, 3), load_before=load_before, load_after=load_average())
    return res


# --------------------------------------------------------------------------------------------------- main


def fmt(v: Any, nd: int = 2) -> str:
    return "—" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def print_table(res: dict[str, Any]) -> None:
    loop, batch, ref = res.get("loop"), res.get("batch"), res.get("reference")
    print(f"\n{res['cases']} cases {res['size_ijk'][0]}×{res['size_ijk'][1]}×{res['size_ijk'][2]} (i×j×k) from "
          f".nii.gz, device {res['device']}, {res['cpu_count']} CPUs, load before {res['load_before']}")
    print(f"{'variant':<11}{'cases':>6}{'wall s':>9}{'s/case':>9}{'CT/s':>9}{'peak MiB':>10}  note")
    for name, r in (("loop", loop), ("batch", batch)):
        if r:
            pm = r["peak_memory"]
            print(f"{name:<11}{r['cases']:>6}{r['wall_s']:>9.1f}{r['wall_s'] / r['cases']:>9.2f}{r['ct_per_s']:>9.3f}"
                  f"{pm['self_plus_child_mib']:>10.0f}  self {pm['self_mib']:.0f} + largest child "
                  f"{pm['largest_child_mib']:.0f}; load after {r['load_after']}")
    if ref:
        note = (f"patch {ref['patch']}, {ref['windows_per_case']} windows × {ref['mirrors']} mirrors, {ref['dtype']}, "
                f"{ref['n_parameters'] / 1e6:.1f} M parameters")
        if ref["extrapolated"]:
            note += f"; EXTRAPOLATED from {ref['windows_timed']} timed windows per case"
        print(f"{'reference':<11}{ref['cases']:>6}{sum(ref['per_case_s']):>9.1f}{ref['case_s_median']:>9.2f}"
              f"{ref['ct_per_s']:>9.4f}{ref['peak_memory']['self_mib']:>10.0f}  {note}")
    if loop and batch:
        print(f"batch vs loop: {batch['ct_per_s'] / loop['ct_per_s']:.2f}× the CT/s")
    if batch and ref:
        print(f"batch vs reference: {batch['ct_per_s'] / ref['ct_per_s']:.1f}× the CT/s"
              f"{' (reference extrapolated)' if ref['extrapolated'] else ''}")
    for name, r in (("loop", loop), ("batch", batch)):
        if r and r.get("stages_median_s"):
            print(f"{name} stages (median s/case, report.json timings_s): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in r["stages_median_s"].items()))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--size", type=int, nargs=3, default=[512, 512, 160], metavar=("I", "J", "K"),
                    help="in-plane columns, rows and slices (default 512 512 160)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="4 cases of 256×256×80 (a few minutes on CPU)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "iacseg-bench-batch-cache")
    ap.add_argument("--seed", type=int, default=140000, help="seed of the first phantom")
    ap.add_argument("--variants", nargs="+", default=["loop", "batch", "reference"],
                    choices=["loop", "batch", "reference"])
    ap.add_argument("--ref-cases", type=int, default=None, help="cases for the reference (default: 1 on CPU, all on CUDA)")
    ap.add_argument("--ref-patch", type=int, nargs=3, default=None, help="default 128³ on CUDA, 64³ on CPU")
    ap.add_argument("--ref-windows", type=int, default=None,
                    help="windows timed per reference case, the rest extrapolated (default: 2 on CPU, all on CUDA)")
    ap.add_argument("--ref-dtype", default="fp32", choices=["fp32", "bf16"], help="CPU only; CUDA uses fp16 autocast")
    ap.add_argument("--ref-net", default="resenc-m", choices=["resenc-m", "shipped"])
    ap.add_argument("--read-workers", type=int, default=None, help="passed to run_batch when it takes it")
    ap.add_argument("--write-workers", type=int, default=None, help="passed to run_batch when it takes it")
    ap.add_argument("--keep", type=Path, default=None, help="keep the output folders here")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    ap.add_argument("--worker", choices=["loop", "batch", "reference"], help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    ap.add_argument("--worker-cases", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.cases, args.size = 4, [256, 256, 80]
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    cuda = args.device == "cuda"
    if args.ref_patch is None:
        args.ref_patch = [128, 128, 128] if cuda else [64, 64, 64]
    if args.ref_windows is None and not cuda and args.worker is None:
        args.ref_windows = 2
    if args.worker:
        worker(args)
        return

    print(f"cases: {args.cases} × {args.size} in {args.cache}", flush=True)
    cases = case_dirs(args.cache, args.cases, tuple(args.size), args.seed)
    ref_cases = cases[:args.ref_cases if args.ref_cases is not None else (len(cases) if cuda else 1)]
    work = Path(tempfile.mkdtemp(prefix="iacseg-bench-batch-"))
    res: dict[str, Any] = {"cases": len(cases), "size_ijk": args.size, "device": args.device,
                           "cpu_count": os.cpu_count(), "load_before": load_average(), "python": platform.python_version()}
    try:
        for name in args.variants:
            print(f"running {name} …", flush=True)
            res[name] = run_variant(name, args, ref_cases if name == "reference" else cases, work / name)
    finally:
        if args.keep:
            shutil.copytree(work, args.keep, dirs_exist_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    if res.get("loop") and res.get("batch"):
        res["batch_vs_loop"] = res["batch"]["ct_per_s"] / res["loop"]["ct_per_s"]
    if res.get("batch") and res.get("reference"):
        res["batch_vs_reference"] = res["batch"]["ct_per_s"] / res["reference"]["ct_per_s"]
    print_table(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
