"""Regression on a real head CT: the GE HiSpeed series of `neurolabusc/dcm_qa_ct` (Testing/data/dcm_qa_ct_GE, BSD
licence): 18.5° gantry tilt, 4 mm then 7 mm slices, padding −1500. No labels exist, so the checks are what a reader
would check: it runs end to end, every file is written, the landmarks are in order on each side and lie in the
skull base, and the result carries a quality-control status.

The skull-base range was read off the images by eye (axial slices of the tilt-corrected volume, LPS z): the
foramen magnum is at z ≈ −31 to −27 mm and the top of the dorsum sellae / clinoid processes at z ≈ +10 mm; one
4 mm slice of tolerance each way.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from iacseg.cli.main import main
from iacseg.core.contracts import LABELS_FILE, LANDMARKS, LANDMARKS_FILE, REPORT_CSV, REPORT_JSON, SEGMENTATION_FILE
from iacseg.io import read_ct
from iacseg.mapping import check_landmark_order
from iacseg.outputs.markups import read_landmarks

GE = Path(__file__).parent / "data" / "dcm_qa_ct_GE"
SKULL_BASE_Z_MM = (-35.0, 14.0)


def test_the_ge_series_is_read_tilt_corrected_in_hounsfield_units():
    vol = read_ct(GE)
    assert vol.metadata["modality"] == "CT"
    assert abs(vol.metadata["gantry_tilt_deg"] - 18.5) < 0.5
    assert any("tilt" in c for c in vol.metadata["corrections"])
    assert vol.hu.min() >= -1100 and 1500 < vol.hu.max() < 4000  # padding −1500 mapped to air; dense bone kept
    normal = vol.grid.slice_normal
    assert abs(np.degrees(np.arccos(abs(normal[2]))) - 18.5) < 0.5


@pytest.fixture(scope="module")
def ge_result(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ge") / "result"
    assert main(["segment", str(GE), "-o", str(out), "--overview", "--progress", "none", "--device", "cpu"]) == 0
    return out


@pytest.mark.slow
def test_the_ge_series_runs_end_to_end_with_every_output(ge_result):
    for name in (LABELS_FILE, SEGMENTATION_FILE, LANDMARKS_FILE, REPORT_JSON, REPORT_CSV, "overview.png"):
        assert (ge_result / name).is_file(), name
    report = json.loads((ge_result / REPORT_JSON).read_text())
    assert report["qc"]["status"] in ("ok", "review", "unusable")
    assert all(isinstance(r["message"], str) and r["message"] for r in report["qc"]["reasons"])


@pytest.mark.slow
def test_the_ge_landmarks_are_ordered_on_each_side_and_lie_in_the_skull_base(ge_result):
    landmarks = read_landmarks(ge_result / LANDMARKS_FILE)
    check_landmark_order(landmarks)
    for name in LANDMARKS:
        assert SKULL_BASE_Z_MM[0] <= landmarks[name].z_mm <= SKULL_BASE_Z_MM[1], (name, landmarks[name].z_mm)
    for kind in ("carotid_canal", "petrolingual", "anterior_clinoid"):
        assert abs(landmarks[f"L_{kind}"].z_mm - landmarks[f"R_{kind}"].z_mm) <= 10.0
