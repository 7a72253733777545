"""The review panel as a reader sees it: the QC line above the measures, "not assessable" rows, and a landmark
correction that keeps the engine's QC (Qt and Slicer played by ``IACSegModule/Testing/slicer_stand_ins.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[1] / "IACSegModule"
sys.path[:0] = [str(MODULE), str(MODULE / "Testing")]

import fake_outputs as fake  # noqa: E402
import slicer_stand_ins as stand_ins  # noqa: E402
from IACSegLib.results import load_case_result  # noqa: E402

GREEN, ORANGE, RED, GREY = "color: #2e7d32", "color: #ef6c00", "color: #c62828", "color: #757575"


@pytest.fixture
def open_panel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``open_panel(qc)``: the panel right after Segment finished on the fake case written with ``qc``."""
    widget = stand_ins.install(monkeypatch)

    def open_(qc=None, name="result"):
        result = load_case_result(fake.write_fake_output(tmp_path / name, qc=qc))
        panel = widget.ReviewPanel(stand_ins.FakeUI(), stand_ins.FakeLogic(result, fake.labels_and_hu()[1]), None)
        panel.onFinished(None)
        return panel

    return open_


@pytest.mark.parametrize("status, reasons, words, colour", [
    ("ok", [], "QC ok: no problem found", GREEN),
    ("review", [fake.LOW_CONFIDENCE], "QC review: check this case before using its measures", ORANGE),
    ("unusable", [fake.SHORT_SCAN, fake.LOW_CONFIDENCE], "QC unusable: do not use these measures", RED),
])
def test_qc_line_shows_status_in_words_and_colour_with_reasons(open_panel, status, reasons, words, colour) -> None:
    ui = open_panel(fake.qc_block(status, reasons)).ui
    lines = ui.qcLabel.text.split("\n")
    assert lines[0] == words and ui.qcLabel.styleSheet == colour
    assert lines[1:] == [f"• {r['message']}" for r in reasons]
    assert all(f"{r['severity']} ({r['code']})" in ui.qcLabel.toolTip for r in reasons)
    assert ui.progressLabel.text == "Done"


def test_not_assessable_segments_read_not_assessable_never_zero(open_panel) -> None:
    ui = open_panel(fake.qc_block("review", [], fake.CERVICAL)).ui
    rows = ui.measuresTable.row_cells()
    for name in fake.CERVICAL:
        assert rows[name][0] == "not assessable" and "0" not in "".join(rows[name])
    assert rows["L_petrous"][0] == "3.0" and rows["L_cavernous"][0] == "0.0"  # assessable and empty: a real 0
    assert rows["total (incomplete)"][0] == "5.0" and "total" not in rows
    assert "not assessable (outside the scanned range): L_cervical, R_cervical" in ui.qcLabel.toolTip


def test_an_old_result_without_qc_loads_and_says_so(open_panel) -> None:
    ui = open_panel(None).ui
    assert ui.qcLabel.text == "QC not reported (a result of an older IACSeg)" and ui.qcLabel.styleSheet == GREY
    rows = ui.measuresTable.row_cells()
    assert rows["L_cervical"][0] == "0.0" and rows["total"][0] == "5.0"
    assert len(ui.lesionTable.row_cells()) == 2


def test_a_landmark_correction_keeps_the_qc_line(open_panel) -> None:
    panel = open_panel(fake.qc_block("review", [fake.LOW_CONFIDENCE], fake.CERVICAL))
    ui = panel.ui
    ui.L_petrolingualSpinBox.value = 8  # lesion A (z 6, 7, 8): z 8 moves from L_petrous to L_cavernous
    ui.L_petrolingualSpinBox.slots["editingFinished()"]()
    assert "1 voxel(s) relabelled" in ui.progressLabel.text
    rows = ui.measuresTable.row_cells()
    assert rows["L_petrous"][0] == "2.0" and rows["L_cavernous"][0] == "1.0"  # the measures follow the correction
    assert rows["L_cervical"][0] == "not assessable" and "total (incomplete)" in rows  # still outside the scan
    assert ui.qcLabel.text.split("\n") == [
        "QC review: check this case before using its measures",
        "• automatic landmarks: L_petrolingual landmark confidence 0.31 is low; check its slice"]
    assert ui.qcLabel.styleSheet == ORANGE and "you moved landmarks since" in ui.qcLabel.toolTip


def test_a_refused_correction_leaves_the_qc_line_alone(open_panel) -> None:
    import slicer  # the stand-in

    panel = open_panel(fake.qc_block("ok"))
    panel.ui.L_carotid_canalSpinBox.value = 12  # above the petrolingual ligament: out of order
    panel.ui.L_carotid_canalSpinBox.slots["editingFinished()"]()
    assert "out of order" in slicer.errors[-1]
    assert panel.ui.qcLabel.text == "QC ok: no problem found" and panel.ui.qcLabel.styleSheet == GREEN
