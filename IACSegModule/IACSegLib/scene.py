"""The Slicer scene side of the module (Slicer only): volumes out, result nodes in, landmark planes, jumps.

Coordinates: the engine works in LPS mm, Slicer's world is RAS mm (x and y change sign). Label arrays are
``[k, j, i]`` on the input volume's IJK grid, the same grid the engine read from the exported volume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

import slicer
from iacseg.errors import InputError
from iacseg.outputs.markups import Landmark

from .results import CaseResult, lps_to_ras, segment_infos

PLANE_SIZE_MM = 60.0


def export_volume(volume_node, folder: Path) -> Path:
    """Write the input volume as NRRD for the engine (LPS on disk); returns the file path."""
    path = Path(folder) / "ct.nrrd"
    if not slicer.util.saveNode(volume_node, str(path)):
        raise InputError(f"could not write the volume {volume_node.GetName()} to {path}; check the disk space")
    return path


def place_under_study(node, volume_node) -> None:
    """Put ``node`` in the subject hierarchy beside the input volume (under its study)."""
    sh = slicer.mrmlScene.GetSubjectHierarchyNode()
    parent = sh.GetItemParent(sh.GetItemByDataNode(volume_node))
    sh.SetItemParent(sh.GetItemByDataNode(node), parent)


def show_segmentation(result: CaseResult, volume_node):
    """Load ``calcifications.seg.nrrd``: 8 segments named and coloured by ICA segment, under the input's study."""
    volume_shape = slicer.util.arrayFromVolume(volume_node).shape
    if tuple(result.labels.shape) != tuple(volume_shape):
        raise InputError("the result is not on the input volume's grid; segment this volume again")
    node = slicer.util.loadSegmentation(str(result.segmentation_file))
    node.SetName(slicer.mrmlScene.GenerateUniqueName(f"{volume_node.GetName()} ICA calcification"))
    node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    segmentation = node.GetSegmentation()
    for info in segment_infos():
        segment_id = segmentation.GetSegmentIdBySegmentName(info.name)
        if segment_id:
            segment = segmentation.GetSegment(segment_id)
            segment.SetColor(*info.color)
    place_under_study(node, volume_node)
    return node


def update_segments(segmentation_node, volume_node, labels: np.ndarray, values: set[int]) -> None:
    """Copy the label map's ``values`` (1..8) into their segments (only the segments that changed)."""
    segmentation = segmentation_node.GetSegmentation()
    for info in segment_infos():
        if info.value in values:
            segment_id = segmentation.GetSegmentIdBySegmentName(info.name)
            slicer.util.updateSegmentBinaryLabelmapFromArray((labels == info.value).astype(np.uint8),
                                                            segmentation_node, segment_id, volume_node)


def painted_array(segmentation_node, segment_id: str, volume_node) -> np.ndarray:
    """A segment painted with the Segment Editor as a bool array ``[k, j, i]`` on the input volume's grid."""
    return slicer.util.arrayFromSegmentBinaryLabelmap(segmentation_node, segment_id, volume_node) > 0


def show_landmarks(result: CaseResult, volume_node):
    """Load ``landmarks.mrk.json`` (6 labelled points) under the input's study."""
    node = slicer.util.loadMarkups(str(result.landmarks_file))
    node.SetName(slicer.mrmlScene.GenerateUniqueName(f"{volume_node.GetName()} ICA landmarks"))
    place_under_study(node, volume_node)
    return node


def landmark_index(markups_node, name: str) -> int:
    for i in range(markups_node.GetNumberOfControlPoints()):
        if markups_node.GetNthControlPointLabel(i) == name:
            return i
    raise InputError(f"the landmark {name} is not in {markups_node.GetName()}; segment the volume again")


def landmark_lps(markups_node, name: str) -> tuple[float, float, float]:
    """World position of a landmark point, LPS mm."""
    ras = [0.0, 0.0, 0.0]
    markups_node.GetNthControlPointPositionWorld(landmark_index(markups_node, name), ras)
    return lps_to_ras(ras)  # the same sign flip converts RAS → LPS


def set_landmark_points(markups_node, landmarks: Mapping[str, Landmark]) -> None:
    """Move the points to the landmarks' positions (LPS mm)."""
    for name, lm in landmarks.items():
        x, y, z = lps_to_ras(lm.position)
        markups_node.SetNthControlPointPositionWorld(landmark_index(markups_node, name), x, y, z)


def landmark_planes(landmarks: Mapping[str, Landmark], volume_node, planes: dict | None = None) -> dict:
    """One locked markups plane per landmark: the axial plane at its height, seen as a line in the
    sagittal/coronal slice views. Existing ``planes`` (name → node) are moved; returns the dict."""
    planes = dict(planes or {})
    for name, lm in landmarks.items():
        node = planes.get(name)
        if node is None:
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsPlaneNode", f"{name} plane")
            node.CreateDefaultDisplayNodes()
            node.SetLocked(True)
            node.SetSize(PLANE_SIZE_MM, PLANE_SIZE_MM)
            node.GetDisplayNode().SetPropertiesLabelVisibility(False)
            place_under_study(node, volume_node)
            planes[name] = node
        x, y, z = lps_to_ras(lm.position)
        node.SetCenterWorld(x, y, z)
        node.SetNormalWorld(0.0, 0.0, 1.0)
    return planes


def jump_to(ras: tuple[float, float, float]) -> None:
    """Centre all slice views on a point (RAS mm), e.g. a lesion's centroid."""
    slicer.modules.markups.logic().JumpSlicesToLocation(ras[0], ras[1], ras[2], True)


def save_slicer_files(segmentation_node, markups_node, folder: Path) -> list[Path]:
    """Save the nodes with Slicer's own writers beside the engine outputs (``slicer_*`` files)."""
    paths = [Path(folder) / "slicer_calcifications.seg.nrrd", Path(folder) / "slicer_landmarks.mrk.json"]
    for node, path in zip((segmentation_node, markups_node), paths):
        if not slicer.util.saveNode(node, str(path)):
            raise OSError(f"Slicer could not save {node.GetName()} to {path}")
    return paths
