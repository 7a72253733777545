"""Train the bundled demo models (`unet-demo`, `dst-demo`) on synthetic phantoms.

Phantoms are made and reduced to the trainers' cached tensors in parallel worker processes; then both models
train (at the same time, in two processes, when ``--parallel``). Seeds for training are below 50000; the
acceptance run (benchmarks/acceptance_phantoms.py) uses 70000+ and the demo 90001.

The seeds are spread over the phantom families (``--families``, default soft,bone,thick,aged,classic): seed number
n of the range is made with family n mod (number of families) by ``iacseg.phantom.make_phantom(seed, family=…)``
("classic" = the original generator). ``--cache DIR`` keeps each prepared case as a numpy .npz file (no pickle),
so a re-run — e.g. ``--resume`` after an interruption — does not make the phantoms again. ``--resume`` continues
each model from its checkpoint (``OUTPUT/<model>.checkpoint``); ``--init-segmenter``/``--init-landmarks``
fine-tune from existing model folders (e.g. the shipped ones).

    python scripts/train_demo_models.py --seeds 0:160 --workers 14 --device cuda --parallel \\
        -o IACSegExtension/iacseg/models/shipped --cache /tmp/iacseg-cases

On this project's 2-core CPU machines use fewer phantoms/epochs (see --help); the shipped models were made on
one GPU with the command recorded in their model cards.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "IACSegExtension"))

FAMILIES = ("soft", "bone", "thick", "aged", "classic")


def train_one(what: str, cases: list, out: Path, args: argparse.Namespace, description: str) -> None:
    import torch

    from iacseg.train import train_landmarks, train_segmenter

    if args.threads:
        torch.set_num_threads(args.threads)

    def progress(stage: str, fraction: float, message: str = "") -> None:
        print(json.dumps({"model": what, "stage": stage, "fraction": round(fraction, 3), "message": message}),
              flush=True)

    t0 = time.time()
    common = {"device": args.device, "progress": progress, "data_description": description, "resume": args.resume}
    if args.augment:
        common["augment"] = args.augment
    if args.checkpoint_every:
        common["checkpoint_every"] = int(args.checkpoint_every) if args.checkpoint_every.isdigit() \
            else args.checkpoint_every
    if what == "segmenter":
        extra = {"features": tuple(args.seg_features)} if args.seg_features else {}
        if args.init_segmenter:
            extra["init"] = args.init_segmenter
        if args.seg_lr:
            extra["lr"] = args.seg_lr
        if args.seg_time_budget:
            extra["time_budget_s"] = args.seg_time_budget
        path = train_segmenter(cases, out / "unet-demo", epochs=args.seg_epochs, steps_per_epoch=args.seg_steps,
                               **common, **extra)
    else:
        extra = {"init": args.init_landmarks} if args.init_landmarks else {}
        if args.lm_lr:
            extra["lr"] = args.lm_lr
        path = train_landmarks(cases, out / "dst-demo", epochs=args.lm_epochs, **common, **extra)
    print(f"{what}: wrote {path} in {time.time() - t0:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0:160", help="phantom seeds A:B (B exclusive, < 50000)")
    ap.add_argument("--families", default=",".join(FAMILIES),
                    help="phantom families the seeds are spread over, comma-separated (default %(default)s)")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--threads", type=int, default=None, help="torch threads per training process")
    ap.add_argument("--device", default="auto")
    ap.add_argument("-o", "--output", default="IACSegExtension/iacseg/models/shipped")
    ap.add_argument("--which", choices=("both", "segmenter", "landmarks"), default="both")
    ap.add_argument("--cache", default=None, metavar="DIR",
                    help="keep the prepared cases here (.npz) and reuse them on a re-run")
    ap.add_argument("--resume", action="store_true", help="continue each model from its checkpoint beside it")
    ap.add_argument("--checkpoint-every", default=None, metavar="N|epoch|none",
                    help="checkpoint every N steps or each epoch (the trainers' default: epoch)")
    ap.add_argument("--augment", choices=("monai", "basic", "none"), default=None,
                    help="training augmentation (the trainers' default: monai)")
    ap.add_argument("--seg-epochs", type=int, default=60)
    ap.add_argument("--seg-steps", type=int, default=100)
    ap.add_argument("--lm-epochs", type=int, default=150)
    ap.add_argument("--seg-features", type=int, nargs=4, default=None, help="U-Net widths per level (default 8 16 32 64)")
    ap.add_argument("--init-segmenter", "--seg-init", dest="init_segmenter", default=None,
                    help="fine-tune the segmenter from this model folder "
                         "(e.g. IACSegExtension/iacseg/models/shipped/unet-demo)")
    ap.add_argument("--init-landmarks", default=None,
                    help="fine-tune the localiser from this model folder "
                         "(e.g. IACSegExtension/iacseg/models/shipped/dst-demo)")
    ap.add_argument("--seg-lr", type=float, default=None)
    ap.add_argument("--lm-lr", type=float, default=None)
    ap.add_argument("--petrous-oversampling", type=int, default=1,
                    help="repeat petrous calcium / canal-bone sample points N times (see prepare_segmenter_case)")
    ap.add_argument("--tilt-every", type=int, default=7,
                    help="every Nth classic phantom is a gantry-tilted acquisition (default %(default)s)")
    ap.add_argument("--seg-time-budget", type=float, default=None, help="stop segmenter training after this many s")
    ap.add_argument("--parallel", action="store_true", help="train both models at once (two processes)")
    args = ap.parse_args()
    a, b = (int(v) for v in args.seeds.split(":"))
    if b > 50000:
        raise SystemExit("training seeds must stay below 50000 (70000+ are for acceptance, 90001 the demo)")
    from iacseg.train.phantom_cases import check_families, describe_jobs, family_of, prepare_many

    families = [f.strip() for f in args.families.split(",") if f.strip()]
    try:
        check_families(families)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    seeds = list(range(a, b))
    jobs = [(s, family_of(n, families)) for n, s in enumerate(seeds)]
    out = Path(args.output)
    t0 = time.time()
    ctx = mp.get_context("fork")

    def report(done: int, total: int) -> None:
        if done % 10 == 0 or done == total:
            print(f"prepared {done}/{total} phantoms ({time.time() - t0:.0f} s)", flush=True)

    prepared = prepare_many(jobs, args.workers, args.cache, args.petrous_oversampling, args.tilt_every, report)
    description = describe_jobs(jobs, args.tilt_every)
    todo = [w for w in ("segmenter", "landmarks") if args.which in (w, "both")]
    cases = {"segmenter": [p[0] for p in prepared], "landmarks": [p[1] for p in prepared]}
    if args.parallel and len(todo) == 2:
        procs = [ctx.Process(target=train_one, args=(w, cases[w], out, args, description)) for w in todo]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        if any(p.exitcode for p in procs):
            raise SystemExit("a training process failed")
    else:
        for w in todo:
            train_one(w, cases[w], out, args, description)
    print(f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
