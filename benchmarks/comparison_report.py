"""Results of `compare_segmenters.py` as a table: ``results.md`` (with the header that says how big the run was),
``results.csv``, and the comparison of every row with the default segmenter.

Pure Python: a row is a dict (see `row_record`); ``meta`` describes the run (see `header_lines`).
"""

from __future__ import annotations

import csv
import io
from typing import Any, Mapping, Sequence

#: (key in the evaluation's confidence intervals, column title, decimals).
METRICS: tuple[tuple[str, str, int], ...] = (
    ("dice", "Dice", 3), ("precision", "Precision", 3), ("recall", "Recall", 3),
    ("volume_difference_mm3", "ΔV mm³", 1), ("abs_volume_difference_mm3", "|ΔV| mm³", 1))


def row_record(name: str, label: str, method: str, status: str = "ok", error: str = "",
               summary: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """One row of results: identity, status (``ok``/``failed``) and error line, and — from an
    `iacseg.evaluate.evaluate_folders` ``summary`` — the held-out case counts and, per metric of `METRICS`,
    ``{"estimate", "ci_low", "ci_high"}`` (95 % percentile bootstrap over cases). ``extra``: train_seconds,
    pretrained, pretrain_seconds, n_parameters, threshold, model_dir, …"""
    metrics: dict[str, dict[str, Any]] = {}
    if summary:
        intervals = summary.get("confidence_intervals") or {}
        for key, _, _ in METRICS:
            ci = intervals.get(key) or {}
            metrics[key] = {k: ci.get(k) for k in ("estimate", "ci_low", "ci_high")}
    return {"name": name, "label": label, "method": method, "status": status, "error": error,
            "n_evaluated": (summary or {}).get("n_evaluated"), "n_cases": (summary or {}).get("n_cases"),
            "metrics": metrics, **extra}


def format_interval(ci: Mapping[str, Any] | None, decimals: int) -> str:
    """``0.512 [0.401; 0.633]``; ``—`` without an estimate; the estimate alone when the interval is missing."""
    if not ci or ci.get("estimate") is None:
        return "—"
    f = f"{{:.{decimals}f}}"
    if ci.get("ci_low") is None or ci.get("ci_high") is None:
        return f.format(ci["estimate"])
    return f"{f.format(ci['estimate'])} [{f.format(ci['ci_low'])}; {f.format(ci['ci_high'])}]"


def _seconds(value: Any) -> str:
    if value is None:
        return "—"
    return f"{float(value):.1f}" if float(value) < 10 else f"{float(value):.0f}"


def _params(value: Any) -> str:
    if value is None:
        return "—"
    n = int(value)
    return f"{n / 1e6:.2f} M" if n >= 1_000_000 else f"{n / 1e3:.1f} k"


def status_text(row: Mapping[str, Any]) -> str:
    """``ok`` (with ``k/n cases`` when some held-out cases failed) or ``failed: <error line>``."""
    if row.get("status") != "ok":
        line = str(row.get("error") or "unknown error").strip().splitlines()
        return f"failed: {(line[0] if line else 'unknown error')[:160]}"
    n_ok, n = row.get("n_evaluated"), row.get("n_cases")
    return "ok" if n_ok is None or n_ok == n else f"ok ({n_ok}/{n} cases)"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The results table (markdown): one line per row, metrics as ``estimate [95 % CI]``."""
    head = ["Model", "Status", "Train s", "Steps", "Pre-training (shared)", "Parameters"] + [t for _, t, _ in METRICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        pre = "—"
        if r.get("pretrained"):
            pre = f"{r['pretrained']} ({_seconds(r.get('pretrain_seconds'))} s)"
        label = str(r["label"])
        name = f"`{r['name']}`" + (label[len(r["name"]):] if label.startswith(r["name"]) else f" {label}")
        if r["name"] == "default" and r.get("model"):
            name += f": {r['model']}"
        steps = r.get("train_steps")
        cells = [name, status_text(r), _seconds(r.get("train_seconds")), "—" if steps is None else str(steps), pre,
                 _params(r.get("n_parameters"))]
        cells += [format_interval((r.get("metrics") or {}).get(k), d) for k, _, d in METRICS]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def _estimate(row: Mapping[str, Any], key: str) -> float | None:
    value = ((row.get("metrics") or {}).get(key) or {}).get("estimate")
    return None if value is None else float(value)


def compare_with_default(rows: Sequence[Mapping[str, Any]], default_name: str = "default") -> list[str]:
    """Sentences naming every row whose held-out mean Dice is above the default row's (and whether the 95 %
    intervals overlap); empty when none is, or the default row has no Dice. The default is never replaced here."""
    ref = next((r for r in rows if r["name"] == default_name and r.get("status") == "ok"), None)
    ref_dice = _estimate(ref, "dice") if ref else None
    if ref is None or ref_dice is None:
        return []
    ref_ci = ref["metrics"]["dice"]
    out = []
    for r in rows:
        dice = _estimate(r, "dice")
        if r is ref or r.get("status") != "ok" or dice is None or dice <= ref_dice:
            continue
        ci = r["metrics"]["dice"]
        separate = (ci.get("ci_low") is not None and ref_ci.get("ci_high") is not None
                    and ci["ci_low"] > ref_ci["ci_high"])
        out.append(f"`{r['name']}` has a higher mean Dice than the default on these held-out phantoms ({dice:.3f} vs "
                   f"{ref_dice:.3f}; "
                   + ("the 95 % intervals do not overlap" if separate else "the 95 % intervals overlap")
                   + "). The shipped model was NOT replaced: the lead decides.")
    return out


def header_lines(meta: Mapping[str, Any]) -> list[str]:
    """The markdown header: scale, phantoms, training lengths, ViT configuration, device, wall time, command,
    commit, and what the numbers can and cannot say. ``meta`` keys: scale, n_train, n_val, n_heldout,
    seeds (``{"train", "val", "heldout"}`` ranges as text), phantoms, epochs, steps, batch, window, mae, desd,
    vit_config, device, wall_minutes, command, commit, date."""
    return [
        f"# Segmenter comparison on synthetic phantoms — scale `{meta['scale']}`", "",
        f"- **Training**: {meta['n_train']} phantoms (seeds {meta['seeds']['train']}) + {meta['n_val']} validation "
        f"phantoms (seeds {meta['seeds']['val']}; choose the best epoch and calibrate the threshold); "
        f"{meta['phantoms']}.",
        f"- **Held-out evaluation**: {meta['n_heldout']} phantoms (seeds {meta['seeds']['heldout']}, same kind), "
        f"`iacseg batch` with each model then `iacseg evaluate`; 95 % percentile-bootstrap intervals over cases "
        f"({meta['bootstrap']} resamples).",
        f"- **Segmenter training**: {meta['epochs']} epochs × {meta['steps']} steps, batch {meta['batch']}, window "
        f"{meta['window']} voxels (k, j, i)" + (
            f", stopped after the first epoch past a wall-clock budget of {meta['time_budget_s']} s per model "
            f"(the same for every row; column Steps)" if int(meta.get("time_budget_s") or 0) > 0 else "")
        + f"; pre-training: MAE {meta['mae']}, DeSD {meta['desd']}.",
        f"- **ViT configuration**: {meta['vit_config']}.",
        *([f"- **Left out at this scale**: {meta['note']}."] if meta.get("note") else []),
        f"- **Device**: {meta['device']}; **wall time** {meta['wall_minutes']:.1f} min; run {meta['date']}.",
        f"- **Command**: `{meta['command']}`",
        f"- **Git commit**: `{meta['commit']}`",
        "",
        f"**Read with care.** At this scale ({meta['n_train']} training phantoms, {meta['epochs']} × {meta['steps']} "
        f"steps, {meta['n_heldout']} held-out phantoms) the numbers do not say which method is better: they show "
        f"that every method trains, saves, segments and is evaluated end to end, and how wide the intervals are "
        f"with so few cases. Do not claim more than it shows."
        + (" Every model had the same training time on this device, so slower networks took fewer steps: the "
           "table compares what each method learns in equal compute, not what it reaches at convergence."
           if int(meta.get("time_budget_s") or 0) > 0 else ""),
        "",
    ]


def results_markdown(meta: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    """The whole ``results.md``: header, table, notes, and the comparison with the default."""
    notes = [
        "", "Notes:", "",
        "- `default (shipped)` is the current default segmenter, trained elsewhere at its own scale (its model card "
        "says how); it is evaluated on the same held-out phantoms but not retrained here.",
        "- Train s: wall time of the segmenter's training (with its validation); shared pre-training is listed once "
        "per model it made and is not included. Parameters: all weights in the model folder (GRCSF's include its "
        "frozen MAE).",
        "- ΔV: predicted − true calcification volume per case (mm³); |ΔV| its absolute value. Each model's "
        "threshold was calibrated on the validation phantoms to the smallest total volume difference. A case "
        "without any predicted voxel counts as precision 1 (`iacseg evaluate`'s convention).",
    ]
    if meta.get("phantoms_reduced"):
        notes.append(f"- These phantoms are reduced ({meta['phantoms']}); the default segmenter was trained on "
                     "full-size phantoms (512², slices 0.625–5 mm), so its numbers here are outside its training "
                     "conditions and say little about it.")
    verdict = compare_with_default(rows)
    notes += ["", *(verdict or ["No trained row has a higher held-out mean Dice than the default segmenter."])]
    return "\n".join([*header_lines(meta), markdown_table(rows), *notes, ""])


def results_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """One CSV line per row: identity, status, error, timings, parameters and each metric's estimate and CI."""
    fields = ["name", "label", "status", "error", "train_seconds", "train_steps", "pretrained", "pretrain_seconds",
              "n_parameters",
              "threshold", "n_evaluated", "n_cases"]
    fields += [f"{k}_{part}" for k, _, _ in METRICS for part in ("estimate", "ci_low", "ci_high")]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        flat = {k: r.get(k) for k in fields}
        for k, _, _ in METRICS:
            for part in ("estimate", "ci_low", "ci_high"):
                flat[f"{k}_{part}"] = ((r.get("metrics") or {}).get(k) or {}).get(part)
        writer.writerow(flat)
    return buf.getvalue()
