"""Review and correction on Slicer's own MRML (slicer-core): the module's logic and review panel on a real scene.

The result is shown by ``IACSegLogic.showResult`` (Slicer's readers load the engine's files); the panel is
``IACSegLib.review_panel.ReviewPanel`` with the .ui file's widgets played by ``slicer_stand_ins.FakeUI`` (Qt cannot run
here). Points are moved as Slicer moves them: a drag in a view is ``PointStartInteractionEvent``, point moves
(``PointModifiedEvent``), ``PointEndInteractionEvent``; the Markups module's control-point table and Python only
move the point (``PointModifiedEvent``).

Covers the review bugs of issue 12: the points of an earlier result editing the new review; slice boxes that
moved landmarks by half a slice on focus-out; points moved from the table or Python not seen; and a correction
that re-imported whole segments (about 0.5 s each at 512×512×300) and split the shared labelmap into layers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

MODULE = Path(__file__).resolve().parents[1] / "IACSegModule"
sys.path[:0] = [str(MODULE), str(MODULE / "Testing")]

import engine_cases  # noqa: E402
import fake_outputs as fake  # noqa: E402
import slicer_stand_ins as stand_ins  # noqa: E402
from slicercore_env import slicer_env  # noqa: E402,F401 — fixture
from iacseg.core.contracts import SEGMENT_IDS, SEGMENTS  # noqa: E402
from iacseg.core.errors import InputError  # noqa: E402
from iacseg.measure import measure_case  # noqa: E402
from iacseg.relabel import relabel_arrays  # noqa: E402

LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])


# -- the scene ----------------------------------------------------------------------------------------------------


def write_half_slice_output(folder: Path) -> Path:
    """The fake case with landmarks placed as the engine places them: each plane between two slices,
    z = z0 + (slice − 0.5)·sk, and ``slice`` in the report (L_petrolingual: z 9.5 mm, slice 10). Same labels."""
    from iacseg.measure import measure_case
    from iacseg.core.landmarks import Landmark
    from iacseg.outputs.report import build_report
    from iacseg.outputs.writer import write_case_outputs

    labels, hu = fake.labels_and_hu()
    landmarks = {}
    for name, lm in fake.landmarks().items():
        z = lm.z_mm - 0.5
        landmarks[name] = Landmark(name, z, (lm.position[0], lm.position[1], z), slice=lm.z_mm, confidence=0.9)
    report = build_report(measures=measure_case(labels, hu, fake.GRID), landmarks=landmarks, plane=fake.PLANE,
                          grid=fake.GRID, models={"segmenter": {"name": "fake", "version": "1", "sha256": "0" * 64}})
    np.testing.assert_array_equal(relabel_arrays(labels, fake.GRID, fake.PLANE, landmarks), labels)
    return write_case_outputs(Path(folder), labels=labels, grid=fake.GRID, landmarks=landmarks, report=report)


class Reader:
    """The module after Segment finished: the real ``IACSegLogic`` with the result shown in the scene, and the
    review panel on it; ``errors`` are the error dialogs the panel showed."""

    def __init__(self, env, ct: Path, monkeypatch) -> None:
        import slicer

        import IACSeg
        from IACSegLib.review_panel import ReviewPanel

        self.env, self.errors = env, []
        monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, *a, **k: self.errors.append(str(text)))
        self.volume = slicer.util.loadVolume(str(ct))
        self.logic = IACSeg.IACSegLogic()
        self.ui = stand_ins.FakeUI()
        self.panel = ReviewPanel(self.ui, self.logic, None)

    def show(self, folder: Path):
        """What Segment does when the engine finished: show the result, then the panel's onFinished."""
        self.logic.showResult(folder, self.volume)
        self.panel.onFinished(None)
        return self.logic.markupsNode

    @property
    def session(self):
        return self.logic.session

    @property
    def hu(self) -> np.ndarray:
        import slicer

        return slicer.util.arrayFromVolume(self.volume)

    def point_lps(self, node, name: str) -> np.ndarray:
        from IACSegLib.scene import landmark_lps

        return np.array(landmark_lps(node, name))

    def move_point(self, node, name: str, lps) -> None:
        """The control-point table or Python: the point moves (PointModifiedEvent), nothing else."""
        from IACSegLib.scene import landmark_index

        x, y, z = np.asarray(lps, float) * LPS_TO_RAS
        node.SetNthControlPointPositionWorld(landmark_index(node, name), x, y, z)

    def drag_point(self, node, name: str, path) -> None:
        """A drag in a slice view: start, the point moves along ``path`` (LPS), end."""
        import slicer

        node.InvokeEvent(slicer.vtkMRMLMarkupsNode.PointStartInteractionEvent)
        for lps in path:
            self.move_point(node, name, lps)
        node.InvokeEvent(slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent)

    def type_slice(self, name: str, value=None) -> None:
        """Type ``value`` into a landmark's slice box (None: only focus in and out), then editingFinished."""
        box = getattr(self.ui, f"{name}SpinBox")
        if value is not None:
            box.value = value
        box.slots["editingFinished()"]()

    # what Slicer shows
    def segment_voxels(self) -> dict[str, np.ndarray]:
        """Each segment's voxels as Slicer holds them (the shared labelmap read on the CT's grid): bool [k, j, i]."""
        import slicer

        node = self.logic.segmentationNode
        segmentation = node.GetSegmentation()
        out = {}
        for name in SEGMENTS.values():
            segment_id = segmentation.GetSegmentIdBySegmentName(name)
            out[name] = slicer.util.arrayFromSegmentBinaryLabelmap(node, segment_id, self.volume) > 0
        return out

    def layers(self) -> int:
        return self.logic.segmentationNode.GetSegmentation().GetNumberOfLayers()


