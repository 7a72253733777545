"""Progress reporting shared by every long-running command.

A `Progress` is a callable ``progress(stage, fraction, message="")``; the CLI turns it into a tqdm bar
for people or JSON lines ``{"stage": ..., "fraction": ..., "message": ...}`` for programs (the Slicer
module reads those). Library code never prints; it only calls the progress it was given.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def __call__(self, stage: str, fraction: float, message: str = "") -> None: ...


def no_progress(stage: str, fraction: float, message: str = "") -> None:
    """A `Progress` that ignores everything."""
