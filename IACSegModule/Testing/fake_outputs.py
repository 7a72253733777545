"""A tiny engine output folder with known answers, written with the engine's own writers (for the pytest tests).

Grid 20 × 32 × 32 voxels of 1 mm, axial LPS, origin 0: world (x, y, z) = (i, j, k) mm. Midsagittal plane at
x = 15.5 mm (normal +x → patient left), so i ≥ 16 is left. Landmarks (z mm): left canal 5, petrolingual 10,
clinoid 15; right 4, 9, 14. Lesion A: left, i=20 j=10, k=6,7,8 → L_petrous (3 voxels, 300 HU). Lesion B:
right, i=8 j=20, k=11,12 → R_cavernous (2 voxels, 500 HU).

``write_fake_output(folder, qc=...)`` adds a QC block (`qc_block`); its ``not_assessable`` segments (the fake
case's calcium is in neither cervical segment) get null numbers and the total is marked incomplete, as the
engine writes them. ``qc=None`` writes a report as an IACSeg older than QC did: no ``qc``, no ``assessable``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from iacseg.core.plane import MidsagittalPlane
from iacseg.core.contracts import LANDMARKS, SEGMENT_IDS
from iacseg.core.grid import Grid
from iacseg.core.landmarks import Landmark

GRID = Grid((20, 32, 32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
PLANE = MidsagittalPlane((15.5, 16.0, 10.0), (1.0, 0.0, 0.0), "test")
LANDMARK_Z = {"L_carotid_canal": 5.0, "L_petrolingual": 10.0, "L_anterior_clinoid": 15.0,
              "R_carotid_canal": 4.0, "R_petrolingual": 9.0, "R_anterior_clinoid": 14.0}
LESION_A = [(6, 10, 20), (7, 10, 20), (8, 10, 20)]  # (k, j, i)
LESION_B = [(11, 20, 8), (12, 20, 8)]


def landmarks() -> dict[str, Landmark]:
    out = {}
    for name in LANDMARKS:
        x = 20.0 if name.startswith("L_") else 8.0
        z = LANDMARK_Z[name]
        out[name] = Landmark(name, z, (x, 16.0, z), slice=z, confidence=0.9)
    return out


def labels_and_hu() -> tuple[np.ndarray, np.ndarray]:
    labels = np.zeros(GRID.shape, np.uint8)
    hu = np.zeros(GRID.shape, np.float32)
    for kji in LESION_A:
        labels[kji], hu[kji] = SEGMENT_IDS["L_petrous"], 300.0
    for kji in LESION_B:
        labels[kji], hu[kji] = SEGMENT_IDS["R_cavernous"], 500.0
    return labels, hu


LOW_CONFIDENCE = {"code": "low_landmark_confidence", "severity": "review",
                  "message": "L_petrolingual landmark confidence 0.31 is low; check its slice"}
SHORT_SCAN = {"code": "scan_range_too_short", "severity": "unusable",
                    "message": "the scan covers 20 mm only: most ICA segments are outside it"}
CERVICAL = ("L_cervical", "R_cervical")
_MEASURE_KEYS = ("volume_mm3", "agatston", "mass_mg", "lesion_count", "peak_hu", "mean_hu")


def qc_block(status: str = "ok", reasons: Iterable[Mapping[str, str]] = (),
             not_assessable: Iterable[str] = ()) -> dict[str, Any]:
    """A ``report.json`` QC block (the engine's contract)."""
    return {"status": status, "reasons": [dict(r) for r in reasons], "not_assessable": list(not_assessable)}


def _with_qc(report: dict[str, Any], qc: Mapping[str, Any] | None) -> dict[str, Any]:
    """The report with ``qc`` and per-segment assessability, or (``qc`` None) without either (an older report)."""
    report = {**report, "segments": {n: dict(v) for n, v in report["segments"].items()}, "total": dict(report["total"])}
    if qc is None:
        report.pop("qc", None)
        report["total"].pop("complete", None)
        for values in report["segments"].values():
            for key in ("assessable", "coverage_fraction", "scanned_volume_mm3"):
                values.pop(key, None)
        return report
    report["qc"] = dict(qc)
    for name, values in report["segments"].items():
        assessable = name not in qc["not_assessable"]
        values.update(assessable=assessable, coverage_fraction=1.0 if assessable else 0.0)
        if not assessable:
            values.update(dict.fromkeys(_MEASURE_KEYS), scanned_volume_mm3=0.0)
    report["total"]["complete"] = not qc["not_assessable"]
    return report


def write_fake_output(folder: Path, qc: Mapping[str, Any] | None = None) -> Path:
    """Write the five contract files of the fake case into ``folder`` (created), with ``qc`` (`qc_block`) or as
    an older IACSeg did (no QC)."""
    from iacseg.measure import measure_case
    from iacseg.outputs.report import build_report, write_report
    from iacseg.outputs.writer import write_case_outputs

    labels, hu = labels_and_hu()
    lms = landmarks()
    measures = measure_case(labels, hu, GRID)
    report = build_report(measures=measures, landmarks=lms, plane=PLANE, grid=GRID,
                          models={"segmenter": {"name": "fake", "version": "1", "sha256": "0" * 64}})
    folder = write_case_outputs(Path(folder), labels=labels, grid=GRID, landmarks=lms, report=report)
    write_report(folder, _with_qc(report, qc))  # after the writer's volume check: null numbers are not 0 mm³
    return folder


def write_fake_ct(path: Path) -> Path:
    """The fake case's CT (HU; air around the calcium) as a NIfTI file."""
    from iacseg.io.writers import write_image

    hu = labels_and_hu()[1]
    return write_image(path, np.where(hu > 0, hu, -1000.0).astype(np.float32), GRID)