def assert_segments_show(reader: Reader, labels: np.ndarray) -> None:
    """Every segment in the scene holds exactly the voxels of its label value in ``labels``."""
    for name, voxels in reader.segment_voxels().items():
        np.testing.assert_array_equal(voxels, labels == SEGMENT_IDS[name], err_msg=name)


@pytest.fixture
def reader(slicer_env, tmp_path, monkeypatch) -> Reader:
    ct = fake.write_fake_ct(tmp_path / "ct.nii.gz")
    return Reader(slicer_env, ct, monkeypatch)


# -- the points of an earlier result ----------------------------------------------------------------------------


def test_points_of_an_earlier_result_do_not_edit_the_new_review(reader: Reader, tmp_path: Path) -> None:
    old = reader.show(fake.write_fake_output(tmp_path / "first"))
    new = reader.show(fake.write_fake_output(tmp_path / "second"))
    assert old is not new and old.GetScene() is reader.env.scene  # the earlier result stays in the scene
    labels = reader.session.labels.copy()
    reader.drag_point(old, "L_petrolingual", [(20.0, 16.0, 8.0), (20.0, 16.0, 7.5)])
    reader.move_point(old, "R_petrolingual", (8.0, 16.0, 11.5))
    assert reader.session.edits == [] and not reader.errors
    assert reader.session.landmarks["L_petrolingual"].z_mm == 10.0
    np.testing.assert_array_equal(reader.session.labels, labels)
    np.testing.assert_allclose(reader.point_lps(new, "L_petrolingual"), (20.0, 16.0, 10.0))
    reader.drag_point(new, "L_petrolingual", [(20.0, 16.0, 7.5)])  # the new result's points still work
    assert [e.details["landmark"] for e in reader.session.edits] == ["L_petrolingual"]


# -- points moved without a drag --------------------------------------------------------------------------------


