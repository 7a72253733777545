"""Every engine output loaded by Slicer's own readers (slicer-core: storage nodes and module logic, no stand-in).

Three cases: the tiny fake case with known answers (``fake_outputs``), and the engine's real output on a small
phantom CT, axial and oblique (the same voxels with a rotated direction and another origin). For each:
``calcifications.seg.nrrd`` → 8 segments named, coloured and coded as the contract says, on the CT's grid and
voxel for voxel equal to ``calcifications.nii.gz``; ``calcifications.nii.gz`` → a label map volume on the CT's
grid; ``landmarks.mrk.json`` → 6 points at the report's positions; the files Slicer writes back (batch) reload equal.
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
from slicercore_env import slicer_env  # noqa: E402,F401 — fixture
from iacseg.core.contracts import (LABELS_FILE, LANDMARKS, LANDMARKS_FILE, REPORT_JSON, SEGMENT_COLORS,
    SEGMENTATION_FILE, SEGMENTS)
from iacseg.outputs import terminology  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@pytest.fixture(scope="module", params=["fake", "phantom", "oblique"])
def case(request, tmp_path_factory) -> tuple[Path, Path]:
    """(CT file, engine output folder)."""
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "fake":
        return fake.write_fake_ct(root / "ct.nii.gz"), fake.write_fake_output(root / "result")
    ct = engine_cases.phantom_ct(root / "truth")
    if request.param == "oblique":
        ct = engine_cases.oblique_copy(ct, root / "oblique.nrrd")
    return ct, engine_cases.segment(ct, root / "result")


def ijk_to_ras(volume) -> np.ndarray:
    import slicer
    import vtk

    m = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(m)
    return slicer.util.arrayFromVTKMatrix(m)


def engine_labels(folder: Path) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(folder / LABELS_FILE)))


def itk_ijk_to_ras(path: Path) -> np.ndarray:
    """The engine's (ITK's) geometry of an image file as Slicer's IJK→RAS matrix."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    m = np.eye(4)
    m[:3, :3] = np.array(reader.GetDirection()).reshape(3, 3) @ np.diag(reader.GetSpacing())
    m[:3, 3] = reader.GetOrigin()
    return LPS_TO_RAS @ m


def test_slicer_reads_the_ct_on_the_engines_grid(slicer_env, case) -> None:
    import slicer

    ct, _ = case
    volume = slicer.util.loadVolume(str(ct))
    np.testing.assert_allclose(ijk_to_ras(volume), itk_ijk_to_ras(ct), atol=1e-4)


def test_segmentation_names_colours_and_terminology(slicer_env, case) -> None:
    import slicer
    import vtk

    _, folder = case
    node = slicer.util.loadSegmentation(str(folder / SEGMENTATION_FILE))
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 8
    assert [segmentation.GetNthSegmentID(i) for i in range(8)] == [SEGMENTS[v] for v in range(1, 9)]
    assert node.GetSegmentation().GetSourceRepresentationName() == "Binary labelmap"
    terms = slicer_env.logics["Terminologies"]
    assert terms.LoadTerminologyFromFile(str(REPO / "Resources" / terminology.TERMINOLOGY_FILE)) == \
        terminology.CONTEXT_NAME
    for value, name in sorted(SEGMENTS.items()):
        segment = segmentation.GetSegment(name)
        assert segment.GetName() == name
        assert segment.GetColor() == pytest.approx(SEGMENT_COLORS[value], abs=1e-6)
        text = vtk.mutable("")
        assert segment.GetTag("TerminologyEntry", text)
        entry = slicer.vtkSlicerTerminologyEntry()
        assert terms.DeserializeTerminologyEntry(str(text), entry)
        side = name.split("_", 1)[0]
        assert entry.GetTerminologyContextName() == terminology.CONTEXT_NAME
        assert entry.GetCategoryObject().GetCodeValue() == terminology.CATEGORY[1]
        assert entry.GetTypeObject().GetCodeValue() == terminology.TYPE[1]
        assert (entry.GetTypeModifierObject().GetCodingSchemeDesignator(),
                entry.GetTypeModifierObject().GetCodeValue()) == (terminology.PRIVATE_SCHEME, name)
        assert entry.GetRegionObject().GetCodeValue() == terminology.ANATOMIC_REGION[1]
        assert entry.GetRegionModifierObject().GetCodeMeaning() == terminology.LATERALITY[side][2]
        # the shipped terminology file knows this entry: Slicer finds its label and recommended colour there
        assert terms.UpdateEntryFromLoadedTerminologies(entry, [], [])
        assert entry.GetTypeModifierObject().GetSlicerLabel() == name
        assert tuple(entry.GetTypeModifierObject().GetRecommendedDisplayRGBValue()) == terminology.rgb255(value)


