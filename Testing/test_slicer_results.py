"""Reading an engine output folder into the Slicer module's tables (no Slicer needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

MODULE = Path(__file__).resolve().parents[1] / "IACSegModule"
sys.path[:0] = [str(MODULE), str(MODULE / "Testing")]

import fake_outputs as fake  # noqa: E402
from iacseg.core.contracts import LANDMARKS, REPORT_JSON, SEGMENT_COLORS  # noqa: E402
from iacseg.core.errors import InputError  # noqa: E402
from IACSegLib.results import (QualityControl, carry_qc, landmark_slice, lesion_rows,  # noqa: E402
                               load_case_result, lps_to_ras, measure_rows, read_qc, segment_infos)


@pytest.fixture
def output(tmp_path: Path) -> Path:
    return fake.write_fake_output(tmp_path / "result")


def test_segments_named_and_coloured_left_red_right_blue() -> None:
    infos = segment_infos()
    assert [i.value for i in infos] == list(range(1, 9))
    assert infos[0].name == "L_cervical" and infos[0].description == "left cervical ICA calcification"
    assert infos[0].color == SEGMENT_COLORS[1]
    assert all(i.color[0] > i.color[2] for i in infos[:4]) and all(i.color[2] > i.color[0] for i in infos[4:])


def test_load_result_labels_landmarks_plane(output: Path) -> None:
    result = load_case_result(output)
    labels, _ = fake.labels_and_hu()
    np.testing.assert_array_equal(result.labels, labels)
    assert result.grid.same_geometry(fake.GRID)
    assert list(result.landmarks) == list(LANDMARKS)
    assert result.landmarks["R_petrolingual"].z_mm == 9.0 and result.landmarks["R_petrolingual"].confidence == 0.9
    assert result.plane.normal == (1.0, 0.0, 0.0)
    assert landmark_slice(result.grid, result.landmarks["L_anterior_clinoid"]) == 15


def test_measure_rows_have_the_known_volumes(output: Path) -> None:
    rows = {r.segment: r for r in measure_rows(load_case_result(output).report)}
    assert list(rows)[-1] == "total" and len(rows) == 9
    assert rows["L_petrous"].volume_mm3 == 3.0 and rows["R_cavernous"].volume_mm3 == 2.0
    assert rows["total"].lesion_count == 2 and rows["total"].peak_hu == 500.0
    assert rows["L_cervical"].cells()[-1] == ""  # no peak HU for an empty segment


def test_lesion_rows_largest_first_with_ras_centroids(output: Path) -> None:
    rows = lesion_rows(load_case_result(output).report)
    assert [(r.lesion_id, r.segment, r.volume_mm3) for r in rows] == [(1, "L_petrous", 3.0), (2, "R_cavernous", 2.0)]
    assert rows[0].centroid_lps == (20.0, 10.0, 7.0)
    assert rows[0].centroid_ras == (-20.0, -10.0, 7.0) == lps_to_ras((20, 10, 7))


def test_incomplete_folder_is_a_clear_error(output: Path) -> None:
    (output / REPORT_JSON).unlink()
    with pytest.raises(InputError, match="lacks report.json"):
        load_case_result(output)
    with pytest.raises(InputError, match="does not exist"):
        load_case_result(output / "missing")


def test_qc_block_is_read_with_its_reasons(tmp_path: Path) -> None:
    qc = fake.qc_block("review", [fake.LOW_CONFIDENCE], fake.CERVICAL)
    report = load_case_result(fake.write_fake_output(tmp_path / "r", qc=qc)).report
    read = read_qc(report)
    assert (read.status, read.not_assessable) == ("review", ("L_cervical", "R_cervical"))
    assert [(r.code, r.severity) for r in read.reasons] == [("low_landmark_confidence", "review")]
    assert read.text() == ("QC review: check this case before using its measures\n"
                           "• L_petrolingual landmark confidence 0.31 is low; check its slice")
    assert "automatic landmarks: L_petrolingual" in read.text(landmarks_moved=True)


def test_not_assessable_segments_show_words_never_zero(tmp_path: Path) -> None:
    qc = fake.qc_block("review", [], fake.CERVICAL)
    rows = {r.segment: r for r in measure_rows(load_case_result(fake.write_fake_output(tmp_path / "r", qc=qc)).report)}
    for name in fake.CERVICAL:
        assert not rows[name].assessable and rows[name].volume_mm3 is None
        cells = rows[name].cells()
        assert cells[1] == "not assessable" and not any(c.startswith("0") for c in cells)
    assert rows["L_petrous"].cells()[:2] == ["L_petrous", "3.0"]  # assessable segments keep their numbers
    assert rows["L_petrous"].cells() != rows["L_cervical"].cells()
    assert rows["total"].cells()[:2] == ["total (incomplete)", "5.0"]


def test_an_old_report_without_qc_still_loads(output: Path) -> None:
    report = load_case_result(output).report
    assert "qc" not in report and "assessable" not in report["segments"]["L_cervical"]
    assert read_qc(report) == QualityControl("unknown")
    assert read_qc(report).text() == "QC not reported (a result of an older IACSeg)"
    rows = measure_rows(report)
    assert all(r.assessable and r.complete for r in rows) and rows[0].cells()[1] == "0.0"


def test_relabel_measures_keep_the_engines_qc(tmp_path: Path) -> None:
    from iacseg.measure import measure_case

    qc = fake.qc_block("unusable", [fake.SHORT_SCAN], fake.CERVICAL)
    report = load_case_result(fake.write_fake_output(tmp_path / "r", qc=qc)).report
    labels, hu = fake.labels_and_hu()
    carried = carry_qc(measure_case(labels, hu, fake.GRID), report)
    assert carried["qc"] == report["qc"] and carried["total"]["complete"] is False
    assert [r.cells()[1] for r in measure_rows(carried)][:2] == ["not assessable", "3.0"]
