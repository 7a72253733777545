"""Reader corrections: landmark moves re-map exactly the expected voxels; lesion edits; saved corrections."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

MODULE = Path(__file__).resolve().parents[1] / "IACSegModule"
sys.path[:0] = [str(MODULE), str(MODULE / "Testing")]

import fake_outputs as fake  # noqa: E402
from iacseg.contracts import SEGMENT_IDS  # noqa: E402
from iacseg.errors import InputError  # noqa: E402
from iacseg.outputs.markups import read_landmarks  # noqa: E402
from IACSegLib.corrections import CORRECTED_LABELS, CORRECTION_FILE, EDITS_FILE  # noqa: E402
from IACSegLib.review import ReviewSession, save_correction  # noqa: E402


@pytest.fixture
def session() -> ReviewSession:
    labels, _ = fake.labels_and_hu()
    return ReviewSession(labels, fake.GRID, fake.PLANE, fake.landmarks(), reader="Dr A",
                         clock=lambda: "2026-01-02T03:04:05+00:00")


def test_moving_a_landmark_relabels_exactly_the_voxels_it_passes(session: ReviewSession) -> None:
    before = session.labels.copy()
    result = session.move_landmark("L_petrolingual", z_mm=7.5)  # lesion A spans z = 6, 7, 8
    assert result.changed_voxels == 1
    changed = np.argwhere(session.labels != before)
    assert changed.tolist() == [[8, 10, 20]]
    assert session.labels[8, 10, 20] == SEGMENT_IDS["L_cavernous"]
    assert session.labels[11, 20, 8] == SEGMENT_IDS["R_cavernous"]  # the other side is untouched
    edit = session.edits[-1].to_dict()
    assert edit == {"kind": "landmark_moved", "reader": "Dr A", "time": "2026-01-02T03:04:05+00:00",
                    "landmark": "L_petrolingual", "from_z_mm": 10.0, "to_z_mm": 7.5, "from_slice": 10.0,
                    "to_slice": 7.5, "changed_voxels": 1}
    np.testing.assert_array_equal(session.original_labels, before)  # the original is kept for the record


def test_typing_a_slice_moves_the_plane_to_that_slice(session: ReviewSession) -> None:
    session.set_landmark_slice("R_petrolingual", 12)  # lesion B (z 11, 12): z 11 is now below the ligament
    assert session.labels[11, 20, 8] == SEGMENT_IDS["R_petrous"]
    assert session.labels[12, 20, 8] == SEGMENT_IDS["R_cavernous"]
    assert session.landmarks["R_petrolingual"].z_mm == 12.0


def test_out_of_order_landmarks_are_refused_and_nothing_changes(session: ReviewSession) -> None:
    before = session.labels.copy()
    with pytest.raises(InputError, match="out of order"):
        session.move_landmark("L_carotid_canal", z_mm=11.0)
    assert session.landmarks["L_carotid_canal"].z_mm == 5.0 and not session.edits
    np.testing.assert_array_equal(session.labels, before)
    with pytest.raises(InputError, match="outside this CT"):
        session.set_landmark_slice("L_carotid_canal", 40)


def test_reassigned_lesion_keeps_its_segment_after_landmark_moves(session: ReviewSession) -> None:
    session.reassign_lesion(2, "R_supraclinoid")
    assert set(session.labels.reshape(-1)[session.lesion_voxels(2)]) == {SEGMENT_IDS["R_supraclinoid"]}
    session.move_landmark("R_anterior_clinoid", z_mm=16.0)
    assert session.lesion_segment(2) == "R_supraclinoid"
    assert session.edits[0].details["from_segment"] == "R_cavernous"


def test_delete_and_add_lesions(session: ReviewSession) -> None:
    session.delete_lesion(1)
    assert np.count_nonzero(session.labels) == 2 and session.lesion_segment(1) is None
    painted = np.zeros(fake.GRID.shape, bool)
    painted[16:18, 5, 25] = True  # left, z 16-17: above the left clinoid (15) → supraclinoid
    new_id = session.add_lesion(painted)
    assert new_id == 3 and session.lesion_segment(3) == "L_supraclinoid"
    assert [e.kind for e in session.edits] == ["lesion_deleted", "lesion_added"]
    with pytest.raises(InputError, match="no lesion 7"):
        session.lesion_voxels(7)


def test_save_correction_writes_versions_and_never_overwrites(session: ReviewSession, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nothing to save"):
        save_correction(tmp_path, session, "case 1")
    session.move_landmark("L_petrolingual", z_mm=7.5)
    first = save_correction(tmp_path, session, "case 1", source="/results/case1")
    first_edits = (first / EDITS_FILE).read_text()
    session.move_landmark("L_petrolingual", z_mm=6.5)
    second = save_correction(tmp_path, session, "case 1")
    assert (first.name, second.name) == ("v001", "v002") and first.parent.name == "case_1"
    assert (first / EDITS_FILE).read_text() == first_edits  # the earlier save is untouched
    assert len((second / EDITS_FILE).read_text().splitlines()) == 2
    record = json.loads((second / CORRECTION_FILE).read_text())
    assert record["reader"] == "Dr A" and record["landmarks_z_mm"]["corrected"]["L_petrolingual"] == 6.5
    assert record["voxels_by_segment"]["corrected"]["L_cavernous"] == 2
    assert read_landmarks(second / "corrected_landmarks.mrk.json")["L_petrolingual"].z_mm == 6.5
    assert read_landmarks(second / "original_landmarks.mrk.json")["L_petrolingual"].z_mm == 10.0
    assert (second / CORRECTED_LABELS).is_file() and not list(first.parent.glob(".correction.*"))
    assert not any(p.name.startswith("ct") for p in second.iterdir())  # no image is copied


def test_a_taken_version_name_is_skipped(session: ReviewSession, tmp_path: Path) -> None:
    session.move_landmark("L_petrolingual", z_mm=7.5)
    (tmp_path / "c" / "v001").mkdir(parents=True)
    (tmp_path / "c" / "v001" / "other.txt").write_text("someone else's save")
    assert save_correction(tmp_path, session, "c").name == "v002"
    assert (tmp_path / "c" / "v001" / "other.txt").read_text() == "someone else's save"