def test_segments_are_on_the_ct_grid_and_equal_the_label_map_voxel_for_voxel(slicer_env, case) -> None:
    import slicer
    import vtk

    ct, folder = case
    volume = slicer.util.loadVolume(str(ct))
    node = slicer.util.loadSegmentation(str(folder / SEGMENTATION_FILE))
    labels = engine_labels(folder)
    assert labels.shape == slicer.util.arrayFromVolume(volume).shape
    assert (labels > 0).any()
    segmentation = node.GetSegmentation()
    for value, name in sorted(SEGMENTS.items()):
        labelmap = segmentation.GetSegment(name).GetRepresentation("Binary labelmap")
        m = vtk.vtkMatrix4x4()
        labelmap.GetImageToWorldMatrix(m)
        np.testing.assert_allclose(slicer.util.arrayFromVTKMatrix(m), ijk_to_ras(volume), atol=1e-4)
        array = slicer.util.arrayFromSegmentBinaryLabelmap(node, name, volume)
        assert array.shape == labels.shape
        np.testing.assert_array_equal(array > 0, labels == value, err_msg=name)


def test_label_map_loads_as_a_label_volume_on_the_ct_grid(slicer_env, case) -> None:
    import slicer

    ct, folder = case
    volume = slicer.util.loadVolume(str(ct))
    label_volume = slicer.util.loadLabelVolume(str(folder / LABELS_FILE))
    assert label_volume.IsA("vtkMRMLLabelMapVolumeNode")
    np.testing.assert_allclose(ijk_to_ras(label_volume), ijk_to_ras(volume), atol=1e-4)
    array = slicer.util.arrayFromVolume(label_volume)
    np.testing.assert_array_equal(array, engine_labels(folder))
    assert set(np.unique(array).tolist()) <= set(range(9))


def test_landmarks_load_at_the_reports_positions(slicer_env, case) -> None:
    import slicer

    _, folder = case
    node = slicer.util.loadMarkups(str(folder / LANDMARKS_FILE))
    report = json.loads((folder / REPORT_JSON).read_text())
    assert node.IsA("vtkMRMLMarkupsFiducialNode")
    assert [node.GetNthControlPointLabel(i) for i in range(node.GetNumberOfControlPoints())] == list(LANDMARKS)
    for i, name in enumerate(LANDMARKS):
        ras = np.zeros(3)
        node.GetNthControlPointPositionWorld(i, ras)
        x, y, z = report["landmarks"][name]["position"]  # LPS mm
        np.testing.assert_allclose(ras, (-x, -y, z), atol=1e-4, err_msg=name)


def test_files_slicer_writes_reload_equal(slicer_env, case, tmp_path) -> None:
    """What the batch saves beside the engine's files (``slicer_*.seg.nrrd``/``.mrk.json``) reads back the same."""
    import slicer
    from IACSegLib import scene

    ct, folder = case
    volume = slicer.util.loadVolume(str(ct))
    segmentation = slicer.util.loadSegmentation(str(folder / SEGMENTATION_FILE))
    markups = slicer.util.loadMarkups(str(folder / LANDMARKS_FILE))
    seg_path, mrk_path = scene.save_slicer_files(segmentation, markups, tmp_path)
    slicer_env.new_scene()
    volume = slicer.util.loadVolume(str(ct))
    again = slicer.util.loadSegmentation(str(seg_path))
    labels = engine_labels(folder)
    for value, name in sorted(SEGMENTS.items()):
        assert again.GetSegmentation().GetSegment(name).GetColor() == pytest.approx(SEGMENT_COLORS[value], abs=1e-6)
        np.testing.assert_array_equal(slicer.util.arrayFromSegmentBinaryLabelmap(again, name, volume) > 0,
                                      labels == value, err_msg=name)
    points = slicer.util.loadMarkups(str(mrk_path))
    report = json.loads((folder / REPORT_JSON).read_text())
    for i, name in enumerate(LANDMARKS):
        assert points.GetNthControlPointLabel(i) == name
        x, y, z = report["landmarks"][name]["position"]
        np.testing.assert_allclose(points.GetNthControlPointPositionWorld(i), (-x, -y, z), atol=1e-4)