def test_a_point_moved_from_the_table_or_python_relabels_at_once(reader: Reader, tmp_path: Path) -> None:
    node = reader.show(fake.write_fake_output(tmp_path / "result"))
    reader.move_point(node, "L_petrolingual", (20.0, 16.0, 7.5))  # lesion A (z 6, 7, 8): z 8 → L_cavernous
    edit = reader.session.edits[-1].details
    assert (edit["landmark"], edit["to_z_mm"], edit["changed_voxels"]) == ("L_petrolingual", 7.5, 1)
    assert reader.session.landmarks["L_petrolingual"].position == (20.0, 16.0, 7.5)
    assert reader.session.labels[8, 10, 20] == SEGMENT_IDS["L_cavernous"]
    assert_segments_show(reader, reader.session.labels)
    assert reader.ui.measuresTable.row_cells()["L_cavernous"][0] == "1.0"  # the tables follow
    assert "1 voxel(s) relabelled" in reader.ui.progressLabel.text
    plane = reader.logic.planes["L_petrolingual"]
    centre = [0.0, 0.0, 0.0]
    plane.GetCenterWorld(centre)
    assert centre[2] == pytest.approx(7.5)


def test_a_drag_is_applied_once_when_it_ends(reader: Reader, tmp_path: Path) -> None:
    node = reader.show(fake.write_fake_output(tmp_path / "result"))
    reader.drag_point(node, "L_petrolingual", [(20.0, 16.0, z) for z in (9.5, 9.0, 8.5, 8.0, 7.5)])
    assert len(reader.session.edits) == 1 and reader.session.edits[0].details["to_z_mm"] == 7.5
    assert_segments_show(reader, reader.session.labels)


def test_an_out_of_order_point_is_refused_and_put_back(reader: Reader, tmp_path: Path) -> None:
    node = reader.show(fake.write_fake_output(tmp_path / "result"))
    reader.move_point(node, "L_carotid_canal", (20.0, 16.0, 12.0))  # above L_petrolingual (10)
    assert "out of order" in reader.errors[-1] and reader.session.edits == []
    np.testing.assert_allclose(reader.point_lps(node, "L_carotid_canal"), (20.0, 16.0, 5.0))  # shown as kept


def test_moving_a_point_in_plane_keeps_the_session_equal_to_the_display(reader: Reader, tmp_path: Path) -> None:
    node = reader.show(fake.write_fake_output(tmp_path / "result"))
    reader.move_point(node, "R_anterior_clinoid", (6.0, 18.0, 14.0))  # same height: no voxel changes
    assert reader.session.landmarks["R_anterior_clinoid"].position == (6.0, 18.0, 14.0)
    assert reader.session.edits[-1].details["changed_voxels"] == 0


# -- slice boxes ------------------------------------------------------------------------------------------------


def test_slice_boxes_show_the_report_slice_and_focus_out_changes_nothing(reader: Reader, tmp_path: Path) -> None:
    folder = write_half_slice_output(tmp_path / "result")
    node = reader.show(folder)
    report = json.loads((folder / "report.json").read_text())
    shown = {name: getattr(reader.ui, f"{name}SpinBox").value for name in reader.session.landmarks}
    assert shown == {name: int(report["landmarks"][name]["slice"]) for name in shown}  # e.g. R_petrolingual 9
    points = {name: reader.point_lps(node, name) for name in shown}
    for name in shown:  # the reader tabs through the six boxes
        reader.type_slice(name)
    assert reader.session.edits == [] and not reader.errors
    assert reader.session.landmarks["L_petrolingual"].z_mm == 9.5
    for name in shown:
        np.testing.assert_allclose(reader.point_lps(node, name), points[name])
    assert "9.50" in reader.ui.L_petrolingualSpinBox.toolTip  # the plane's exact slice position


