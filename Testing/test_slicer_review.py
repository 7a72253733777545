"""Reader corrections: landmark moves re-map exactly the expected voxels; lesion edits; saved corrections."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

MODULE = Path(__file__).resolve().parents[1] / "IACSegModule"
sys.path[:0] = [str(MODULE), str(MODULE / "Testing")]

import fake_outputs as fake  # noqa: E402
from iacseg.core.contracts import SEGMENT_IDS  # noqa: E402
from iacseg.core.errors import InputError  # noqa: E402
from iacseg.outputs.markups import read_landmarks  # noqa: E402
from iacseg.store import CorrectionStore  # noqa: E402
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


def test_saves_go_to_the_store_as_new_versions_with_only_their_own_edits(session: ReviewSession,
                                                                         tmp_path: Path) -> None:
    output, ct = fake.write_fake_output(tmp_path / "result"), fake.write_fake_ct(tmp_path / "ct.nii.gz")
    store_root = tmp_path / "store"
    with pytest.raises(InputError, match="nothing new to save"):
        save_correction(store_root, session, image=ct, engine_output=output)
    assert not store_root.exists()  # a refused save creates nothing
    session.move_landmark("L_petrolingual", z_mm=7.5)
    first = save_correction(store_root, session, image=ct, engine_output=output)
    with pytest.raises(InputError, match="nothing new to save"):  # the same edits are not saved twice
        save_correction(store_root, session, image=ct, engine_output=output, case_id=first.case_id)
    session.move_landmark("L_petrolingual", z_mm=6.5)
    second = save_correction(store_root, session, image=ct, engine_output=output, case_id=first.case_id)
    assert (first.version, second.version, second.case_id) == (1, 2, first.case_id)
    store = CorrectionStore.open(store_root)
    assert [c.case_id for c in store.cases()] == [first.case_id]  # one case, two versions
    assert store.case(first.case_id).corrections == {"Dr A": [1, 2]}
    v1 = store.landmarks_path(first.case_id, ("Dr A", 1))
    assert read_landmarks(v1)["L_petrolingual"].z_mm == 7.5  # the earlier save is untouched
    assert read_landmarks(store.landmarks_path(first.case_id, "latest"))["L_petrolingual"].z_mm == 6.5
    assert read_landmarks(store.landmarks_path(first.case_id, "original"))["L_petrolingual"].z_mm == 10.0
    corrected = sitk.GetArrayFromImage(sitk.ReadImage(str(store.labels_path(first.case_id, "latest"))))
    np.testing.assert_array_equal(corrected, session.labels)
    moves = [e for e in store.ledger() if e["kind"] == "landmark_moved"]
    assert [(e["details"]["to_z_mm"], e["details"]["version"], e["reader"]) for e in moves] == [
        (7.5, 1, "Dr A"), (6.5, 2, "Dr A")]  # each save's ledger lines hold only its own edits
    assert store.verify().ok


def test_a_save_needs_a_reader_name_and_a_store_folder(session: ReviewSession, tmp_path: Path) -> None:
    output, ct = fake.write_fake_output(tmp_path / "result"), fake.write_fake_ct(tmp_path / "ct.nii.gz")
    session.move_landmark("L_petrolingual", z_mm=7.5)
    session.reader = " "
    with pytest.raises(InputError, match="reader name"):
        save_correction(tmp_path / "store", session, image=ct, engine_output=output)
    session.reader = "Dr B"
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("someone's files")
    with pytest.raises(InputError, match="not an IACSeg corrections store"):
        save_correction(tmp_path / "busy", session, image=ct, engine_output=output)
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["notes.txt"]
