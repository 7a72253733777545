"""The segmenter comparison's pure parts (benchmarks/compare_segmenters.py and its two modules): presets and
overrides, row selection with --only, seeds, and the results table — no training here."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import compare_segmenters  # noqa: E402
from comparison_report import (compare_with_default, markdown_table, results_csv, results_markdown,  # noqa: E402
                               row_record)
from comparison_setup import (PRESETS, RESERVED_SEEDS, all_rows, phantom_options, phantom_seeds,  # noqa: E402
                              pretrained_needed, resolve_settings, select_rows)


def test_overrides_take_the_type_of_the_preset_value_and_leave_the_preset_alone():
    s = resolve_settings("smoke", ["epochs=3", "window=8,16,16", 'phantom={"matrix": 128}', "vit-lr=1e-4",
                                   "decoders=unetr,mae"])
    assert s["epochs"] == 3 and s["window"] == (8, 16, 16) and s["phantom"] == {"matrix": 128}
    assert s["vit_lr"] == pytest.approx(1e-4) and s["decoders"] == ("unetr", "mae")
    assert PRESETS["smoke"]["epochs"] != 3 and PRESETS["smoke"]["phantom"]["matrix"] == 192
    assert resolve_settings("gpu")["vit_config"] == "S" and resolve_settings("smoke")["vit_config"] == "tiny"


@pytest.mark.parametrize("scale, item, message", [
    ("huge", "epochs=1", "--scale huge is unknown"),
    ("smoke", "epoch=1", "--set epoch: no such setting"),
    ("smoke", "epochs=many", "--set epochs=many: expected int"),
    ("smoke", "epochs", "write KEY=VALUE"),
    ("smoke", "decoders=unetr,convnext", "decoders ['convnext'] are unknown"),
    ("smoke", "mae_patches=4,6", "must be 4, 8 or 16"),
])
def test_bad_settings_are_refused_naming_what_was_wrong(scale, item, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        resolve_settings(scale, [item])


def test_every_method_of_the_issue_is_a_row_and_only_selects_by_name_or_pattern():
    rows = all_rows(resolve_settings("smoke"))
    names = [r.name for r in rows]
    assert len(names) == 14 and names[:3] == ["unet", "unet-desd", "vit-scratch-p8-unetr"]
    assert {f"vit-mae-p{p}-{d}" for p in (4, 8) for d in ("unetr", "sfpn", "upscale-transposed", "upscale-nearest",
                                                           "mae")} <= set(names)
    assert names[-1] == "grcsf-mae-p8"
    chosen = select_rows(rows, "grcsf-mae-p8, vit-mae-p4-*,unet")
    p4 = [f"vit-mae-p4-{d}" for d in ("unetr", "sfpn", "upscale-transposed", "upscale-nearest", "mae")]
    assert [r.name for r in chosen] == ["unet", *p4, "grcsf-mae-p8"]
    assert pretrained_needed(chosen) == ["mae-p4", "mae-p8"]  # each shared model once, DeSD not needed
    assert pretrained_needed(select_rows(rows, "unet-desd")) == ["desd"]
    assert select_rows(rows, None) == rows
    with pytest.raises(ValueError, match="--only vit-p4 matches no row"):
        select_rows(rows, "unet,vit-p4")


def test_phantom_seeds_stay_in_their_ranges_and_away_from_reserved_sets():
    seeds = phantom_seeds(resolve_settings("gpu"))
    assert seeds["train"][0] == 20000 and seeds["val"][0] == seeds["train"][-1] + 1 and seeds["val"][-1] < 30000
    assert seeds["heldout"][0] == 80000 and len(seeds["heldout"]) == PRESETS["gpu"]["n_heldout"]
    used = set().union(*map(set, seeds.values()))
    assert not any(used & set(r) for r in RESERVED_SEEDS.values())
    with pytest.raises(ValueError, match="too many phantoms"):
        phantom_seeds(resolve_settings("smoke", ["n_heldout=10001"]))
    gpu = resolve_settings("gpu")  # every 7th seed tilted, like the demo models' training
    assert phantom_options(gpu, 20002) == {"tilt_deg": 12.0} and phantom_options(gpu, 20003) == {}


def _summary(dice: float, low: float, high: float, n: int = 4) -> dict:
    values = {"precision": 0.5, "recall": 0.25, "volume_difference_mm3": -12.34, "abs_volume_difference_mm3": 20.0}
    ci = {k: {"estimate": v, "ci_low": v - 1, "ci_high": v + 1} for k, v in values.items()}
    ci["dice"] = {"estimate": dice, "ci_low": low, "ci_high": high}
    return {"n_cases": n, "n_evaluated": n, "confidence_intervals": ci}


@pytest.fixture
def rows():
    return [row_record("default", "default (shipped)", "reference", summary=_summary(0.40, 0.30, 0.50),
                       n_parameters=595_600),
            row_record("unet", "ResEnc U-Net (baseline)", "scratch", summary=_summary(0.512, 0.401, 0.633),
                       train_seconds=61.4, n_parameters=1_234_567),
            row_record("grcsf-mae-p8", "GRCSF (MAE p8)", "grcsf", status="failed",
                       error="RuntimeError: out of memory | at step 3\ntraceback line", pretrained="mae-p8",
                       pretrain_seconds=5.2)]


def test_the_table_shows_intervals_and_a_failed_row_with_its_error_line(rows):
    table = markdown_table(rows).splitlines()
    assert len(table) == 2 + 3 and all(line.count(" | ") == table[0].count(" | ") for line in table[2:])
    default, unet, failed = table[2:]
    assert default.startswith("| `default` (shipped) | ok |")
    assert "0.512 [0.401; 0.633]" in unet and "61 |" in unet and "1.23 M" in unet and "-12.3 [-13.3; -11.3]" in unet
    assert "failed: RuntimeError: out of memory \\| at step 3 |" in failed and "traceback" not in failed
    assert "mae-p8 (5.2 s)" in failed and failed.endswith("| — | — | — | — | — |")
    lines = list(csv.DictReader(io.StringIO(results_csv(rows))))
    assert [r["status"] for r in lines] == ["ok", "ok", "failed"] and lines[1]["dice_ci_low"] == "0.401"


def test_a_row_above_the_default_is_announced_but_never_installed(rows):
    (line,) = compare_with_default(rows)
    assert line.startswith("`unet` has a higher mean Dice than the default on these held-out phantoms (0.512 vs 0.400")
    assert "intervals overlap" in line and "NOT replaced" in line
    rows[1]["metrics"]["dice"]["estimate"] = 0.3
    assert compare_with_default(rows) == []


def test_the_markdown_header_states_the_scale_and_the_command(rows):
    meta = {"scale": "smoke", "n_train": 6, "n_val": 2, "n_heldout": 4,
            "seeds": {"train": "20000–20005", "val": "20006–20007", "heldout": "80000–80003"},
            "phantoms": "192² matrix, 5.0 mm slices", "phantoms_reduced": True, "epochs": 5, "steps": 30, "batch": 2,
            "window": "16,32,32", "mae": "5 × 30 steps", "desd": "5 × 30 steps", "vit_config": "ViTiac-tiny",
            "device": "cpu", "wall_minutes": 4.25, "command": "python benchmarks/compare_segmenters.py --scale smoke",
            "commit": "abc1234", "date": "2026-11-22 21:00", "bootstrap": 1000}
    text = results_markdown(meta, rows)
    assert "scale `smoke`" in text and "6 phantoms (seeds 20000–20005)" in text and "5 epochs × 30 steps" in text
    assert "`python benchmarks/compare_segmenters.py --scale smoke`" in text and "`abc1234`" in text
    assert "do not say which method is better" in text and "Do not claim more than it shows." in text
    assert "4.2 min" in text and "outside its training conditions" in text


def test_the_script_refuses_an_unknown_row_before_doing_any_work(capsys, tmp_path):
    assert compare_segmenters.main(["--only", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "--only nope matches no row" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert compare_segmenters.main(["--scale", "gpu", "--list-settings", "--only", "grcsf*"]) == 0
    out = capsys.readouterr().out
    assert '"vit_config": "S"' in out and "rows: grcsf-mae-p8" in out
