"""Leave-one-family-out generalisation (issue 10): train on some phantom families, test on one never used in training.

For each held-out family H of ``--families`` (default the four randomised ones):

1. training cases = ``--train-per-family`` phantoms of every other family + ``--classic`` phantoms of the original
   generator (never held out: it is the base family the parents were trained on);
2. both models are fine-tuned from ``--init-segmenter`` / ``--init-landmarks`` (parents that never saw H — the
   classic-only models; or trained from scratch without them) with the trainers' defaults (MONAI augmentation,
   checkpoints: an interrupted run resumes on a re-run);
3. ``--test-per-family`` phantoms of H (seeds 81000 + 100·family index + n, never used for anything else) are
   segmented by the parents (baseline) and by the fold's models, and evaluated against their truth.

Pooled over the folds, every test case is scored only by models that never saw its family. Reported with 95 %
percentile-bootstrap intervals over cases (1,000 resamples): mean Dice, label accuracy (voxels calcified in both
whose segment labels agree), share of landmarks within 1 slice, landmark error in slices. ``--publish`` writes the
table to benchmarks/GENERALISATION.md; ``-o DIR/lofo.json`` always holds every number.

    .venv/bin/python benchmarks/generalisation_lofo.py -o /tmp/lofo --init-segmenter PARENT_SEG \\
        --init-landmarks PARENT_DST --cache /tmp/lofo-cache [--publish]

Training seeds: those of scripts/train_demo_models.py (seed s is made with family ``TRAIN_ORDER[s % 5]``), so the
two share their prepared-case cache; test seeds 81000+ are never used for training or model selection.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "IACSegExtension"))


#: Training seeds follow scripts/train_demo_models.py: seed s of 0, 1, 2, … is made with TRAIN_ORDER[s % 5], so
#: the prepared-case cache (--cache) is shared with the shipped models' training run.
TRAIN_ORDER = ("soft", "bone", "thick", "aged", "classic")


def train_jobs(families: list[str], per_family: int, n_classic: int) -> list[tuple[int, str]]:
    """The first ``per_family`` seeds of each of ``families`` (and ``n_classic`` classic ones), round robin."""
    jobs = []
    for f in families + ["classic"]:
        count = n_classic if f == "classic" else per_family
        k = TRAIN_ORDER.index(f)
        jobs += [(k + len(TRAIN_ORDER) * n, f) for n in range(count)]
    return jobs


def test_seed(family_index: int, n: int) -> int:
    return 81000 + 100 * family_index + n


def case_values(result: dict) -> dict[str, list]:
    """Per evaluated case: dice, label accuracy, share of its landmarks within 1 slice, landmark error (slices)."""
    out: dict[str, list] = {"dice": [], "label_accuracy": [], "within_1_slice": [], "landmark_error_slices": [],
                            "case": []}
    for c in result["cases"]:
        if c.get("status") != "ok":
            continue
        out["case"].append(c["case"])
        out["dice"].append(c["dice"])
        out["label_accuracy"].append(c.get("label_accuracy"))
        lms = list((c.get("landmarks") or {}).get("landmarks", {}).values())
        out["within_1_slice"].append(sum(v["abs_error_slices"] <= 1.0 + 1e-9 for v in lms) / len(lms) if lms else None)
        out["landmark_error_slices"].append(sum(v["abs_error_slices"] for v in lms) / len(lms) if lms else None)
    return out


def intervals(values: dict[str, list], n_resamples: int = 1000) -> dict[str, dict]:
    from iacseg.evaluate.bootstrap import bootstrap_ci

    return {k: bootstrap_ci(v, n_resamples=n_resamples, seed=0) for k, v in values.items() if k != "case"}


def segment_and_evaluate(truth: Path, pred: Path, segmenter: str | None, landmarks: str | None, device: str) -> dict:
    from iacseg.batch import run_batch
    from iacseg.evaluate import evaluate_folders
    from iacseg.pipeline import SegmentOptions

    counts = run_batch([truth], pred, SegmentOptions(segmenter=segmenter, landmark_model=landmarks, device=device))
    result = evaluate_folders(pred, truth, n_resamples=200)
    result["batch"] = counts
    return result


def robustness(out: Path, held: str, fi: int, seg: str, lm: str, device: str) -> list[dict]:
    """The fold's models on its held-out test cases (already segmented) and on two truncated phantoms of the
    held-out family: every contract file, ordered landmarks, a QC status, the missing segments not assessable."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from robustness_families import check_output, expected_missing, run_case

    from iacseg.phantom import generate_cases

    rows = []
    for case in sorted((out / held / "pred_fold").glob("phantom_*")):
        rows.append({"case": f"{held}/{case.name}", "truncate": None, **check_output(case)})
    for n, truncate in enumerate(("bottom", "top")):
        seed = test_seed(fi, 50 + n)
        truth = out / "test_truncated" / held
        if not (truth / f"phantom_{seed:05d}").is_dir():
            generate_cases(truth, seed, 1, family=held, truncate=truncate)
        rec = run_case(truth / f"phantom_{seed:05d}" / "ct.nii.gz", out / held / "pred_truncated" / f"{seed}",
                       device, segmenter=seg, landmarks=lm)
        missing = expected_missing(truncate)
        if not missing <= set(rec.get("not_assessable", [])):
            rec.update(ok=False, error=f"truncated ({truncate}) but not assessable = {rec.get('not_assessable')}")
        rows.append({"case": f"{held}/phantom_{seed:05d}", "truncate": truncate, **rec})
    return rows