def test_typing_another_slice_moves_the_landmark_to_that_slice(reader: Reader, tmp_path: Path) -> None:
    node = reader.show(write_half_slice_output(tmp_path / "result"))
    reader.type_slice("L_petrolingual", 8)  # lesion A (z 6, 7, 8): z 8 → L_cavernous
    assert reader.session.landmarks["L_petrolingual"].z_mm == 8.0 and len(reader.session.edits) == 1
    assert reader.session.labels[8, 10, 20] == SEGMENT_IDS["L_cavernous"]
    assert reader.ui.L_petrolingualSpinBox.value == 8
    assert reader.point_lps(node, "L_petrolingual")[2] == pytest.approx(8.0)
    assert_segments_show(reader, reader.session.labels)
    reader.type_slice("L_petrolingual")  # focus out again
    assert len(reader.session.edits) == 1


def test_a_refused_slice_puts_the_box_back(reader: Reader, tmp_path: Path) -> None:
    reader.show(write_half_slice_output(tmp_path / "result"))
    reader.type_slice("L_carotid_canal", 12)  # above the petrolingual ligament
    assert "out of order" in reader.errors[-1]
    assert reader.ui.L_carotid_canalSpinBox.value == 5 and reader.session.edits == []


# -- the segmentation: only the changed voxels, one layer ------------------------------------------------------


def test_corrections_write_only_changed_voxels_into_the_one_shared_labelmap(reader: Reader, tmp_path: Path,
                                                                            monkeypatch) -> None:
    import slicer

    reader.show(fake.write_fake_output(tmp_path / "result"))
    node = reader.logic.segmentationNode
    segmentation = node.GetSegmentation()
    assert reader.layers() == 1

    def whole_volume_import(*args, **kwargs):
        raise AssertionError("a correction imported a whole segment")

    monkeypatch.setattr(slicer.util, "updateSegmentBinaryLabelmapFromArray", whole_volume_import)
    segmentation.CreateRepresentation("Closed surface")  # what the 3D view shows
    surfaces = {n: segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(n)).GetRepresentation(
        "Closed surface") for n in SEGMENTS.values()}
    events = []
    node.AddObserver(slicer.vtkSegmentation.RepresentationModified, lambda caller, event: events.append(event))

    reader.logic.applyCorrection(lambda s: s.move_landmark("L_petrolingual", z_mm=7.5))
    assert reader.layers() == 1 and len(events) == 2  # L_petrous and L_cavernous
    assert_segments_show(reader, reader.session.labels)
    for name, surface in surfaces.items():  # the other segments keep their 3D surfaces
        kept = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(name)).GetRepresentation(
            "Closed surface") is surface
        assert kept == (name not in ("L_petrous", "L_cavernous")), name

    reader.logic.applyCorrection(lambda s: s.reassign_lesion(2, "R_supraclinoid"))
    assert reader.layers() == 1
    assert_segments_show(reader, reader.session.labels)
    reader.logic.applyCorrection(lambda s: s.delete_lesion(1))
    assert reader.layers() == 1 and not reader.segment_voxels()["L_petrous"].any()
    assert_segments_show(reader, reader.session.labels)
    painted = np.zeros(fake.GRID.shape, bool)
    painted[16:18, 5, 25] = True
    reader.logic.applyCorrection(lambda s: s.add_lesion(painted))
    assert reader.layers() == 1 and reader.segment_voxels()["L_supraclinoid"].sum() == 2
    assert_segments_show(reader, reader.session.labels)

    from iacseg.outputs.segnrrd import read_segmentation_labels

    saved = tmp_path / "saved.seg.nrrd"  # Slicer's writer sees the corrections, still one label map
    assert slicer.util.saveNode(node, str(saved))
    labels, _, segments = read_segmentation_labels(saved)  # refuses several layers
    for segment in segments:
        np.testing.assert_array_equal(labels == segment["labelValue"],
                                      reader.session.labels == SEGMENT_IDS[segment["name"]], err_msg=segment["name"])


