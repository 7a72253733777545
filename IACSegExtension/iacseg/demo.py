"""`iacseg demo`: a sample phantom segmented with the bundled demo models, a report and a PNG overview.

`run_demo` computes and returns a `DemoResult`; it prints nothing (the CLI's ``iacseg demo`` shows it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .core.contracts import PHANTOM_CT_FILE
from .core.progress import Progress, no_progress

#: The phantom seed of the demo (never used for training the shipped models).
DEMO_SEED = 90001


@dataclass
class DemoResult:
    """What `run_demo` made: the phantom, the result folder, its report and the scores against the truth."""

    phantom_dir: Path  # the folder of phantom case folders (``out/phantom``)
    case_dir: Path  # the phantom's case folder (CT and truth)
    result_dir: Path  # the segmentation's output folder (the contract files and ``overview.png``)
    report: dict[str, Any]
    scores: dict[str, Any]  # `iacseg.evaluate.evaluate_folders`'s summary against the phantom's truth
    made_phantom: bool  # False when the phantom was already there (a second run)

    @property
    def overview(self) -> Path:
        return self.result_dir / "overview.png"


def run_demo(out: str | Path, seed: int = DEMO_SEED, device: str = "auto", progress: Progress = no_progress,
             announce: Callable[[str], None] | None = None) -> DemoResult:
    """Make phantom ``seed`` under ``out/phantom`` (unless it is there), segment it into ``out/result`` (with
    ``overview.png``) and compare it with the phantom's truth.

    ``announce(step)`` is called with one sentence before each step (making the phantom, segmenting it), for a
    front end that tells the user what is happening; progress within a step goes to ``progress``."""
    from .evaluate import evaluate_folders
    from .phantom import generate_cases
    from .pipeline import SegmentOptions, segment_case

    announce = announce or (lambda step: None)
    out = Path(out)
    phantom_dir = out / "phantom"
    case = phantom_dir / f"phantom_{seed:05d}"
    made = not case.is_dir()
    if made:
        announce(f"Making sample phantom (seed {seed}) in {phantom_dir} …")
        generate_cases(phantom_dir, seed, 1, slice_mm=1.0, progress=progress)
    announce("Segmenting it with the bundled demo models …")
    result_dir = out / "result" / case.name
    options = SegmentOptions(device=device, overwrite=True, overview_png=True)
    result = segment_case(case / PHANTOM_CT_FILE, result_dir, options, progress=progress)
    scores = evaluate_folders(out / "result", phantom_dir)["summary"]
    return DemoResult(phantom_dir, case, result_dir, result.report, scores, made)
