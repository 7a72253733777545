"""Typed parameters of the engine commands the module runs, validated, and turned into ``iacseg`` CLI args.

The Slicer parameter node stores the user's choices; these dataclasses are what crosses the process
boundary: `SegmentParameters.as_arg_list()` is exactly the argument list of
``iacseg segment INPUT -o OUT …`` (docs/DESIGN.md, "Contracts"), `BatchParameters.as_arg_list()` that of
``iacseg batch INPUT -o OUT …``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

DEVICES = ("auto", "cpu", "cuda")
TRAIN_TARGETS = ("segmenter", "landmarks")
MAX_WORKERS = 64  # the engine's bound for --read-workers, --prefetch and --write-workers
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


class ParameterError(ValueError):
    """A parameter the user chose cannot be used; the message is one sentence saying what to change."""


def _check_device(device: str) -> None:
    if not _DEVICE_RE.match(device):
        raise ParameterError(f"device must be auto, cpu, cuda or cuda:N, not {device!r}")


def _check_model(value: str | None, what: str) -> None:
    if value is not None and not str(value).strip():
        raise ParameterError(f"the {what} is empty; pick a model or leave it unset for the bundled one")


@dataclass(frozen=True)
class SegmentParameters:
    """One ``iacseg segment`` run.

    ``input_path``: CT file (NIfTI/NRRD/MHA) or DICOM folder; ``output_dir``: folder the engine creates
    atomically; ``model`` / ``landmark_model``: a model folder or a name on the engine's search path (None =
    bundled demo model); ``device``: auto, cpu, cuda or cuda:N; ``threshold``: probability in (0, 1) or None
    for the model's calibrated threshold ("auto"); ``overwrite``: replace an existing output folder.
    """

    input_path: Path
    output_dir: Path
    model: str | None = None
    landmark_model: str | None = None
    device: str = "auto"
    threshold: float | None = None
    overwrite: bool = False

    def validate(self, check_paths: bool = True) -> None:
        """Raise `ParameterError` for a choice the engine would refuse (before any process is started)."""
        _check_device(self.device)
        _check_model(self.model, "calcification model")
        _check_model(self.landmark_model, "landmark model")
        _check_threshold(self.threshold)
        if check_paths and not Path(self.input_path).exists():
            raise ParameterError(f"the input CT {self.input_path} does not exist; choose a CT file or DICOM folder")
        out = Path(self.output_dir)
        if check_paths and out.is_file():
            raise ParameterError(f"the output path {out} is a file; choose a folder")

    def as_arg_list(self) -> list[str]:
        """``iacseg`` arguments (without the program): ``segment INPUT -o OUT --device D --threshold T …``."""
        self.validate(check_paths=False)
        args = ["segment", str(self.input_path), "-o", str(self.output_dir), "--progress", "jsonl",
                "--device", self.device, "--threshold", "auto" if self.threshold is None else repr(self.threshold)]
        if self.model:
            args += ["--model", str(self.model)]
        if self.landmark_model:
            args += ["--landmark-model", str(self.landmark_model)]
        if self.overwrite:
            args.append("--overwrite")
        return args


@dataclass(frozen=True)
class BatchParameters:
    """One ``iacseg batch INPUT -o OUT`` run (the headless batch): every case of ``input_path`` into
    ``output_dir/<case>/`` plus ``output_dir/summary.csv``, the models loaded once. Model, device, threshold and
    overwrite as in `SegmentParameters`; ``read_workers`` / ``prefetch`` / ``write_workers``: the engine's streaming
    (None = the engine's default)."""

    input_path: Path
    output_dir: Path
    model: str | None = None
    landmark_model: str | None = None
    device: str = "auto"
    threshold: float | None = None
    overwrite: bool = False
    read_workers: int | None = None
    prefetch: int | None = None
    write_workers: int | None = None

    def validate(self, check_paths: bool = True) -> None:
        SegmentParameters(self.input_path, self.output_dir, self.model, self.landmark_model, self.device,
                          self.threshold, self.overwrite).validate(check_paths)
        for name, low in (("read_workers", 0), ("prefetch", 1), ("write_workers", 0)):
            value = getattr(self, name)
            if value is not None and not low <= value <= MAX_WORKERS:
                raise ParameterError(f"{name.replace('_', ' ')} must be from {low} to {MAX_WORKERS}, not {value}")

    def as_arg_list(self) -> list[str]:
        """``iacseg`` arguments (without the program): ``batch INPUT -o OUT --progress jsonl --device D …``."""
        self.validate(check_paths=False)
        segment = SegmentParameters(self.input_path, self.output_dir, self.model, self.landmark_model, self.device,
                                    self.threshold, self.overwrite).as_arg_list()
        args = ["batch", *segment[1:]]
        for name in ("read_workers", "prefetch", "write_workers"):
            if getattr(self, name) is not None:
                args += [f"--{name.replace('_', '-')}", str(int(getattr(self, name)))]
        return args


@dataclass(frozen=True)
class TrainParameters:
    """One ``iacseg train segmenter|landmarks --from-store STORE -o MODELDIR [--init MODEL]`` run: fine-tune on the
    store's approved corrections (epochs None = engine default; init None = the current default model)."""

    target: str
    store_dir: Path
    model_dir: Path
    init: str | None = None
    epochs: int | None = None
    device: str = "auto"

    def validate(self, check_paths: bool = True) -> None:
        if self.target not in TRAIN_TARGETS:
            raise ParameterError(f"training target must be one of {', '.join(TRAIN_TARGETS)}, not {self.target!r}")
        _check_device(self.device)
        _check_model(self.init, "starting model")
        if self.epochs is not None and self.epochs < 1:
            raise ParameterError(f"epochs must be at least 1, not {self.epochs}")
        if check_paths and not (Path(self.store_dir) / "store.json").is_file():
            raise ParameterError(f"{self.store_dir} is not a corrections store; save and approve corrections first")
        if check_paths and Path(self.model_dir).exists():
            raise ParameterError(f"the model folder {self.model_dir} already exists; choose a new folder so the "
                                 f"previous model is kept")

    def as_arg_list(self) -> list[str]:
        self.validate(check_paths=False)
        args = ["train", self.target, "--from-store", str(self.store_dir), "-o", str(self.model_dir),
                "--progress", "jsonl", "--device", self.device]
        if self.init:
            args += ["--init", str(self.init)]
        if self.epochs is not None:
            args += ["--epochs", str(int(self.epochs))]
        return args


def _check_threshold(value: str | float | None) -> float | None:
    """The engine's own threshold rule (`iacseg.core.threshold.parse_threshold`: None/"auto" or a probability in
    (0, 1)), its refusal as a `ParameterError`. The engine is imported here, not at module level: this module is
    imported before the Slicer module has put a bundled engine on ``sys.path``."""
    from iacseg.core.errors import InputError
    from iacseg.core.threshold import parse_threshold

    try:
        return parse_threshold(value)
    except InputError as exc:
        raise ParameterError(str(exc)) from None


def parse_threshold_text(text: str) -> float | None:
    """Text of the threshold box → None for "auto"/empty (the model's calibrated threshold), else a probability in
    (0, 1); anything else is a `ParameterError`."""
    text = (text or "").strip()
    return None if not text else _check_threshold(text)


def engine_command(python_executable: str, args: Sequence[str]) -> list[str]:
    """The full command line running the engine: ``python -m iacseg ARGS``."""
    return [str(python_executable), "-m", "iacseg", *map(str, args)]