@pytest.mark.parametrize("layer", ["shared", "own"])
def test_a_lesion_painted_in_the_missed_segment_is_added(reader: Reader, tmp_path: Path, layer: str) -> None:
    """The Segment Editor paints a new segment in the calcium's shared layer (AddEmptySegment puts it there; the
    paint may cover calcified voxels) or, imported, in a layer of its own."""
    import slicer

    reader.show(fake.write_fake_output(tmp_path / "result"))
    node = reader.logic.segmentationNode
    segmentation = node.GetSegmentation()
    missed = segmentation.AddEmptySegment("", "missed")
    painted = np.zeros(fake.GRID.shape, bool)
    painted[16:18, 5, 25] = True  # left, z 16-17: above the left clinoid (15) → supraclinoid
    if layer == "shared":
        painted[8, 10, 20] = True  # over a voxel of lesion A (L_petrous): the paint overwrites it
        assert reader.layers() == 1
        array = slicer.util.arrayFromSegmentInternalBinaryLabelmap(node, missed)
        array[painted] = segmentation.GetSegment(missed).GetLabelValue()
        segmentation.GetSegment(missed).Modified()  # as slicer.util.arrayFromSegmentInternalBinaryLabelmap says
        assert not reader.segment_voxels()["L_petrous"][8, 10, 20]
    else:
        slicer.util.updateSegmentBinaryLabelmapFromArray(painted.astype(np.uint8), node, missed, reader.volume)
    reader.panel.onAddPainted()
    assert not reader.errors and not segmentation.GetSegmentIdBySegmentName("missed")
    assert reader.session.edits[-1].kind == "lesion_added" and reader.layers() == 1
    assert_segments_show(reader, reader.session.labels)
    assert reader.segment_voxels()["L_supraclinoid"].sum() == 2
    assert reader.segment_voxels()["L_petrous"][8, 10, 20]  # painted over or not, still calcium (z 8 < 10: petrous)
    assert "3" in reader.ui.lesionTable.row_cells()  # the new lesion's row


def test_an_empty_missed_segment_is_refused_and_kept(reader: Reader, tmp_path: Path) -> None:
    reader.show(fake.write_fake_output(tmp_path / "result"))
    segmentation = reader.logic.segmentationNode.GetSegmentation()
    segmentation.AddEmptySegment("", "missed")
    reader.panel.onAddPainted()
    assert "empty" in reader.errors[-1] and segmentation.GetSegmentIdBySegmentName("missed")
    assert reader.session.edits == []


def test_a_lesion_added_outside_the_labelmap_grows_it(reader: Reader, tmp_path: Path) -> None:
    import vtk

    reader.show(fake.write_fake_output(tmp_path / "result"))
    segmentation = reader.logic.segmentationNode.GetSegmentation()
    labelmap = segmentation.GetNthSegment(0).GetRepresentation("Binary labelmap")
    crop = vtk.vtkImageConstantPad()  # the labelmap cut to the calcium's box, as an effective extent
    crop.SetInputData(labelmap)
    crop.SetOutputWholeExtent(8, 20, 10, 20, 6, 12)
    crop.Update()
    labelmap.ShallowCopy(crop.GetOutput())
    assert_segments_show(reader, reader.session.labels)
    painted = np.zeros(fake.GRID.shape, bool)
    painted[16:18, 5, 25] = True  # outside that box
    reader.logic.applyCorrection(lambda s: s.add_lesion(painted))
    assert labelmap.GetExtent() == (8, 25, 5, 20, 6, 17) and reader.layers() == 1
    assert_segments_show(reader, reader.session.labels)


def test_an_already_split_segmentation_is_merged_back_to_one_layer(reader: Reader, tmp_path: Path) -> None:
    reader.show(fake.write_fake_output(tmp_path / "result"))
    segmentation = reader.logic.segmentationNode.GetSegmentation()
    segmentation.SeparateSegmentLabelmap(segmentation.GetSegmentIdBySegmentName("L_petrous"))  # e.g. an editor
    assert reader.layers() == 2
    reader.logic.applyCorrection(lambda s: s.move_landmark("L_petrolingual", z_mm=7.5))
    assert reader.layers() == 1
    assert_segments_show(reader, reader.session.labels)


