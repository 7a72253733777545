"""train stage: fit the calcification segmenter and the landmark localiser; write safetensors model folders.

Entry points: `train_segmenter`, `train_landmarks` (the command line is ``iacseg train``). Import of this package
is light; the trainers are loaded on first use. Both run one loop (`iacseg.train.loop`: seeding, split, checkpoint
and resume, optimiser, AMP, validation, best weights, saving) with their own hooks. Under ``torchrun`` they train
with DDP (`iacseg.train.distributed`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["train_segmenter", "train_landmarks", "SEGMENTER_DEFAULTS", "LANDMARK_DEFAULTS"]


def __getattr__(name: str) -> Any:
    if name in ("train_segmenter", "SEGMENTER_DEFAULTS"):
        from . import segmenter

        return getattr(segmenter, name)
    if name in ("train_landmarks", "LANDMARK_DEFAULTS"):
        from . import landmarks

        return getattr(landmarks, name)
    raise AttributeError(name)