def finished(model_dir: Path) -> bool:
    """A model folder the trainer completed (it writes the weights and the config last, atomically)."""
    return (model_dir / "model.safetensors").is_file() and (model_dir / "config.json").is_file()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default="soft,bone,thick,aged")
    ap.add_argument("--train-per-family", type=int, default=8)
    ap.add_argument("--classic", type=int, default=8, help="classic phantoms in every fold's training set")
    ap.add_argument("--test-per-family", type=int, default=8)
    ap.add_argument("--init-segmenter", default=None)
    ap.add_argument("--init-landmarks", default=None)
    ap.add_argument("--seg-epochs", type=int, default=6)
    ap.add_argument("--seg-steps", type=int, default=50)
    ap.add_argument("--lm-epochs", type=int, default=10)
    ap.add_argument("--seg-lr", type=float, default=5e-4, help="fine-tuning learning rate of the segmenter")
    ap.add_argument("--lm-lr", type=float, default=2e-4, help="fine-tuning learning rate of the localiser")
    ap.add_argument("--workers", type=int, default=1, help="processes making phantoms")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for training and inference")
    ap.add_argument("--cache", default=None, help="prepared training cases (.npz), reused across folds and runs")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("-o", "--output", default="/tmp/iacseg-lofo")
    ap.add_argument("--publish", action="store_true", help="write benchmarks/GENERALISATION.md")
    args = ap.parse_args()

    import torch

    from iacseg.phantom import FAMILIES, generate_cases
    from iacseg.train import train_landmarks, train_segmenter
    from iacseg.train.phantom_cases import prepare_many

    torch.set_num_threads(args.threads)
    out = Path(args.output)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    t_start = time.perf_counter()
    folds = []

    def log(message: str) -> None:
        print(f"[{(time.perf_counter() - t_start) / 60:6.1f} min] {message}", flush=True)

    for held in families:
        t_fold = time.perf_counter()
        saved = out / held / "fold.json"
        if saved.is_file():  # an interrupted run continues after its last finished fold
            folds.append(json.loads(saved.read_text()))
            log(f"fold {held}: reusing {saved}")
            continue
        jobs = train_jobs([f for f in families if f != held], args.train_per_family, args.classic)
        log(f"fold {held}: preparing {len(jobs)} training phantoms")
        prepared = prepare_many(jobs, args.workers, args.cache)
        models = out / held / "models"
        description = (f"LOFO fold without '{held}': {len(jobs)} phantoms of "
                       f"{', '.join(sorted({f for _, f in jobs}))}")
        seg, lm = models / "segmenter", models / "landmarks"
        reused = finished(seg) and finished(lm)
        if finished(seg):
            log(f"fold {held}: reusing the trained segmenter {seg}")
        else:
            log(f"fold {held}: training the segmenter")
            seg = train_segmenter([p[0] for p in prepared], models / "segmenter", epochs=args.seg_epochs,
                                  steps_per_epoch=args.seg_steps, lr=args.seg_lr, device=args.device,
                                  init=args.init_segmenter,
                                  resume=True, val_fraction=0.15, data_description=description)
        if finished(lm):
            log(f"fold {held}: reusing the trained localiser {lm}")
        else:
            log(f"fold {held}: training the landmark localiser")
            lm = train_landmarks([p[1] for p in prepared], models / "landmarks", epochs=args.lm_epochs,
                                 lr=args.lm_lr, device=args.device, init=args.init_landmarks, resume=True,
                                 val_fraction=0.15, data_description=description)
        t_train = time.perf_counter() - t_fold
        truth = out / "test" / held
        fi = FAMILIES.index(held)
        for n in range(args.test_per_family):
            seed = test_seed(fi, n)
            if not (truth / f"phantom_{seed:05d}").is_dir():
                generate_cases(truth, seed, 1, family=held)
        log(f"fold {held}: testing the parents and the fold's models on {args.test_per_family} '{held}' phantoms")
        base = segment_and_evaluate(truth, out / held / "pred_parents", args.init_segmenter, args.init_landmarks,
                                    args.device)
        new = segment_and_evaluate(truth, out / held / "pred_fold", str(seg), str(lm), args.device)
        robust = robustness(out, held, fi, str(seg), str(lm), args.device)
        fold = {"held_out": held, "train_jobs": len(jobs),
                "train_minutes": None if reused else round(t_train / 60, 1),
                "robustness": robust,
                "parents": {"summary": base["summary"], "values": case_values(base)},
                "fold": {"summary": new["summary"], "values": case_values(new)}}
        folds.append(fold)
        saved.write_text(json.dumps(fold, indent=2, default=float))
        s = new["summary"]
        log(f"fold {held}: Dice {s['mean_dice']}, label accuracy {s['mean_label_accuracy']}, ≤1 slice "
            f"{s['landmark_within_1_slice']} (parents: Dice {base['summary']['mean_dice']}, ≤1 slice "
            f"{base['summary']['landmark_within_1_slice']})")

    pooled = {which: {k: sum((f[which]["values"][k] for f in folds), []) for k in folds[0][which]["values"]}
              for which in ("parents", "fold")}
    record = {"commit": commit, "args": vars(args), "minutes": round((time.perf_counter() - t_start) / 60, 1),
              "folds": [{**f, "fold_ci": intervals(f["fold"]["values"]), "parents_ci": intervals(f["parents"]["values"])}
                        for f in folds],
              "pooled": {which: intervals(v) for which, v in pooled.items()}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "lofo.json").write_text(json.dumps(record, indent=2, default=float))
    table = markdown(record)
    print(table)
    if args.publish:
        (ROOT / "benchmarks" / "GENERALISATION.md").write_text(table)


