"""Which segments a partial scan covers is judged where each segment lies: with a tilted gantry the scan's top
slopes from front to back, and the skull-base bone can say that a landmark lies outside the scan."""

from __future__ import annotations

import json

import numpy as np
import pytest

from iacseg.cli.main import main
from iacseg.core.anatomy import landmark_point
from iacseg.core.contracts import LANDMARKS, REPORT_JSON, SEGMENTS
from iacseg.core.grid import Grid
from iacseg.core.landmarks import Landmark
from iacseg.core.plane import MidsagittalPlane
from iacseg.io.volume import CTVolume
from iacseg.io.writers import write_image
from iacseg.phantom import make_phantom
from iacseg.quality import beyond_scan, case_coverage, quality_control

PLANE = MidsagittalPlane((0.0, 0.0, 0.0), (1.0, 0.0, 0.0))
HEIGHTS = {"carotid_canal": -20.0, "petrolingual": -8.0, "anterior_clinoid": 0.0}


def _tilted_scan(top_at_centre_mm: float, slope: float) -> CTVolume:
    """Head tissue (40 HU) up to a top that rises ``slope`` mm per mm towards the back (+y), air above: the last
    slices of a tilted gantry after tilt correction."""
    shape = (70, 120, 120)
    grid = Grid(shape, (1.0, 1.0, 1.0), (-60.0, -60.0, -40.0))
    z = grid.origin[2] + np.arange(shape[0])[:, None, None]
    y = grid.origin[1] + np.arange(shape[1])[None, :, None]
    hu = np.where(z <= top_at_centre_mm + slope * y, 40.0, -1000.0) * np.ones(shape)
    return CTVolume(hu.astype(np.float32), grid, {})


def _landmarks(at_plane_point: bool = False) -> dict[str, Landmark]:
    out = {}
    for name in LANDMARKS:
        z = HEIGHTS[name.split("_", 1)[1]]
        pos = (20.0 if name.startswith("L_") else -20.0, 0.0, z) if at_plane_point else landmark_point(PLANE, name, z)
        out[name] = Landmark(name, z, pos)
    return out


def test_a_tilted_scan_ending_in_front_below_the_clinoid_level_loses_the_supraclinoid_segments():
    vol = _tilted_scan(12.0, np.tan(np.radians(20.0)))  # 12 mm above the clinoids at the plane point, ~3 mm in front
    qc = quality_control(case_coverage(vol, _landmarks()), [])
    assert set(qc.not_assessable) == {"L_supraclinoid", "R_supraclinoid"}
    assert qc.status == "review" and qc.reasons[0].code == "incomplete_coverage"
    assert qc.fractions["L_cavernous"] == 1.0 and qc.fractions["R_petrous"] == 1.0
    # judged at the middle of the head, as before, the same scan looked complete
    assert quality_control(case_coverage(vol, _landmarks(at_plane_point=True)), []).not_assessable == []


def test_a_scan_that_reaches_well_above_the_clinoids_everywhere_is_complete():
    vol = _tilted_scan(40.0, np.tan(np.radians(20.0)))
    qc = quality_control(case_coverage(vol, _landmarks()), [])
    assert qc.status == "ok" and qc.not_assessable == [] and min(qc.fractions.values()) == 1.0


def test_landmarks_the_bone_puts_outside_the_scan_take_the_segments_they_bound_and_those_beyond():
    assert beyond_scan({"L_anterior_clinoid": "above"}) == ["L_cavernous", "L_supraclinoid"]
    assert beyond_scan({"R_carotid_canal": "below"}) == ["R_cervical", "R_petrous"]
    assert beyond_scan({"R_petrolingual": "above"}) == ["R_petrous", "R_cavernous", "R_supraclinoid"]
    below = {name: "below" for name in LANDMARKS}  # the scan starts above the skull base
    assert beyond_scan(below) == list(SEGMENTS.values())
    assert beyond_scan({}) == []


def test_segments_outside_the_scan_by_the_bone_are_not_assessable_even_when_the_heights_look_covered():
    vol = _tilted_scan(40.0, 0.0)
    beyond = beyond_scan({f"{s}_anterior_clinoid": "above" for s in "LR"})
    qc = quality_control(case_coverage(vol, _landmarks()), [], beyond)
    assert set(qc.not_assessable) == {f"{s}_{p}" for s in "LR" for p in ("cavernous", "supraclinoid")}
    assert qc.fractions["L_supraclinoid"] == 0.0 and qc.fractions["L_petrous"] == 1.0
    assert qc.coverage["L"]["outside_scan_by_bone"] == ["cavernous", "supraclinoid"]
    assert "L_cavernous" in qc.reasons[-1].message


@pytest.mark.slow
def test_a_tilted_scan_ending_between_the_petrolingual_ligaments_and_the_clinoids_loses_the_two_upper_segments(
        tmp_path):
    ph = make_phantom(86008, family="thick", truncate="top", matrix=256)  # 12° gantry tilt, 3 mm slices
    assert ph.truth["gantry_tilt_deg"] > 5.0
    ct = write_image(tmp_path / "ct.nii.gz", np.round(ph.ct.hu).astype(np.int16), ph.ct.grid)
    assert main(["segment", str(ct), "-o", str(tmp_path / "out"), "--progress", "none", "--device", "cpu"]) == 0
    report = json.loads((tmp_path / "out" / REPORT_JSON).read_text())
    cut = {f"{s}_{p}" for s in "LR" for p in ("cavernous", "supraclinoid")}  # the scan ends inside the cavernous ICA
    assert set(report["qc"]["not_assessable"]) == cut and report["qc"]["status"] == "review"
    for name in cut:
        assert report["segments"][name]["volume_mm3"] is None
    for name in ("L_cervical", "L_petrous", "R_cervical", "R_petrous"):
        assert report["segments"][name]["assessable"] is True and report["segments"][name]["volume_mm3"] is not None
