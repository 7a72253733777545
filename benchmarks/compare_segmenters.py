"""Train every segmenter of issue 3 on the same synthetic phantoms and evaluate them on the same held-out phantoms.

Rows: the ResEnc U-Net baseline, the U-Net with a DeSD self-distilled encoder, a ViT from scratch, ViTs with MAE
pre-training (each MAE patch size × each decoder: unetr, sfpn, upscale-transposed, upscale-nearest, mae) and
GRCSF (on an MAE), plus the current default segmenter as the reference ("default (shipped)"). Pre-trained models
(one MAE per patch size, one DeSD encoder) are trained once and shared. Every row gets its training time,
parameter count and held-out Dice, precision, recall and volume difference with 95 % bootstrap intervals
(`iacseg batch` → `iacseg evaluate`); a row that fails is recorded and the others go on.

    python benchmarks/compare_segmenters.py --scale smoke [--publish]           # minutes on a 2-core CPU
    python benchmarks/compare_segmenters.py --scale gpu --device cuda --publish  # hours on one GPU
    python benchmarks/compare_segmenters.py --scale smoke --only 'unet,vit-mae-p8-*' --set epochs=3

Writes ``results.json``, ``results.csv`` and ``results.md`` to ``--out`` (default
``benchmarks/results/<scale>-<date>/``; phantoms, models and predictions under its ``work/``), and copies the
markdown to ``benchmarks/COMPARISON.md`` with ``--publish``. A row that beats the default is announced, never
installed. Presets, rows and seeds: `comparison_setup.py`; the table: `comparison_report.py`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import re
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "IACSegExtension"))

from comparison_report import results_csv, results_markdown, row_record  # noqa: E402
from comparison_setup import (DEFAULT_ROW, PRESETS, Row, all_rows, describe_phantoms, format_value,  # noqa: E402
                              phantom_options, phantom_seeds, phantoms_reduced, pretrained_needed, resolve_settings,
                              select_rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=tuple(PRESETS), default="smoke", help="preset of sizes (default smoke)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a preset setting, e.g. epochs=3, window=16,32,32, phantom='{\"matrix\": 256}' "
                         "(repeatable; --list-settings shows them)")
    ap.add_argument("--only", default=None, help="comma-separated row names or patterns (e.g. 'unet,vit-mae-p4-*'); "
                                                 "the default segmenter is always evaluated as the reference")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's; use 1 on a "
                                                                "busy machine, where more threads fight each other)")
    ap.add_argument("--out", default=None, help="output folder (default benchmarks/results/<scale>-<date>/)")
    ap.add_argument("--resume", action="store_true", help="reuse phantoms, pre-trained models and finished rows of "
                                                          "an earlier run into the same --out with the same settings")
    ap.add_argument("--publish", action="store_true", help="also copy results.md to benchmarks/COMPARISON.md")
    ap.add_argument("--list-settings", action="store_true", help="print the resolved settings and rows, then exit")
    return ap.parse_args(argv)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def progress_printer(prefix: str, epochs_seen: list[int] | None = None) -> Callable[..., None]:
    """A `Progress` that prints training/pre-training epochs and batch cases, not every inner stage; the number
    of every finished training epoch ("epoch N/M …") is appended to ``epochs_seen`` when given."""
    def report(stage: str, fraction: float, message: str = "") -> None:
        if stage in ("train", "pretrain", "batch"):
            say(f"{prefix} {message}")
        found = re.match(r"epoch (\d+)/\d+", message) if stage == "train" else None
        if found and epochs_seen is not None:
            epochs_seen.append(int(found.group(1)))
    return report


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ---- phantoms: made once, cached under work/phantoms, reduced to training tensors in worker processes ----------

def make_phantom_folder(job: tuple[int, dict[str, Any], str]) -> str:
    """Write phantom ``seed`` with ``options`` to ``folder`` unless it is already there (worker function)."""
    seed, options, folder = job
    if not (Path(folder) / "truth_calcifications.nii.gz").is_file():
        from iacseg.phantom import make_phantom, write_phantom

        write_phantom(make_phantom(seed, **options), Path(folder))
    return folder


def prepare_folder(job: tuple[str, tuple[int, ...], float, tuple[int, ...] | None, int]) -> tuple[Any, Any]:
    """(SegmenterCase, CTRegion or None) of one case folder: the segmenter's cached crop (ROI jittered by
    ``jitter`` mm) and, with a margin, the unlabelled pre-training region (worker function)."""
    import numpy as np

    from iacseg.train.data import case_plane, read_case_folder
    from iacseg.train.regions import region_of
    from iacseg.train.segmenter import prepare_segmenter_case

    folder, window, jitter, margin, seed = job
    case = read_case_folder(folder)
    plane = case_plane(case)
    seg = prepare_segmenter_case(case, window, np.random.default_rng(seed), jitter)
    region = region_of(case.name, case.ct, case.landmarks, margin, plane) if margin else None
    return seg, region


def _pool_map(fn: Callable[[Any], Any], jobs: list[Any], workers: int) -> list[Any]:
    if workers <= 1 or len(jobs) <= 1:
        return [fn(j) for j in jobs]
    with mp.get_context("spawn").Pool(min(workers, len(jobs)), initializer=_one_thread) as pool:
        return pool.map(fn, jobs, chunksize=1)


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


class Comparison:
    """One run: settings, folders, the prepared data, the shared pre-trained models, and the rows' results."""

    def __init__(self, settings: dict[str, Any], out: Path, device: str, resume: bool) -> None:
        self.settings, self.out, self.device, self.resume = settings, out, device, resume
        self.work = out / "work"
        self.seeds = phantom_seeds(settings)
        self.heldout_dir = self.work / "phantoms" / "heldout"
        self.pretrained: dict[str, tuple[Path | None, float | None, str]] = {}
        self.timings: dict[str, float] = {}

    def make_phantoms(self) -> None:
        t0 = time.time()
        jobs = [(seed, phantom_options(self.settings, seed), str(self.work / "phantoms" / part / f"phantom_{seed:05d}"))
                for part in ("train", "val", "heldout") for seed in self.seeds[part]]
        expected = {Path(j[2]) for j in jobs}
        strays = sorted(p for p in (self.work / "phantoms").glob("*/phantom_*") if p not in expected)
        if strays:  # the held-out folder is evaluated as a whole: it must hold this run's phantoms only
            raise SystemExit(f"error: {strays[0].parent} holds phantoms of another run ({strays[0].name}); use a "
                             f"fresh --out")
        say(f"making {len(jobs)} phantoms ({describe_phantoms(self.settings)}) with {self.settings['workers']} "
            f"worker(s)")
        _pool_map(make_phantom_folder, jobs, int(self.settings["workers"]))
        self.timings["phantoms_s"] = round(time.time() - t0, 1)

    def prepare(self, need_regions: bool) -> None:
        t0 = time.time()
        s = self.settings
        window = tuple(int(w) for w in s["window"])
        margin = None
        if need_regions:  # enough context for MAE blocks (½ block) and DeSD views (¾ view)
            margin = tuple(max(int(a) // 2, int(b) * 3 // 4) for a, b in zip(s["mae_roi"], s["desd_patch"]))
        jobs = [(str(self.work / "phantoms" / "train" / f"phantom_{seed:05d}"), window, float(s["roi_jitter_mm"]),
                 margin, seed) for seed in self.seeds["train"]]
        jobs += [(str(self.work / "phantoms" / "val" / f"phantom_{seed:05d}"), window, 0.0, None, seed)
                 for seed in self.seeds["val"]]
        say(f"preparing {len(jobs)} training/validation cases")
        prepared = _pool_map(prepare_folder, jobs, int(s["workers"]))
        n = len(self.seeds["train"])
        self.train_cases = [p[0] for p in prepared[:n]]
        self.regions = [p[1] for p in prepared[:n]] if need_regions else []
        self.val_cases = [p[0] for p in prepared[n:]]
        self.timings["prepare_s"] = round(time.time() - t0, 1)

    def shown(self, path: Path) -> str:
        """``path`` relative to the output folder when inside it (results stay valid when the folder moves)."""
        try:
            return str(path.resolve().relative_to(self.out.resolve()))
        except ValueError:
            return str(path)

    def _reusable(self, folder: Path) -> bool:
        return self.resume and (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()

    def pretrain(self, key: str) -> None:
        """Train the shared pre-trained model ``key`` ("mae-p<P>" or "desd"); a failure is recorded for its rows."""
        s = self.settings
        folder = self.work / "models" / "pretrained" / key
        t0 = time.time()
        try:
            if self._reusable(folder):
                say(f"{key}: reusing {folder}")
                seconds = json.loads((folder / "config.json").read_text())["training"]["seconds"]
                self.pretrained[key] = (folder, seconds, "")
                return
            say(f"{key}: pre-training")
            if key.startswith("mae-p"):
                from iacseg.train.pretrain_mae import pretrain_mae

                pretrain_mae(self.regions, folder, config=str(s["vit_config"]), patch=int(key[5:]),
                             roi_size=tuple(s["mae_roi"]), epochs=int(s["mae_epochs"]),
                             steps_per_epoch=int(s["mae_steps"]), batch=int(s["mae_batch"]), lr=float(s["mae_lr"]),
                             device=self.device, seed=int(s["seed"]), progress=progress_printer(f"[{key}]"))
            else:
                from iacseg.train.pretrain_desd import pretrain_desd

                pretrain_desd(self.regions, folder, epochs=int(s["desd_epochs"]), steps_per_epoch=int(s["desd_steps"]),
                              batch=int(s["desd_batch"]), device=self.device, seed=int(s["seed"]),
                              patch=tuple(s["desd_patch"]), progress=progress_printer(f"[{key}]"))
            self.pretrained[key] = (folder, round(time.time() - t0, 1), "")
        except Exception as exc:  # noqa: BLE001 — recorded; the rows that need it fail with this line
            traceback.print_exc()
            self.pretrained[key] = (None, round(time.time() - t0, 1), f"pre-training {key} failed: "
                                                                      f"{type(exc).__name__}: {exc}")

    def train(self, row: Row, epochs_seen: list[int]) -> Path:
        from iacseg.train.segmenter import train_segmenter

        s = self.settings
        kw: dict[str, Any] = dict(
            epochs=int(s["epochs"]), steps_per_epoch=int(s["steps"]), patch=tuple(s["window"]), batch=int(s["batch"]),
            lr=float(s["vit_lr"] if row.arch == "vit" else s["lr"]), device=self.device, seed=int(s["seed"]),
            val_every=int(s["val_every"]),
            val_data=self.val_cases, roi_jitter_mm=float(s["roi_jitter_mm"]), arch=row.arch, name=row.name,
            progress=progress_printer(f"[{row.name}]", epochs_seen),
            data_description=f"{len(self.train_cases)} synthetic phantoms (seeds {self.seeds['train'][0]}–"
                             f"{self.seeds['train'][-1]}; {describe_phantoms(s)}), compare_segmenters.py")
        if int(s["time_budget_s"]) > 0:
            kw["time_budget_s"] = int(s["time_budget_s"])
        if row.arch == "vit":
            kw.update(decoder=row.decoder, decoder_channels=int(s["decoder_channels"]))
            if row.pretrained is None:
                kw.update(vit_config=str(s["vit_config"]), vit_patch=row.vit_patch)
        if row.arch == "grcsf":
            kw["grcsf"] = dict(s["grcsf"])
        if row.pretrained is not None:
            folder, _, error = self.pretrained[row.pretrained]
            if folder is None:
                raise RuntimeError(error)
            kw["init"] = folder
        return train_segmenter(self.train_cases, self.work / "models" / row.name, **kw)

    def evaluate(self, name: str, model_dir: Path | None) -> dict[str, Any]:
        """`iacseg batch` of the held-out phantoms with ``model_dir`` (None: the default segmenter), then
        `evaluate_folders`; the whole evaluation is saved to work/evaluations/<name>.json."""
        from iacseg.batch import run_batch
        from iacseg.evaluate import evaluate_folders
        from iacseg.pipeline import SegmentOptions

        pred = self.work / "predictions" / name
        shutil.rmtree(pred, ignore_errors=True)  # never mix predictions of an earlier model
        run_batch([self.heldout_dir], pred, SegmentOptions(segmenter=model_dir, device=self.device),
                  progress=progress_printer(f"[{name}] held-out"))
        result = evaluate_folders(pred, self.heldout_dir, n_resamples=int(self.settings["bootstrap"]), seed=0)
        path = self.work / "evaluations" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2, default=float))
        return result["summary"]

    def run_row(self, row: Row) -> dict[str, Any]:
        """Train (unless the default row) and evaluate one row; any error becomes a failed row."""
        record_path = self.work / "rows" / f"{row.name}.json"
        if self.resume and record_path.is_file():
            done = json.loads(record_path.read_text())
            if done.get("status") == "ok":
                say(f"{row.name}: reusing the finished row")
                return done
        extra: dict[str, Any] = {"pretrained": row.pretrained, "train_seconds": None}
        if row.pretrained:
            extra["pretrain_seconds"] = (self.pretrained.get(row.pretrained) or (None, None, ""))[1]
        try:
            if row.arch is None:
                from iacseg.models.defaults import resolve_model

                model_dir = resolve_model(None, "segmenter")
            else:
                say(f"{row.name}: training")
                t0 = time.time()
                epochs_seen: list[int] = []
                model_dir = self.train(row, epochs_seen)
                extra["train_seconds"] = round(time.time() - t0, 1)
                extra["train_steps"] = max(epochs_seen, default=0) * int(self.settings["steps"])
            config = json.loads((Path(model_dir) / "config.json").read_text())
            extra.update(model_dir=self.shown(Path(model_dir)), n_parameters=config.get("n_parameters"),
                         threshold=config.get("threshold"), model=f"{config.get('name')} v{config.get('version')}")
            say(f"{row.name}: segmenting {len(self.seeds['heldout'])} held-out phantoms")
            summary = self.evaluate(row.name, None if row.arch is None else Path(model_dir))
            record = row_record(row.name, row.label, row.method, summary=summary, **extra)
            if not summary.get("n_evaluated"):
                record.update(status="failed", error="no held-out case could be segmented and evaluated (see "
                                                     f"work/predictions/{row.name}/summary.csv)")
        except Exception as exc:  # noqa: BLE001 — a failing row must not stop the others
            traceback.print_exc()
            line = (str(exc).strip().splitlines() or [""])[0]
            record = row_record(row.name, row.label, row.method, status="failed",
                                error=f"{type(exc).__name__}: {line}", **extra)
        record_path.parent.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(record, indent=2, default=str))
        say(f"{row.name}: {record['status']} {record['error']}")
        return record


