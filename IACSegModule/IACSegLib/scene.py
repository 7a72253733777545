"""The Slicer scene side of the module (Slicer only): volumes out, result nodes in, landmark planes, jumps.

Coordinates: the engine works in LPS mm, Slicer's world is RAS mm (x and y change sign). Label arrays are
``[k, j, i]`` on the input volume's IJK grid, the same grid the engine read from the exported volume.

A correction changes a few voxels; `write_label_change` writes only those into the segmentation's one shared
labelmap (the layer ``calcifications.seg.nrrd`` loads as) and tells Slicer which segments changed, as the
Segment Editor does: the 8 segments stay in one layer and the other segments are not touched.
`update_segments` (a whole-volume import per segment, which splits the layer) is only the fallback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

import slicer
from iacseg.core.errors import InputError
from iacseg.core.landmarks import Landmark

from .results import ResultView, lps_to_ras, segment_infos

PLANE_SIZE_MM = 60.0


def export_volume(volume_node, folder: Path) -> Path:
    """Write the input volume as NRRD for the engine (LPS on disk); returns the file path."""
    path = Path(folder) / "ct.nrrd"
    # exportNode writes a copy: the CT node keeps its own storage node (saveNode would re-point it to this
    # temporary file, so a scene saved later would refer to a file that disappears)
    if not slicer.util.exportNode(volume_node, str(path)):
        raise InputError(f"could not write the volume {volume_node.GetName()} to {path}; check the disk space")
    return path


def place_under_study(node, volume_node) -> None:
    """Put ``node`` in the subject hierarchy beside the input volume (under its study)."""
    sh = slicer.mrmlScene.GetSubjectHierarchyNode()
    parent = sh.GetItemParent(sh.GetItemByDataNode(volume_node))
    sh.SetItemParent(sh.GetItemByDataNode(node), parent)


def show_segmentation(result: ResultView, volume_node):
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
    """Copy the label map's ``values`` (1..8) into their segments with ``updateSegmentBinaryLabelmapFromArray``:
    a whole-volume import per segment (about 0.5 s each for 512×512×300) that moves each segment to its own
    layer. Only the fallback of `write_label_change` (a labelmap not on the volume's lattice)."""
    segmentation = segmentation_node.GetSegmentation()
    for info in segment_infos():
        if info.value in values:
            segment_id = segmentation.GetSegmentIdBySegmentName(info.name)
            slicer.util.updateSegmentBinaryLabelmapFromArray((labels == info.value).astype(np.uint8),
                                                            segmentation_node, segment_id, volume_node)


BINARY_LABELMAP = "Binary labelmap"


def _segment_ids_by_value(segmentation) -> dict[int, str]:
    """Label value of the engine (1..8) → segment ID, by segment name."""
    out = {}
    for info in segment_infos():
        segment_id = segmentation.GetSegmentIdBySegmentName(info.name)
        if not segment_id:
            raise InputError(f"the segment {info.name} was removed from the segmentation; segment the volume "
                             "again to review it")
        out[info.value] = segment_id
    return out


def _shared_labelmap(segmentation, segment_ids: dict[int, str]):
    """The one labelmap (vtkOrientedImageData) all 8 segments share; layers are merged first when a Segment
    Editor or an older IACSeg split them (``CollapseBinaryLabelmaps`` keeps overlapping segments apart)."""
    ids = list(segment_ids.values())

    def labelmaps():
        return {segmentation.GetSegment(i).GetRepresentation(BINARY_LABELMAP) for i in ids}

    if len(labelmaps()) > 1:
        segmentation.CollapseBinaryLabelmaps(False)
    found = labelmaps()
    return found.pop() if len(found) == 1 else None


def _volume_to_labelmap_offset(labelmap, segmentation_node, volume_node) -> np.ndarray | None:
    """Integer (i, j, k) offset from the volume's IJK to the labelmap's IJK, or None when their lattices differ
    (other spacing or axes, a sub-voxel shift, different parent transforms)."""
    import vtk

    if segmentation_node.GetTransformNodeID() != volume_node.GetTransformNodeID():
        return None
    image_to_world, ijk_to_ras = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
    labelmap.GetImageToWorldMatrix(image_to_world)
    volume_node.GetIJKToRASMatrix(ijk_to_ras)
    a = np.array([[image_to_world.GetElement(r, c) for c in range(4)] for r in range(4)])
    b = np.array([[ijk_to_ras.GetElement(r, c) for c in range(4)] for r in range(4)])
    volume_to_labelmap = np.linalg.solve(a, b)
    offset = np.rint(volume_to_labelmap[:3, 3])
    if not (np.allclose(volume_to_labelmap[:3, :3], np.eye(3), atol=1e-4)
            and np.allclose(volume_to_labelmap[:3, 3], offset, atol=1e-3)):
        return None
    return offset.astype(np.int64)


def _grow_extent(labelmap, extent) -> None:
    """Enlarge ``labelmap``'s extent to ``extent`` (i0, i1, j0, j1, k0, k1), padding with 0 (background)."""
    import vtk

    pad = vtk.vtkImageConstantPad()
    pad.SetInputData(labelmap)
    pad.SetOutputWholeExtent(*(int(e) for e in extent))  # padded with 0: background
    pad.Update()
    labelmap.ShallowCopy(pad.GetOutput())  # keeps the labelmap's axes (vtkOrientedImageData)


def write_label_change(segmentation_node, volume_node, change, labels: np.ndarray | None = None) -> list[str]:
    """Write a correction's changed voxels (`IACSegLib.review.LabelChange`: flat indices into the volume's
    ``[k, j, i]`` array, label values before/after) into the segmentation; returns the IDs of the segments that
    changed (only their display is updated; the others keep their derived representations).

    The voxels are written into the shared labelmap (grown when a painted lesion lies outside its extent);
    all 8 segments stay in one layer. ``labels`` (the whole corrected label map) is needed only for the fallback
    when the labelmap is not on the volume's lattice."""
    if change.count == 0:
        return []
    return write_labels(segmentation_node, volume_node, change.voxels, change.after, change.values, labels)


def write_labels(segmentation_node, volume_node, voxels: np.ndarray, values: np.ndarray, segments: set[int],
                 labels: np.ndarray | None = None) -> list[str]:
    """Set ``voxels`` (flat indices into the volume's ``[k, j, i]`` array) to the label ``values`` (0..8) in the
    segmentation's shared labelmap and tell Slicer that the segments of the label values ``segments`` changed;
    returns their IDs. ``labels``: the whole label map, for the fallback (see `write_label_change`)."""
    from vtk.util.numpy_support import vtk_to_numpy

    segmentation = segmentation_node.GetSegmentation()
    segment_ids = _segment_ids_by_value(segmentation)
    changed_ids = [segment_ids[v] for v in sorted(set(segments) - {0})]
    labelmap = None
    if segmentation.GetSourceRepresentationName() == BINARY_LABELMAP:
        labelmap = _shared_labelmap(segmentation, segment_ids)
    offset = None if labelmap is None else _volume_to_labelmap_offset(labelmap, segmentation_node, volume_node)
    if offset is None:  # not one layer on the volume's lattice: import the changed segments whole
        if labels is None:
            raise InputError("the segmentation is not on the CT's grid; segment this volume again")
        update_segments(segmentation_node, volume_node, labels, set(segments) - {0})
        segmentation.CollapseBinaryLabelmaps(False)
        return changed_ids

    values = np.asarray(values)
    shape = slicer.util.arrayFromVolume(volume_node).shape if labels is None else labels.shape
    k, j, i = np.unravel_index(np.asarray(voxels, np.int64), shape)
    ijk = np.stack([i, j, k], axis=1) + offset[None, :]
    lut = np.zeros(256, np.int64)
    for value, segment_id in segment_ids.items():
        lut[value] = segmentation.GetSegment(segment_id).GetLabelValue()
    new = lut[values]

    extent = list(labelmap.GetExtent())
    written = ijk[values > 0]
    if written.size:
        lo, hi = written.min(axis=0), written.max(axis=0)
        empty = extent[0] > extent[1] or extent[2] > extent[3] or extent[4] > extent[5]
        grown = [int(v) for a in range(3) for v in ((lo[a], hi[a]) if empty else
                                                     (min(extent[2 * a], lo[a]), max(extent[2 * a + 1], hi[a])))]
        if grown != extent:  # a painted lesion outside the labelmap (the engine's covers the whole CT)
            _grow_extent(labelmap, grown)
            extent = grown
    if new.size and int(new.max()) > 0:
        slicer.vtkOrientedImageDataResample.CastImageForValue(labelmap, int(new.max()))
    dims = [extent[2 * a + 1] - extent[2 * a] + 1 for a in range(3)]
    scalars = labelmap.GetPointData().GetScalars()
    array = vtk_to_numpy(scalars).reshape(dims[2], dims[1], dims[0])
    local = ijk - np.array([extent[0], extent[2], extent[4]])[None, :]
    inside = np.all((local >= 0) & (local < np.array(dims)[None, :]), axis=1)  # outside is 0 already
    array[local[inside, 2], local[inside, 1], local[inside, 0]] = new[inside]
    # The voxels' array is marked modified, not the labelmap object: the segmentation observes the labelmap's
    # ModifiedEvent and would drop the derived representations (3D surfaces) of all segments. Views see the new
    # voxels through the image's MTime (it includes its arrays').
    scalars.Modified()
    for segment_id in changed_ids:  # as vtkSegmentationModifier: only these segments' derived views are redone
        segmentation.GetSegment(segment_id).RemoveAllRepresentations(BINARY_LABELMAP)
        segmentation.InvokeEvent(slicer.vtkSegmentation.SourceRepresentationModified, segment_id)
        segmentation.InvokeEvent(slicer.vtkSegmentation.RepresentationModified, segment_id)
    return changed_ids


def painted_array(segmentation_node, segment_id: str, volume_node) -> np.ndarray:
    """A segment painted with the Segment Editor as a bool array ``[k, j, i]`` on the input volume's grid
    (exported through a whole-volume labelmap: about 0.8 s at 512×512×300; `painted_voxels` reads only the
    segment's own extent)."""
    return slicer.util.arrayFromSegmentBinaryLabelmap(segmentation_node, segment_id, volume_node) > 0


def painted_voxels(segmentation_node, segment_id: str, volume_node) -> np.ndarray:
    """The voxels of a segment painted with the Segment Editor: flat indices (ascending) into the input volume's
    ``[k, j, i]`` array, read from the segment's labelmap where it is on the volume's lattice (else exported)."""
    from vtk.util.numpy_support import vtk_to_numpy

    from iacseg.mapping.sparse import flat_nonzero

    segmentation = segmentation_node.GetSegmentation()
    segment = segmentation.GetSegment(segment_id)
    labelmap = None
    if segmentation.GetSourceRepresentationName() == BINARY_LABELMAP:
        labelmap = segment.GetRepresentation(BINARY_LABELMAP)
    offset = None if labelmap is None else _volume_to_labelmap_offset(labelmap, segmentation_node, volume_node)
    if offset is None:
        return flat_nonzero(painted_array(segmentation_node, segment_id, volume_node))
    shape = slicer.util.arrayFromVolume(volume_node).shape
    extent = labelmap.GetExtent()
    dims = [extent[2 * a + 1] - extent[2 * a] + 1 for a in range(3)]
    if min(dims) <= 0 or labelmap.GetPointData().GetScalars() is None:
        return np.zeros(0, np.int64)
    array = vtk_to_numpy(labelmap.GetPointData().GetScalars()).reshape(dims[2], dims[1], dims[0])
    k, j, i = np.unravel_index(flat_nonzero(array == segment.GetLabelValue()), array.shape)
    ijk = np.stack([i + extent[0], j + extent[2], k + extent[4]], axis=1) - offset[None, :]
    inside = np.all((ijk >= 0) & (ijk < np.array(shape[::-1])[None, :]), axis=1)
    ijk = ijk[inside]
    return np.sort(np.ravel_multi_index((ijk[:, 2], ijk[:, 1], ijk[:, 0]), shape)).astype(np.int64)


def remove_painted_segment(segmentation_node, segment_id: str, volume_node) -> None:
    """Remove a segment whose painted voxels were just rewritten with the calcium's labels (`write_labels`).

    In the calcium's shared layer, Slicer's ``RemoveSegment`` first separates the segment into a layer of its own
    (two passes over the whole labelmap, about 0.3 s at 512×512×300, and every segment's 3D surface redone);
    a segment with no voxel left there is given an empty labelmap of its own instead, then removed."""
    segmentation = segmentation_node.GetSegmentation()
    segment = segmentation.GetSegment(segment_id)
    labelmap = segment.GetRepresentation(BINARY_LABELMAP) if segment is not None else None
    offset = None if labelmap is None else _volume_to_labelmap_offset(labelmap, segmentation_node, volume_node)
    if offset is not None:
        shape = slicer.util.arrayFromVolume(volume_node).shape
        extent = np.array(labelmap.GetExtent()).reshape(3, 2) - offset[:, None]
        if np.all(extent[:, 0] >= 0) and np.all(extent[:, 1] < np.array(shape[::-1])):  # every voxel was rewritten
            segment.AddRepresentation(BINARY_LABELMAP, slicer.vtkOrientedImageData())
    segmentation.RemoveSegment(segment_id)


def show_landmarks(result: ResultView, volume_node):
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


def set_landmark_points(markups_node, landmarks: Mapping[str, Landmark]) -> list[str]:
    """Move the points to the landmarks' positions (LPS mm); only points that are elsewhere are moved (each move
    is a ``PointModifiedEvent``). Returns the names of the points moved."""
    moved = []
    for name, lm in landmarks.items():
        index = landmark_index(markups_node, name)
        ras = [0.0, 0.0, 0.0]
        markups_node.GetNthControlPointPositionWorld(index, ras)
        target = lps_to_ras(lm.position)
        if max(abs(a - b) for a, b in zip(ras, target)) > POSITION_TOLERANCE_MM:
            markups_node.SetNthControlPointPositionWorld(index, *target)
            moved.append(name)
    return moved


POSITION_TOLERANCE_MM = 1e-3  # a point this close to its landmark is where the review session has it


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


def apply_correction(session, correct, segmentation_node, volume_node, markups_node, planes: dict | None = None):
    """Run ``correct(session)`` (a `ReviewSession` method: landmark move, lesion reassign/delete/add), then bring the
    scene to the session: only the changed voxels of the changed segments (`write_label_change`), the points
    that moved, their planes. Returns ``(correct's result, planes)``; a refused correction (`InputError`) changes
    nothing."""
    result = correct(session)
    write_label_change(segmentation_node, volume_node, session.last_change, session.labels)
    set_landmark_points(markups_node, session.landmarks)
    return result, landmark_planes(session.landmarks, volume_node, planes)


def save_slicer_files(segmentation_node, markups_node, folder: Path) -> list[Path]:
    """Save the nodes with Slicer's own writers beside the engine outputs (``slicer_*`` files)."""
    paths = [Path(folder) / "slicer_calcifications.seg.nrrd", Path(folder) / "slicer_landmarks.mrk.json"]
    for node, path in zip((segmentation_node, markups_node), paths):
        if not slicer.util.saveNode(node, str(path)):
            raise OSError(f"Slicer could not save {node.GetName()} to {path}")
    return paths
