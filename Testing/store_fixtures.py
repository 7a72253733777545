"""Cheap cases for the corrections-store tests: a CT plus an engine output folder (labels, landmarks, report)
made without running the models — the truth is written where ``iacseg segment`` would write its result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from iacseg.core.contracts import LABELS_FILE, LANDMARKS, LANDMARKS_FILE, REPORT_JSON
from iacseg.core.grid import Grid
from iacseg.io.writers import write_image
from iacseg.core.landmarks import Landmark
from iacseg.outputs.markups import write_landmarks

MODELS = [{"kind": "segmenter", "name": "unet-demo", "version": "1.1", "sha256": "ab" * 32},
          {"kind": "landmarks", "name": "dst-demo", "version": "1.0", "sha256": "cd" * 32}]
SMALL_GRID = Grid((12, 20, 20), (1.0, 1.0, 2.0), (-10.0, -10.0, 0.0))
HEIGHTS = {"carotid_canal": 4.0, "petrolingual": 9.0, "anterior_clinoid": 16.0}  # LPS z mm


def small_landmarks(shift_mm: float = 0.0) -> dict[str, Landmark]:
    """The six landmarks on `SMALL_GRID` (left at x = +5 mm, right at x = −5 mm), optionally shifted in z."""
    out = {}
    for name in LANDMARKS:
        side, kind = name.split("_", 1)
        z = HEIGHTS[kind] + shift_mm
        out[name] = Landmark(name, z, (5.0 if side == "L" else -5.0, 0.0, z), slice=z / 2.0, confidence=0.9)
    return out


def small_labels(seed: int = 0) -> np.ndarray:
    """A label map 0..8 on `SMALL_GRID` with a few calcified voxels."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(SMALL_GRID.shape, np.uint8)
    for value in (2, 4, 7):
        k, j, i = rng.integers(0, SMALL_GRID.shape)
        labels[k, j, i] = value
    return labels


def small_hu(seed: int = 0) -> np.ndarray:
    """HU on `SMALL_GRID`: air (−1000) around a block of soft tissue (~40 HU, noisy), whole numbers."""
    hu = np.full(SMALL_GRID.shape, -1000.0, np.float32)
    hu[2:-2, 4:-4, 4:-4] = np.rint(np.random.default_rng(seed).normal(40.0, 8.0, hu[2:-2, 4:-4, 4:-4].shape))
    return hu


def write_engine_output(out: Path, labels: np.ndarray, grid: Grid, landmarks: dict[str, Landmark],
                        *, input_path: str = "", warnings: list[str] | None = None,
                        acquisition: dict[str, Any] | None = None) -> Path:
    """What ``iacseg segment`` writes that the store reads: labels, landmarks and a report with models."""
    out.mkdir(parents=True, exist_ok=True)
    write_image(out / LABELS_FILE, labels.astype(np.uint8), grid)
    write_landmarks(out / LANDMARKS_FILE, [landmarks[n] for n in LANDMARKS])
    report = {"schema_version": 1, "input": input_path, "segments": {}, "total": {"volume_mm3": 0.0},
              "landmarks": {n: lm.to_dict() for n, lm in landmarks.items()}, "models": MODELS,
              "warnings": list(warnings or []), "acquisition": dict(acquisition or {}),
              "versions": {"iacseg": "0.1.0"}, "grid": grid.to_dict()}
    (out / REPORT_JSON).write_text(json.dumps(report, indent=2))
    return out


def small_case(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """``(ct.nii.gz, engine output folder)`` of a tiny synthetic case (12 × 20 × 20 voxels) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ct = write_image(folder / "ct.nii.gz", small_hu(seed).astype(np.int16), SMALL_GRID)
    out = write_engine_output(folder / "out", small_labels(seed), SMALL_GRID, small_landmarks(),
                              input_path=str(ct))
    return ct, out