def vit_description(settings: dict[str, Any]) -> str:
    from iacseg.models.networks.vit.encoder import VIT_CONFIGS

    c = VIT_CONFIGS[str(settings["vit_config"]).removeprefix("ViTiac-")]
    return (f"ViTiac-{settings['vit_config']} (width {c.width}, depth {c.depth}, heads {c.heads}; MAE decoder width "
            f"{c.decoder_width}, depth {c.decoder_depth}); decoder channels {settings['decoder_channels']}; MAE patch "
            f"sizes {format_value(tuple(settings['mae_patches']))}")


def device_description(device: str) -> str:
    import os

    import torch

    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))}), torch {torch.__version__}"
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s)), torch {torch.__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        settings = resolve_settings(args.scale, args.overrides)
        rows = select_rows(all_rows(settings), args.only)
        seeds = phantom_seeds(settings)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.list_settings:
        print(json.dumps({k: format_value(v) for k, v in settings.items()}, indent=2))
        print("rows:", ", ".join(r.name for r in rows))
        return 0
    date = dt.date.today().isoformat()
    out = Path(args.out) if args.out else HERE / "results" / f"{args.scale}-{date}"
    plan = {"scale": args.scale, "settings": {k: format_value(v) for k, v in settings.items()}}
    plan_path = out / "plan.json"
    if plan_path.is_file():
        if not args.resume:
            print(f"error: {out} already holds a run; give --resume to continue it or another --out",
                  file=sys.stderr)
            return 2
        if json.loads(plan_path.read_text()) != plan:
            print(f"error: {out} was made with other settings; give another --out", file=sys.stderr)
            return 2
    out.mkdir(parents=True, exist_ok=True)
    plan_path.write_text(json.dumps(plan, indent=2))

    import torch

    from iacseg.core.device import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = str(resolve_device(args.device))
    t0 = time.time()
    commit = git_commit()  # the code that runs (later commits during a long run do not count)
    run = Comparison(settings, out, device, args.resume)
    run.make_phantoms()
    needed = pretrained_needed(rows)
    run.prepare(need_regions=bool(needed))
    for key in needed:
        run.pretrain(key)
    records = [run.run_row(DEFAULT_ROW)] + [run.run_row(r) for r in rows if r.name != DEFAULT_ROW.name]
    wall = time.time() - t0

    s = settings
    meta = {
        "scale": args.scale, "n_train": len(seeds["train"]), "n_val": len(seeds["val"]),
        "n_heldout": len(seeds["heldout"]),
        "seeds": {k: f"{v[0]}–{v[-1]}" if len(v) > 1 else str(v[0]) for k, v in seeds.items()},
        "phantoms": describe_phantoms(s),
        "phantoms_reduced": phantoms_reduced(s),
        "epochs": s["epochs"], "steps": s["steps"], "batch": s["batch"], "window": format_value(tuple(s["window"])),
        "time_budget_s": s["time_budget_s"],
        "mae": f"{s['mae_epochs']} × {s['mae_steps']} steps, batch {s['mae_batch']}, blocks "
               f"{format_value(tuple(s['mae_roi']))}",
        "desd": f"{s['desd_epochs']} × {s['desd_steps']} steps, batch {s['desd_batch']}, views "
                f"{format_value(tuple(s['desd_patch']))}",
        "vit_config": vit_description(s), "device": device_description(device), "wall_minutes": wall / 60.0,
        "command": "python benchmarks/compare_segmenters.py " + shlex.join(argv), "commit": commit,
        "note": s["note"],
        "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "bootstrap": s["bootstrap"], **run.timings,
    }
    markdown = results_markdown(meta, records)
    (out / "results.json").write_text(json.dumps({"meta": meta, "settings": plan["settings"], "rows": records,
                                                  "pretrained": {k: {"folder": run.shown(v[0]) if v[0] else None,
                                                                     "seconds": v[1], "error": v[2]}
                                                                 for k, v in run.pretrained.items()}},
                                                 indent=2, default=str))
    (out / "results.csv").write_text(results_csv(records))
    (out / "results.md").write_text(markdown)
    if args.publish:
        (HERE / "COMPARISON.md").write_text(markdown)
    print(markdown)
    say(f"wrote {out / 'results.md'}" + (f" and {HERE / 'COMPARISON.md'}" if args.publish else "")
        + f" in {wall / 60:.1f} min")
    from comparison_report import compare_with_default

    for line in compare_with_default(records):
        print("\n*** " + line + " ***")
    return 0


if __name__ == "__main__":
    sys.exit(main())