def _ci(d: dict) -> str:
    if d.get("estimate") is None:
        return "—"
    return f"{d['estimate']:.3f} [{d['ci_low']:.3f}; {d['ci_high']:.3f}]"


def markdown(record: dict) -> str:
    a = record["args"]
    lines = [
        "# Generalisation to unseen phantom families (leave one family out)", "",
        f"Command: `python benchmarks/generalisation_lofo.py --families {a['families']} --train-per-family "
        f"{a['train_per_family']} --classic {a['classic']} --test-per-family {a['test_per_family']} --seg-epochs "
        f"{a['seg_epochs']} --seg-steps {a['seg_steps']} --lm-epochs {a['lm_epochs']} --seg-lr {a['seg_lr']} "
        f"--lm-lr {a['lm_lr']} --init-segmenter "
        f"{Path(a['init_segmenter']).name if a['init_segmenter'] else 'none'} --init-landmarks "
        f"{Path(a['init_landmarks']).name if a['init_landmarks'] else 'none'}` at commit {record['commit']}, "
        f"{record['minutes']} min on {a['device']}.", "",
        "Each row: the models fine-tuned without the held-out family, tested on phantoms of that family only "
        "(parents = the models before fine-tuning, which never saw any randomised family). Mean over test cases "
        "[95 % bootstrap interval].", "",
        "| held-out family | models | Dice | label accuracy | landmarks ≤ 1 slice | landmark error (slices) |",
        "|---|---|---|---|---|---|",
    ]
    for f in record["folds"]:
        for which, ci in (("parents", f["parents_ci"]), ("fold", f["fold_ci"])):
            lines.append(f"| {f['held_out']} | {which} | {_ci(ci['dice'])} | {_ci(ci['label_accuracy'])} | "
                         f"{_ci(ci['within_1_slice'])} | {_ci(ci['landmark_error_slices'])} |")
    for which in ("parents", "fold"):
        ci = record["pooled"][which]
        lines.append(f"| **all (pooled)** | {which} | {_ci(ci['dice'])} | {_ci(ci['label_accuracy'])} | "
                     f"{_ci(ci['within_1_slice'])} | {_ci(ci['landmark_error_slices'])} |")
    rows = [r for f in record["folds"] for r in f.get("robustness", [])]
    failed = [r for r in rows if not r.get("ok")]
    statuses = {s: sum(1 for r in rows if r.get("qc_status") == s) for s in ("ok", "review", "unusable")}
    lines += ["", f"Robustness (each fold's models on its held-out family, incl. one bottom- and one top-truncated "
                  f"phantom per fold): {len(rows)} cases, {len(failed)} failed; QC {statuses}."]
    lines += [f"- failed: {r['case']}: {r.get('error')}" for r in failed]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
