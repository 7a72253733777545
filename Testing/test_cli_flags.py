"""Only the CLI knows its flags: library messages name parameters in words, `iacseg.cli.flags` adds the flag.

Also the one threshold rule (`iacseg.core.threshold`) shared by the CLI, the pipeline and the Slicer module, and
``iacseg demo`` printing in the CLI (the engine's `run_demo` returns results).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import pytest

from iacseg.cli import flags
from iacseg.cli.main import build_parser, main
from iacseg.core.errors import InputError
from iacseg.core.threshold import DEFAULT_THRESHOLD, model_threshold, parse_threshold

ENGINE = Path(__file__).resolve().parents[1] / "IACSegExtension" / "iacseg"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "IACSegModule"))

#: A command-line flag inside a text: `--word` or `-o` standing alone.
FLAG_IN_TEXT = re.compile(r"(?:^|[\s(\[`'\"/])(--[A-Za-z][A-Za-z0-9-]*|-o)(?=[\s)\],.;:`'\"=]|$)")

#: Strings outside cli/ that may show a flag, each with why: documentation of command lines written into a model's
#: card or config (read by people running the CLI), and another program's flag.
ALLOWED = {
    ("io/dicom_stack.py", "gdcmconv --raw"): "gdcmconv's own flag, not an iacseg flag",
    ("train/pretrain_desd.py", "iacseg train segmenter --init"): "the model card's usage line",
    ("train/pretrain_mae.py", "iacseg train segmenter --arch vit --init"): "the model card's usage line",
}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                found.add(id(first.value))
    return found


def _library_modules() -> list[Path]:
    return [p for p in sorted(ENGINE.rglob("*.py")) if "cli" not in p.relative_to(ENGINE).parts]


def test_no_library_message_names_a_command_line_flag() -> None:
    """Every string constant outside ``iacseg/cli`` (docstrings excepted: they may document the CLI) is free of
    ``--flag`` and ``-o``; the few allowed ones are listed with their reason."""
    offenders = []
    for path in _library_modules():
        rel = path.relative_to(ENGINE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                if FLAG_IN_TEXT.search(node.value) and not any(f == rel and snippet in node.value
                                                               for f, snippet in ALLOWED):
                    offenders.append(f"{rel}:{node.lineno}: {node.value[:80]!r}")
    assert not offenders, "library strings naming CLI flags:\n" + "\n".join(offenders)


def _parameters_raised() -> dict[str, list[str]]:
    """``parameter=`` values of the library's error calls → where they are."""
    found: dict[str, list[str]] = {}
    for path in _library_modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == "parameter" and isinstance(kw.value, ast.Constant) and kw.value.value:
                        found.setdefault(kw.value.value, []).append(f"{path.relative_to(ENGINE)}:{node.lineno}")
    return found


def test_every_parameter_the_library_names_has_a_flag_somewhere() -> None:
    raised = _parameters_raised()
    assert {"threshold", "output", "overwrite", "device"} <= raised.keys()
    mapped = {parameter for table in flags.FLAGS.values() for parameter in table}
    missing = {p: where for p, where in raised.items() if p not in mapped}
    assert not missing, f"parameters without a flag in iacseg/cli/flags.py: {missing}"


def _subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                command = f"{prefix} {name}".strip()
                found[command] = sub
                found.update(_subcommands(sub, command))
    return found


def test_every_mapped_flag_exists_on_its_command() -> None:
    commands = _subcommands(build_parser())
    for command, table in flags.FLAGS.items():
        assert command in commands, f"{command!r} is not an iacseg command"
        options = {o for action in commands[command]._actions for o in action.option_strings}
        for parameter, names in table.items():
            assert names and set(names) <= options, (command, parameter, names)


@pytest.mark.parametrize("argv, command", [
    (["segment", "ct", "-o", "o"], "segment"),
    (["store", "add", "S", "--image", "i", "--engine-output", "e"], "store add"),
    (["pretrain", "mae", "-o", "m", "--phantoms", "1"], "pretrain mae"),
    (["models", "promote", "x"], "models promote"),
    (["models"], "models"),
])
def test_the_command_is_known_for_the_map(argv, command) -> None:
    assert flags.command_of(build_parser().parse_args(argv)) == command


