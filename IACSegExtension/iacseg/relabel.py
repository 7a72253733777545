"""Re-mapping a calcification mask after a reader corrected landmarks (`iacseg relabel`, Slicer correction).

Only the cheap mapping and the measures run again; the models do not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .core.plane import MidsagittalPlane
from .core.contracts import REPORT_JSON
from .core.errors import InputError
from .core.grid import Grid
from .core.landmarks import Landmark, landmark_heights
from .outputs.markups import read_landmarks
from .outputs.result_folder import read_label_map, read_report, report_plane

#: What a refusal of the mask's report tells the user to do.
REPORT_HINT = "pass the report.json written by iacseg segment"


#: how far (mm) beyond the scanned z-range a reader's landmark may lie (a clinoid above a scan's top edge)
LANDMARK_MARGIN_MM = 50.0


def check_landmark_heights(landmarks: dict[str, Landmark], grid: Grid, source: str | Path = "the landmarks") -> None:
    """Refuse a landmark whose position is not finite or whose height lies far outside the scanned volume."""
    corners = np.array([[i, j, k] for i in (0, grid.shape[2] - 1) for j in (0, grid.shape[1] - 1)
                        for k in (0, grid.shape[0] - 1)], float)
    z = grid.index_to_world(corners)[:, 2]
    low, high = float(z.min()) - LANDMARK_MARGIN_MM, float(z.max()) + LANDMARK_MARGIN_MM
    for name, lm in landmarks.items():
        values = [float(lm.z_mm), *(float(v) for v in lm.position)]
        if not np.all(np.isfinite(values)):
            raise InputError(f"landmark {name} in {source} has a position that is not a finite number; place it "
                             "again in Slicer and save the landmarks")
        if not low <= float(lm.z_mm) <= high:
            raise InputError(f"landmark {name} in {source} is at height z = {float(lm.z_mm):.4g} mm, outside the "
                             f"scanned volume (z {low + LANDMARK_MARGIN_MM:.1f} to {high - LANDMARK_MARGIN_MM:.1f} mm, "
                             f"±{LANDMARK_MARGIN_MM:g} mm allowed); place it on this CT and save the landmarks again")


def relabel_arrays(mask: np.ndarray, grid: Grid, plane: MidsagittalPlane,
                   landmarks: dict[str, Landmark]) -> np.ndarray:
    """Labels 0..8 for the non-zero voxels of ``mask`` under ``landmarks`` (checked for order first)."""
    from .mapping import check_landmark_order, segment_labels

    heights = landmark_heights(landmarks)
    check_landmark_order(heights)
    return segment_labels(mask > 0, grid, plane, heights)


#: QC reasons that describe the automatic landmarks or their coverage: replaced once a reader placed landmarks.
_LANDMARK_REASONS = ("low_landmark_confidence", "landmark_prior_disagreement", "landmark_from_prior",
                     "no_landmark_prior", "incomplete_coverage")


def reader_quality_control(vol: Any, landmarks: dict[str, Landmark], old_report: dict[str, Any]) -> Any:
    """QC after a reader's landmarks: the scan's reasons of the original report are kept (slices, contrast, head,
    symmetry); the coverage of each segment is recomputed under the reader's landmarks."""
    from .preprocess import to_axial_lps
    from .quality import Reason, case_coverage, quality_control

    axial = vol if vol.grid.is_axial_lps() else to_axial_lps(vol)
    kept = [Reason(str(r["code"]), str(r["severity"]), str(r["message"]))
            for r in (old_report.get("qc") or {}).get("reasons", [])
            if isinstance(r, dict) and r.get("code") not in _LANDMARK_REASONS]
    return quality_control(case_coverage(axial, landmarks), kept)


def relabel_case(mask_path: str | Path, landmarks_path: str | Path, out_dir: str | Path, *,
                 ct_path: str | Path | None = None, report_path: str | Path | None = None,
                 overwrite: bool = False) -> dict[str, Any]:
    """Write a new output folder with labels re-mapped under corrected landmarks; returns the new report."""
    from .io import read_ct
    from .measure import measure_case
    from .outputs import build_report, write_case_outputs
    from .core.folder_guard import FIXED_OUTPUT_BYTES, check_location, check_output_folder
    from .quality import apply_assessability

    report_path = Path(report_path) if report_path else Path(mask_path).with_name(REPORT_JSON)
    try:  # the new label files are about the mask's size each
        mask_bytes = Path(mask_path).stat().st_size
    except OSError:
        mask_bytes = 0
    # before anything is read: the output may not be an input's folder nor a user's folder, and must be writable
    check_output_folder(out_dir, inputs=[mask_path, landmarks_path, ct_path, report_path], overwrite=overwrite,
                        expected_bytes=4 * mask_bytes + FIXED_OUTPUT_BYTES)
    mask, grid = read_label_map(mask_path)
    landmarks = read_landmarks(landmarks_path)
    for lm in landmarks.values():
        lm.extra["source"] = "reader"
    old_report = read_report(report_path, REPORT_HINT)
    plane = report_plane(old_report, report_path, REPORT_HINT)
    check_landmark_heights(landmarks, grid, landmarks_path)
    labels = relabel_arrays(mask, grid, plane, landmarks)
    warnings: list[str] = []
    recorded_ct = old_report.get("input")
    if ct_path is None and isinstance(recorded_ct, str) and Path(recorded_ct).is_file():
        ct_path = recorded_ct
        check_location(out_dir, [ct_path])
    if ct_path is not None:
        vol = read_ct(ct_path, allow_gaps=True)  # the CT the mask was made from, already accepted by segment
        if not vol.grid.same_geometry(grid):
            raise InputError(f"the CT {ct_path} is not on the mask's grid; pass the CT the mask was made from")
        hu = vol.hu
        acquisition = vol.metadata
    else:
        raise InputError("relabel needs the CT for the HU-based measures and the original one was not found; "
                         "give the CT", parameter="ct")
    measures = measure_case(labels, hu, grid)
    qc = reader_quality_control(vol, landmarks, old_report)
    apply_assessability(measures, qc)
    models = {m.get("kind", str(n)): m for n, m in enumerate(old_report.get("models", []))}
    report = build_report(measures=measures, landmarks=landmarks, plane=plane, models=models, warnings=warnings,
                          acquisition=acquisition, grid=grid, input_path=ct_path,
                          extra={"threshold": old_report.get("threshold"), "qc": qc.to_dict(),
                                 "relabel": {"landmarks_file": str(landmarks_path), "mask_file": str(mask_path)}})
    write_case_outputs(Path(out_dir), labels=labels, grid=grid, landmarks=landmarks, report=report,
                       overwrite=overwrite)
    return report
