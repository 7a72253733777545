"""Train the bundled demo models (`unet-demo`, `dst-demo`) on synthetic phantoms.

Phantoms are made and reduced to the trainers' cached tensors in parallel worker processes; then both models
train (at the same time, in two processes, when ``--parallel``). Seeds for training are below 50000; the
acceptance run (benchmarks/acceptance_phantoms.py) uses 70000+ and the demo 90001.

    python scripts/train_demo_models.py --seeds 0:160 --workers 14 --device cuda -o Resources/Models --parallel

On this project's 2-core CPU machines use fewer phantoms/epochs (see --help); the shipped models were made on
one GPU with the command recorded in their model cards.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "IACSegExtension"))

TILT_EVERY = 7  # by default every 7th training phantom is a gantry-tilted acquisition (resampled like DICOM)


def phantom_options(seed: int, tilt_every: int = TILT_EVERY) -> dict:
    return {"tilt_deg": float(10 + seed % 16)} if seed % tilt_every == 3 % tilt_every else {}


def prepare(seed: int, petrous_oversampling: int = 1, tilt_every: int = TILT_EVERY) -> tuple:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from iacseg.phantom import make_phantom
    from iacseg.train.data import to_training_case
    from iacseg.train.landmarks import LANDMARK_DEFAULTS, prepare_landmark_case
    from iacseg.train.segmenter import SEGMENTER_DEFAULTS, prepare_segmenter_case
    from iacseg.models.localiser import DEFAULT_LOCALISER_INPUT

    ph = make_phantom(seed, **phantom_options(seed, tilt_every))
    case = to_training_case(f"phantom_{seed:05d}", ph.ct, ph.labels, ph.landmarks)
    rng = np.random.default_rng(seed)
    seg = prepare_segmenter_case(case, SEGMENTER_DEFAULTS["patch"], rng, SEGMENTER_DEFAULTS["roi_jitter_mm"],
                                 petrous_oversampling=petrous_oversampling)
    lm_input = {**DEFAULT_LOCALISER_INPUT, "fov_mm": float(LANDMARK_DEFAULTS["fov_mm"]),
                "size": int(LANDMARK_DEFAULTS["size"])}
    lm = prepare_landmark_case(case, lm_input, int(LANDMARK_DEFAULTS["max_slices"]))
    return seg, lm


def train_one(what: str, cases: list, out: Path, args: argparse.Namespace, description: str) -> None:
    from iacseg.train import train_landmarks, train_segmenter

    def progress(stage: str, fraction: float, message: str = "") -> None:
        print(json.dumps({"model": what, "stage": stage, "fraction": round(fraction, 3), "message": message}),
              flush=True)

    t0 = time.time()
    if what == "segmenter":
        extra = {"features": tuple(args.seg_features)} if args.seg_features else {}
        if args.seg_init:
            extra["init"] = args.seg_init
        if args.seg_lr:
            extra["lr"] = args.seg_lr
        if args.seg_time_budget:
            extra["time_budget_s"] = args.seg_time_budget
        path = train_segmenter(cases, out / "unet-demo", epochs=args.seg_epochs, steps_per_epoch=args.seg_steps,
                               device=args.device, progress=progress, data_description=description, **extra)
    else:
        path = train_landmarks(cases, out / "dst-demo", epochs=args.lm_epochs, device=args.device,
                               progress=progress, data_description=description)
    print(f"{what}: wrote {path} in {time.time() - t0:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0:160", help="phantom seeds A:B (B exclusive, < 50000)")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--device", default="auto")
    ap.add_argument("-o", "--output", default="Resources/Models")
    ap.add_argument("--which", choices=("both", "segmenter", "landmarks"), default="both")
    ap.add_argument("--seg-epochs", type=int, default=60)
    ap.add_argument("--seg-steps", type=int, default=100)
    ap.add_argument("--lm-epochs", type=int, default=150)
    ap.add_argument("--seg-features", type=int, nargs=4, default=None, help="U-Net widths per level (default 8 16 32 64)")
    ap.add_argument("--seg-init", default=None, help="fine-tune from this segmenter model folder")
    ap.add_argument("--seg-lr", type=float, default=None)
    ap.add_argument("--petrous-oversampling", type=int, default=1,
                    help="repeat petrous calcium / canal-bone sample points N times (see prepare_segmenter_case)")
    ap.add_argument("--tilt-every", type=int, default=TILT_EVERY,
                    help="every Nth phantom is a gantry-tilted acquisition (default %(default)s)")
    ap.add_argument("--seg-time-budget", type=float, default=None, help="stop segmenter training after this many s")
    ap.add_argument("--parallel", action="store_true", help="train both models at once (two processes)")
    args = ap.parse_args()
    a, b = (int(v) for v in args.seeds.split(":"))
    if b > 50000:
        raise SystemExit("training seeds must stay below 50000 (70000+ are for acceptance, 90001 the demo)")
    seeds = list(range(a, b))
    out = Path(args.output)
    t0 = time.time()
    ctx = mp.get_context("fork")
    with ctx.Pool(args.workers) as pool:
        prepared = []
        work = functools.partial(prepare, petrous_oversampling=args.petrous_oversampling, tilt_every=args.tilt_every)
        for n, item in enumerate(pool.imap(work, seeds, chunksize=1)):
            prepared.append(item)
            if (n + 1) % 10 == 0 or n + 1 == len(seeds):
                print(f"prepared {n + 1}/{len(seeds)} phantoms ({time.time() - t0:.0f} s)", flush=True)
    seg_cases = [p[0] for p in prepared]
    lm_cases = [p[1] for p in prepared]
    tilted = sum(1 for s in seeds if phantom_options(s, args.tilt_every))
    description = (f"{len(seeds)} synthetic head-CT phantoms (iacseg.phantom seeds {a}–{b - 1}; slice 0.625–5 mm "
                   f"random; {tilted} gantry-tilted 10–25° and resampled) — synthetic data, not for clinical use")
    jobs = [w for w in ("segmenter", "landmarks") if args.which in (w, "both")]
    cases = {"segmenter": seg_cases, "landmarks": lm_cases}
    if args.parallel and len(jobs) == 2:
        procs = [ctx.Process(target=train_one, args=(w, cases[w], out, args, description)) for w in jobs]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        if any(p.exitcode for p in procs):
            raise SystemExit("a training process failed")
    else:
        for w in jobs:
            train_one(w, cases[w], out, args, description)
    print(f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
