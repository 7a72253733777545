"""Slicer module parameters → the engine's command line (no Slicer needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "IACSegModule"))

from IACSegLib.parameters import (ParameterError, SegmentParameters, TrainParameters, engine_command,  # noqa: E402
                                  parse_threshold_text)


def test_segment_args_follow_the_cli_contract(tmp_path: Path) -> None:
    ct = tmp_path / "ct.nii.gz"
    ct.write_bytes(b"")
    params = SegmentParameters(ct, tmp_path / "out", model="unet-demo", device="cuda:1", threshold=0.35)
    params.validate()
    assert params.as_arg_list() == ["segment", str(ct), "-o", str(tmp_path / "out"), "--progress", "jsonl",
                                    "--device", "cuda:1", "--threshold", "0.35", "--model", "unet-demo"]


def test_defaults_use_auto_threshold_and_bundled_models(tmp_path: Path) -> None:
    args = SegmentParameters(tmp_path, tmp_path / "o", overwrite=True).as_arg_list()
    assert args[args.index("--threshold") + 1] == "auto"
    assert "--model" not in args and "--landmark-model" not in args
    assert args[-1] == "--overwrite"


@pytest.mark.parametrize("kwargs, words", [
    ({"device": "gpu"}, "device"),
    ({"threshold": 1.0}, "between 0 and 1"),
    ({"threshold": float("nan")}, "between 0 and 1"),
    ({"model": "  "}, "empty"),
])
def test_bad_choices_are_refused_with_a_sentence(tmp_path: Path, kwargs: dict, words: str) -> None:
    with pytest.raises(ParameterError, match=words):
        SegmentParameters(tmp_path, tmp_path / "o", **kwargs).validate()


def test_missing_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="does not exist"):
        SegmentParameters(tmp_path / "nope.nii.gz", tmp_path / "o").validate()


def test_threshold_text() -> None:
    assert parse_threshold_text(" Auto ") is None and parse_threshold_text("") is None
    assert parse_threshold_text("0.4") == 0.4
    with pytest.raises(ParameterError):
        parse_threshold_text("high")


def test_train_args_and_existing_model_folder_is_kept(tmp_path: Path) -> None:
    from iacseg.store import CorrectionStore

    store = CorrectionStore.init(tmp_path / "store").root
    params = TrainParameters("segmenter", store, tmp_path / "new-model", init="unet-demo", epochs=3)
    params.validate()
    assert params.as_arg_list() == ["train", "segmenter", "--from-store", str(store), "-o",
                                    str(tmp_path / "new-model"), "--progress", "jsonl", "--device", "auto",
                                    "--init", "unet-demo", "--epochs", "3"]
    with pytest.raises(ParameterError, match="already exists"):
        TrainParameters("segmenter", store, store).validate()
    with pytest.raises(ParameterError, match="not a corrections store"):
        TrainParameters("landmarks", tmp_path, tmp_path / "m").validate()
    assert engine_command("py", ["models"]) == ["py", "-m", "iacseg", "models"]