def test_a_correction_on_an_oblique_ct_updates_the_segments_exactly(slicer_env, tmp_path, monkeypatch) -> None:
    """The engine's real output on an oblique phantom CT (rotated axes, another origin)."""
    ct = engine_cases.oblique_copy(engine_cases.phantom_ct(tmp_path / "truth"), tmp_path / "oblique.nrrd")
    folder = engine_cases.segment(ct, tmp_path / "result")
    reader = Reader(slicer_env, ct, monkeypatch)
    reader.show(folder)
    session = reader.session
    assert session.labels.any(), "the phantom has calcifications"
    assert_segments_show(reader, session.labels)
    moved = 0
    for name in session.landmarks:
        for k in range(session.grid.shape[0]):
            try:
                moved = reader.logic.applyCorrection(lambda s, n=name, k=k: s.set_landmark_slice(n, k))
            except InputError:
                continue
            if moved:
                break
        if moved:
            break
    assert moved, "a landmark move relabelled calcified voxels"
    assert_segments_show(reader, session.labels)
    for lesion in range(1, session.lesion_count + 1):
        segment = session.lesion_segment(lesion)
        other = [n for n in SEGMENTS.values() if n != segment][0]
        reader.logic.applyCorrection(lambda s, n=lesion, o=other: s.reassign_lesion(n, o))
    reader.logic.applyCorrection(lambda s: s.delete_lesion(1))
    assert reader.layers() == 1
    assert_segments_show(reader, session.labels)


# -- the review session: sparse updates equal the engine's mapping ----------------------------------------------


def test_the_session_updates_equal_the_engines_whole_grid_mapping() -> None:
    from IACSegLib.review import ReviewSession

    labels, hu = fake.labels_and_hu()
    session = ReviewSession(labels, fake.GRID, fake.PLANE, fake.landmarks(), reader="Dr A")
    rng = np.random.default_rng(5)
    for _ in range(40):
        name = str(rng.choice(list(session.landmarks)))
        before = session.labels.copy()
        try:
            result = session.move_landmark(name, z_mm=float(rng.uniform(0, 19)))
        except InputError:
            np.testing.assert_array_equal(session.labels, before)
            continue
        expected = relabel_arrays(session.labels > 0, fake.GRID, fake.PLANE, session.landmarks)
        np.testing.assert_array_equal(session.labels, expected)
        change = session.last_change
        assert result.changed_voxels == change.count == int((before != expected).sum())
        np.testing.assert_array_equal(change.voxels, np.flatnonzero(before != expected))
        np.testing.assert_array_equal(change.before, before.reshape(-1)[change.voxels])
        np.testing.assert_array_equal(change.after, expected.reshape(-1)[change.voxels])
    full = measure_case(session.labels, hu, fake.GRID)
    cropped = session.measures(hu)
    assert cropped["segments"] == full["segments"] and cropped["total"] == full["total"]
    for a, b in zip(cropped["lesions"], full["lesions"]):
        assert a.pop("centroid_lps_mm") == pytest.approx(b.pop("centroid_lps_mm"), abs=1e-3) and a == b


def test_a_refused_lesion_edit_changes_nothing() -> None:
    from IACSegLib.review import ReviewSession

    labels, _ = fake.labels_and_hu()
    session = ReviewSession(labels, fake.GRID, fake.PLANE, fake.landmarks())
    session.delete_lesion(2)
    with pytest.raises(InputError, match="deleted already"):
        session.delete_lesion(2)
    with pytest.raises(InputError, match="was deleted"):
        session.reassign_lesion(2, "R_petrous")
    assert [e.kind for e in session.edits] == ["lesion_deleted"] and np.count_nonzero(session.labels) == 3