def test_a_library_error_about_a_parameter_is_shown_with_its_flag(tmp_path, capsys) -> None:
    code = main(["segment", str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "out"), "--threshold", "1.5",
                 "--progress", "none"])
    err = capsys.readouterr().err
    assert code == 2 and err.splitlines() == [
        "iacseg: error (--threshold): threshold 1.5 is outside 0–1; give a probability between 0 and 1 (exclusive) "
        "or auto"], err
    (tmp_path / "afile").write_text("x")
    code = main(["segment", str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "afile"), "--progress", "none"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("iacseg: error (-o/--output): output path ") and "(-o)" not in err, err


def test_the_flag_is_the_command_s_own_and_absent_when_it_has_none(monkeypatch, capsys) -> None:
    import iacseg.batch

    def refuse(text):
        raise InputError("shard x is not a shard", parameter="shard")

    monkeypatch.setattr(iacseg.batch, "parse_shard", refuse)
    assert main(["batch", "in", "-o", "out", "--shard", "x"]) == 2
    assert capsys.readouterr().err == "iacseg: error (--shard): shard x is not a shard\n"
    assert flags.error_line("m", "demo", "overwrite") == "iacseg: error: m"  # demo has no --overwrite
    assert flags.error_line("m", "segment", None) == "iacseg: error: m"
    assert flags.error_line("m", "train", "init") == "iacseg: error (--init): m"


def test_the_slicer_module_shows_the_message_without_the_flag() -> None:
    from IACSegLib.process import failure_message

    assert failure_message(2, ["{}", "iacseg: error (--threshold): threshold 2 is outside 0–1"]) == \
        "threshold 2 is outside 0–1"
    assert failure_message(2, ["iacseg: error: x.nii is not a CT"]) == "x.nii is not a CT"


# ------------------------------------------------------------------------------------------------ the threshold


@pytest.mark.parametrize("value, expected", [(None, None), ("auto", None), (" Auto ", None), ("0.3", 0.3),
                                             (0.25, 0.25)])
def test_one_threshold_rule(value, expected) -> None:
    assert parse_threshold(value) == expected


@pytest.mark.parametrize("value", ["", "high", "nan", "inf", "0", "1", 1.5, -0.2, True])
def test_bad_thresholds_are_refused_about_the_threshold(value) -> None:
    with pytest.raises(InputError) as err:
        parse_threshold(value)
    assert err.value.parameter == "threshold" and "threshold" in str(err.value) and "--" not in str(err.value)


def test_the_slicer_module_and_the_pipeline_use_the_same_rule() -> None:
    from IACSegLib.parameters import ParameterError, SegmentParameters, parse_threshold_text

    from iacseg.pipeline import SegmentOptions

    assert parse_threshold_text("") is None and parse_threshold_text("auto") is None
    assert parse_threshold_text("0.4") == parse_threshold("0.4") == 0.4
    for bad in ("high", "1", "nan"):
        with pytest.raises(InputError) as engine:
            parse_threshold(bad)
        with pytest.raises(ParameterError) as module:
            parse_threshold_text(bad)
        assert str(module.value) == str(engine.value)
    with pytest.raises(ParameterError, match="outside 0–1"):
        SegmentParameters(Path("ct"), Path("o"), threshold=1.0).validate(check_paths=False)
    assert SegmentOptions().threshold is None  # the model's calibrated threshold


def test_one_default_threshold() -> None:
    assert DEFAULT_THRESHOLD == 0.5
    assert model_threshold({}) == model_threshold({"threshold": None}) == DEFAULT_THRESHOLD
    assert model_threshold({"threshold": 0.3}) == 0.3
    sources = [p for p in (ENGINE / "pipeline.py", ENGINE / "models" / "segmenter.py",
                           ENGINE / "models" / "loading.py", ENGINE / "evaluate" / "calibrate.py")]
    for path in sources:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"""["']threshold["']\s*,\s*0\.5""", text), path  # no own default any more


# ------------------------------------------------------------------------------------------------ iacseg demo


def test_demo_imports_nothing_of_the_cli_and_prints_nothing() -> None:
    tree = ast.parse((ENGINE / "demo.py").read_text(encoding="utf-8"))
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if m.startswith("cli") or ".cli" in m or m == "iacseg.cli"], imported
    calls = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    assert "print" not in calls


def test_the_cli_prints_the_demo(monkeypatch, tmp_path, capsys) -> None:
    import iacseg.demo

    report = {"total": {"volume_mm3": 12.5, "agatston": 30.0, "lesion_count": 2, "complete": True},
              "risk_group": {"group": "low"}, "segments": {"L_petrous": {"volume_mm3": 12.5, "agatston": 30.0,
                                                                         "lesion_count": 2}}}
    calls = {}

    def fake_run_demo(out, seed, device, progress, announce):
        calls.update(out=out, seed=seed, device=device)
        announce("Making sample phantom (seed 7) …")
        return iacseg.demo.DemoResult(out / "phantom", out / "phantom" / "phantom_00007",
                                      out / "result" / "phantom_00007", report,
                                      {"mean_dice": 0.9, "mean_label_accuracy": 1.0,
                                       "landmark_mean_error_slices": 0.25}, True)

    monkeypatch.setattr(iacseg.demo, "run_demo", fake_run_demo)
    assert main(["demo", "-o", str(tmp_path), "--seed", "7", "--device", "cpu", "--progress", "none"]) == 0
    out, err = capsys.readouterr()
    assert calls == {"out": tmp_path, "seed": 7, "device": "cpu"}
    assert err.splitlines()[0] == "Making sample phantom (seed 7) …"
    assert f"Wrote {tmp_path / 'result' / 'phantom_00007'}" in err and "total calcium 12.5 mm³" in err
    assert "against the phantom's truth: Dice 0.900, label accuracy 1.000, landmark error 0.25 slices" in err
    assert f"overview image: {tmp_path / 'result' / 'phantom_00007' / 'overview.png'}" in err
    assert '"risk_group"' in out and '"total"' in out
