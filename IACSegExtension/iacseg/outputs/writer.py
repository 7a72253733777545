"""The output folder of one case (docs/DESIGN.md, "Contracts"), written atomically: all five files or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..core.contracts import (LABELS_FILE, LANDMARKS, LANDMARKS_FILE, REPORT_CSV, REPORT_JSON, SEGMENTATION_FILE,
    SEGMENTS)
from ..core.grid import Grid
from ..core.files import atomic_folder
from ..core.landmarks import Landmark
from .markups import write_landmarks
from .report import write_report
from ..core.folder_guard import check_replaceable, write_result_marker
from .segnrrd import write_segmentation_nrrd

OVERVIEW_FILE = "overview.png"


def labelled_volume_mm3(row: Mapping[str, Any]) -> Any:
    """Volume of a segment's labelled voxels from its report row: ``volume_mm3``, or for a segment that is not
    assessable (outside the scanned range, measures null) ``scanned_volume_mm3``."""
    if row.get("volume_mm3") is None and row.get("assessable") is False:
        return row.get("scanned_volume_mm3")
    return row.get("volume_mm3")


def check_report_volumes(labels: np.ndarray, grid: Grid, report: Mapping[str, Any]) -> None:
    """Raise ValueError unless the report's per-segment and total volumes equal the label map's exactly."""
    labels = np.asarray(labels)
    # count the labelled voxels only (a few thousand of ~40 M): the same counts, ~4× faster than a full bincount
    counts = np.bincount(labels[labels != 0].astype(np.int64, copy=False), minlength=max(SEGMENTS) + 1)
    voxel_mm3 = grid.voxel_volume_mm3
    for value, name in SEGMENTS.items():
        reported = labelled_volume_mm3(report["segments"][name])
        if reported != int(counts[value]) * voxel_mm3:
            raise ValueError(f"report volume of {name} ({reported} mm³) differs from the label map "
                             f"({int(counts[value]) * voxel_mm3} mm³); measure the labels being written")
    total = int(counts[1:].sum()) * voxel_mm3
    if report["total"]["volume_mm3"] != total:
        raise ValueError(f"report total volume {report['total']['volume_mm3']} mm³ differs from the label map "
                         f"({total} mm³)")


def write_case_outputs(out_dir: Path, *, labels: np.ndarray, grid: Grid, landmarks: dict[str, Landmark],
                       report: dict, overwrite: bool = False, hu: np.ndarray | None = None) -> Path:
    """Write the five contract files of one case into ``out_dir`` through a temporary sibling folder.

    ``labels``: uint8 ``[k, j, i]`` 0..8 on ``grid`` (LPS); ``landmarks``: the six `Landmark`s (LPS mm);
    ``report``: `build_report` output, whose volumes must match ``labels`` exactly. With ``hu`` (CT in HU on
    ``grid``) an ``overview.png`` is added; every result folder also gets the hidden marker
    `iacseg.core.folder_guard.RESULT_MARKER`. An existing non-empty ``out_dir`` is refused (`InputError`) unless
    ``overwrite`` and it holds a previous IACSeg result (`iacseg.core.folder_guard.check_replaceable`); on any
    failure nothing is left behind and a previous result is untouched.
    """
    out_dir = Path(out_dir)
    labels = np.asarray(labels)
    if tuple(labels.shape) != tuple(grid.shape):
        raise ValueError(f"labels shape {labels.shape} does not match grid shape {grid.shape}")
    labels = labels.astype(np.uint8, copy=False)
    check_report_volumes(labels, grid, report)
    check_replaceable(out_dir, overwrite)
    ordered = [landmarks[n] for n in LANDMARKS if n in landmarks] + \
              [lm for n, lm in landmarks.items() if n not in LANDMARKS]
    from ..io.writers import write_image

    with atomic_folder(out_dir, overwrite=overwrite) as tmp:
        write_image(tmp / LABELS_FILE, labels, grid)
        write_segmentation_nrrd(tmp / SEGMENTATION_FILE, labels, grid)
        write_landmarks(tmp / LANDMARKS_FILE, ordered)
        write_report(tmp, report, REPORT_JSON, REPORT_CSV)
        if hu is not None:
            from .overview import write_overview_png

            write_overview_png(tmp / OVERVIEW_FILE, hu, labels, grid, landmarks)
        write_result_marker(tmp)
        check_replaceable(out_dir, overwrite)  # again: the folder may have changed while the files were written
    return out_dir
