"""Reader review of one case: move landmarks (labels re-mapped in-process), reassign/delete/add lesions, record edits.

The calcified voxels are the non-zero voxels of the engine's label map ``[k, j, i]`` on its `Grid` (LPS).
Moving a landmark re-runs only the engine's mapping rule (`iacseg.mapping.voxel_segment_labels`, the rule of
`iacseg.relabel.relabel_arrays`) on the calcified voxels alone (their world positions are kept), never on the
whole grid; a lesion the reader reassigned keeps its segment through later landmark moves. Each correction
updates ``labels`` in place and says which voxels changed (`LabelChange`, ``last_change``), so that the Slicer
scene updates only those. Lesions are the 26-connected components of
the original mask, numbered like the engine's lesion table (raster order of their first voxel), so the ids of
``report.json`` select them. Every change is an `Edit` with reader name and UTC time.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import numpy as np
from scipy import ndimage

from iacseg.core.plane import MidsagittalPlane
from iacseg.core.contracts import SEGMENT_IDS, SEGMENTS
from iacseg.core.errors import InputError
from iacseg.core.grid import Grid
from iacseg.mapping import voxel_segment_labels
from iacseg.mapping.sparse import flat_nonzero
from iacseg.core.landmarks import Landmark

LANDMARK_MOVED = "landmark_moved"
LESION_REASSIGNED = "lesion_reassigned"
LESION_DELETED = "lesion_deleted"
LESION_ADDED = "lesion_added"
_FULL_26 = np.ones((3, 3, 3), dtype=bool)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Edit:
    """One reader action: ``kind`` (landmark_moved, lesion_reassigned, lesion_deleted, lesion_added), who, when
    (ISO 8601 UTC) and what (``details``: landmark name with from/to z mm and slice, or lesion id with segments)."""

    kind: str
    reader: str
    time: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "reader": self.reader, "time": self.time, **self.details}


@dataclass(frozen=True)
class LabelChange:
    """The voxels one correction changed: flat (C-order) indices into the label map ``[k, j, i]``, ascending,
    with their label before and after (uint8, 0 = not calcified)."""

    voxels: np.ndarray
    before: np.ndarray
    after: np.ndarray

    @property
    def count(self) -> int:
        return int(self.voxels.size)

    @property
    def values(self) -> set[int]:
        """The label values (1..8) whose voxels changed: the segments to update."""
        return (set(np.unique(self.before).tolist()) | set(np.unique(self.after).tolist())) - {0}

    @staticmethod
    def none() -> "LabelChange":
        return LabelChange(np.zeros(0, np.int64), np.zeros(0, np.uint8), np.zeros(0, np.uint8))


@dataclass(frozen=True)
class RelabelResult:
    """Effect of a correction: how many calcified voxels changed label, and the time it took (ms)."""

    changed_voxels: int
    milliseconds: float


def _copy_landmarks(landmarks: Mapping[str, Landmark]) -> dict[str, Landmark]:
    return {name: copy.deepcopy(lm) for name, lm in landmarks.items()}


class ReviewSession:
    """Corrections of one case (the state behind the module's review panel).

    ``labels``: the engine's label map (uint8 ``[k, j, i]``, 0..8) on ``grid``; ``plane``: the report's
    midsagittal plane; ``landmarks``: the six `Landmark`s (LPS mm); ``reader``: name stored with each edit.
    """

    def __init__(self, labels: np.ndarray, grid: Grid, plane: MidsagittalPlane, landmarks: Mapping[str, Landmark],
                 reader: str = "", clock: Callable[[], str] = utc_now) -> None:
        labels = np.ascontiguousarray(labels, dtype=np.uint8)
        if tuple(labels.shape) != tuple(grid.shape):
            raise ValueError(f"labels shape {labels.shape} does not match grid shape {grid.shape}")
        self.grid, self.plane, self.reader, self.clock = grid, plane, reader, clock
        self.original_labels = labels.copy()
        self.original_landmarks = _copy_landmarks(landmarks)
        self.landmarks = _copy_landmarks(landmarks)
        self.labels = labels.copy()  # updated in place by each correction
        self.edits: list[Edit] = []
        self.saved_edits = 0  # how many of ``edits`` are already in a saved correction
        self.last_change = LabelChange.none()  # the voxels the latest correction changed
        self._voxels = flat_nonzero(labels)  # flat indices of the calcified voxels, ascending
        self._xyz = self._world(self._voxels)  # their centres, world LPS mm (the mapping's input)
        self._lesion_ids: np.ndarray | None = None  # lesion id of each original calcified voxel
        self._original_voxels = self._voxels.copy()
        self._added: dict[int, np.ndarray] = {}  # lesion id → flat voxels painted by the reader
        self._deleted: set[int] = set()
        self._overrides: dict[int, int] = {}  # lesion id → label value chosen by the reader

    # -- lesions ----------------------------------------------------------------------------------------
    def _lesion_labels(self) -> np.ndarray:
        if self._lesion_ids is None:
            kji = np.stack(np.unravel_index(self._original_voxels, self.grid.shape), axis=1)
            if len(kji) == 0:
                self._lesion_ids = np.zeros(0, np.int64)
            else:
                lo, hi = kji.min(axis=0), kji.max(axis=0) + 1
                crop = self.original_labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] > 0
                components, _ = ndimage.label(crop, structure=_FULL_26)
                local = kji - lo
                self._lesion_ids = components[local[:, 0], local[:, 1], local[:, 2]].astype(np.int64)
        return self._lesion_ids

    @property
    def lesion_count(self) -> int:
        ids = self._lesion_labels()
        return (int(ids.max()) if ids.size else 0) + len(self._added)

    def lesion_voxels(self, lesion_id: int) -> np.ndarray:
        """Flat indices of a lesion's voxels (engine lesion id, or an id returned by `add_lesion`)."""
        if lesion_id in self._added:
            return self._added[lesion_id]
        ids = self._lesion_labels()
        voxels = self._original_voxels[ids == lesion_id]
        if voxels.size == 0:
            raise InputError(f"there is no lesion {lesion_id} in this case; pick a row of the lesion table")
        return voxels

    def lesion_segment(self, lesion_id: int) -> str | None:
        """Current majority segment of a lesion (None when deleted)."""
        if lesion_id in self._deleted:
            return None
        values = self.labels.reshape(-1)[self.lesion_voxels(lesion_id)]
        counts = np.bincount(values, minlength=max(SEGMENTS) + 1)[1:]
        return SEGMENTS[int(np.argmax(counts)) + 1] if counts.any() else None

    # -- the mapping step -------------------------------------------------------------------------------
    @property
    def mask(self) -> np.ndarray:
        """The calcified voxels now (bool ``[k, j, i]``; a new array)."""
        return self.labels > 0

    def _world(self, voxels: np.ndarray) -> np.ndarray:
        k, j, i = np.unravel_index(voxels, self.grid.shape)
        return self.grid.index_to_world(np.stack([i, j, k], axis=1))

    def _mapped(self, voxels: np.ndarray, xyz: np.ndarray) -> np.ndarray:
        """Labels of ``voxels`` (centres ``xyz``) from plane × landmarks, then the reader's lesion choices.

        Raises `InputError` (nothing changed yet) when the landmarks are out of order."""
        values = voxel_segment_labels(xyz, self.plane, self.landmarks)
        if voxels.size == 0:
            return values
        for lesion_id, value in self._overrides.items():
            lesion = self.lesion_voxels(lesion_id)
            rows = np.searchsorted(voxels, lesion).clip(max=voxels.size - 1)
            values[rows[voxels[rows] == lesion]] = value
        return values

    def _remap(self, voxels: np.ndarray | None = None) -> int:
        """Re-map the calcified voxels (``voxels``: the new set after a lesion was deleted or added) and write
        the labels that changed; returns how many changed (``last_change`` says which)."""
        old_voxels = self._voxels
        if voxels is None:
            voxels, xyz = old_voxels, self._xyz
        else:
            xyz = self._world(voxels)
        values = self._mapped(voxels, xyz)
        flat = self.labels.reshape(-1)
        current = flat[voxels]
        differs = current != values
        changed, before, after = voxels[differs], current[differs], values[differs]
        if voxels is not old_voxels:
            gone = np.setdiff1d(old_voxels, voxels, assume_unique=True)
            gone = gone[flat[gone] != 0]
            if gone.size:
                order = np.argsort(np.concatenate([changed, gone]), kind="stable")
                changed = np.concatenate([changed, gone])[order]
                before = np.concatenate([before, flat[gone]])[order]
                after = np.concatenate([after, np.zeros(gone.size, np.uint8)])[order]
        flat[changed] = after
        self._voxels, self._xyz = voxels, xyz
        self.last_change = LabelChange(changed, before, after)
        return int(changed.size)

    def _record(self, kind: str, **details: Any) -> None:
        self.edits.append(Edit(kind, self.reader, self.clock(), details))

    def move_landmark(self, name: str, z_mm: float | None = None,
                      position: tuple[float, float, float] | None = None) -> RelabelResult:
        """Move landmark ``name`` to world height ``z_mm`` (LPS mm) or to ``position`` (LPS mm) and re-map.

        Raises `InputError` (and keeps the old landmark) when the six landmarks would be out of order.
        """
        if name not in self.landmarks:
            raise InputError(f"unknown landmark {name!r}; expected one of {', '.join(self.landmarks)}")
        t0 = time.perf_counter()
        old = self.landmarks[name]
        if position is None:
            if z_mm is None:
                raise ValueError("give z_mm or position")
            position = (old.position[0], old.position[1], float(z_mm))
        position = tuple(float(v) for v in position)  # type: ignore[assignment]
        k = float(self.grid.world_to_index(np.asarray(position))[2])
        new = Landmark(name, position[2], position, slice=round(k, 2), confidence=1.0,  # type: ignore[arg-type]
                       extra={**old.extra, "source": "reader"})
        self.landmarks[name] = new
        try:
            changed = self._remap()
        except InputError:
            self.landmarks[name] = old
            raise
        self._record(LANDMARK_MOVED, landmark=name, from_z_mm=old.z_mm, to_z_mm=new.z_mm,
                     from_slice=old.slice, to_slice=new.slice, changed_voxels=changed)
        return RelabelResult(changed, (time.perf_counter() - t0) * 1000.0)

    def set_landmark_slice(self, name: str, k: float) -> RelabelResult:
        """Put landmark ``name`` on slice ``k`` of the grid (keeping its in-plane index) and re-map."""
        if name not in self.landmarks:
            raise InputError(f"unknown landmark {name!r}; expected one of {', '.join(self.landmarks)}")
        if not 0 <= k <= self.grid.shape[0] - 1:
            raise InputError(f"slice {k} is outside this CT (0..{self.grid.shape[0] - 1}); pick a slice inside it")
        ijk = self.grid.world_to_index(np.asarray(self.landmarks[name].position, dtype=float))
        ijk[2] = k
        return self.move_landmark(name, position=tuple(self.grid.index_to_world(ijk)))  # type: ignore[arg-type]

    def landmark_slice_position(self, name: str) -> float:
        """Where landmark ``name``'s plane cuts the grid's slice axis (fractional slice index ``k``)."""
        return float(self.grid.world_to_index(np.asarray(self.landmarks[name].position, dtype=float))[2])

    def landmark_slice(self, name: str) -> int:
        """The slice a reader sees for landmark ``name``: the first slice on or above its plane — the first slice of
        the segment above it. For the engine's landmarks (planes between two slices, ``z0 + (slice − 0.5)·sk``)
        it is the report's ``slice``; for a plane through a slice's centre (a typed slice) it is that slice."""
        k = self.landmark_slice_position(name)
        upward = self.grid.slice_normal[2] >= 0  # the slice index grows towards the head
        k = np.ceil(k - 1e-3) if upward else np.floor(k + 1e-3)
        return int(np.clip(k, 0, self.grid.shape[0] - 1))

    def reassign_lesion(self, lesion_id: int, segment: str) -> RelabelResult:
        """Give every voxel of a lesion the segment ``segment`` (a contract name, e.g. ``L_cavernous``)."""
        if segment not in SEGMENT_IDS:
            raise InputError(f"unknown segment {segment!r}; expected one of {', '.join(SEGMENT_IDS)}")
        if lesion_id in self._deleted:
            raise InputError(f"lesion {lesion_id} was deleted; add it again instead")
        t0 = time.perf_counter()
        before = self.lesion_segment(lesion_id)
        previous = self._overrides.get(lesion_id)
        self._overrides[lesion_id] = SEGMENT_IDS[segment]
        try:
            changed = self._remap()
        except InputError:
            if previous is None:
                self._overrides.pop(lesion_id)
            else:
                self._overrides[lesion_id] = previous
            raise
        self._record(LESION_REASSIGNED, lesion=lesion_id, from_segment=before, to_segment=segment,
                     changed_voxels=changed)
        return RelabelResult(changed, (time.perf_counter() - t0) * 1000.0)

    def delete_lesion(self, lesion_id: int) -> RelabelResult:
        """Remove a false lesion: its voxels are no longer calcified."""
        t0 = time.perf_counter()
        if lesion_id in self._deleted:
            raise InputError(f"lesion {lesion_id} was deleted already")
        voxels = self.lesion_voxels(lesion_id)
        before = self.lesion_segment(lesion_id)
        self._deleted.add(lesion_id)
        overridden = self._overrides.pop(lesion_id, None)
        try:
            changed = self._remap(np.setdiff1d(self._voxels, voxels, assume_unique=True))
        except InputError:
            self._deleted.discard(lesion_id)
            if overridden is not None:
                self._overrides[lesion_id] = overridden
            raise
        self._record(LESION_DELETED, lesion=lesion_id, segment=before, voxels=int(voxels.size))
        return RelabelResult(changed, (time.perf_counter() - t0) * 1000.0)

    def add_lesion(self, voxel_mask: np.ndarray, segment: str | None = None) -> int:
        """Add a missed lesion painted by the reader (bool ``[k, j, i]`` on the grid); returns its lesion id.

        Its segment is mapped from the landmarks unless ``segment`` is given.
        """
        voxel_mask = np.asarray(voxel_mask)
        if tuple(voxel_mask.shape) != tuple(self.grid.shape):
            raise InputError("the painted lesion is not on the CT's grid; paint it on the segmented CT")
        return self.add_lesion_voxels(flat_nonzero(voxel_mask), segment)

    def add_lesion_voxels(self, voxels: np.ndarray, segment: str | None = None) -> int:
        """`add_lesion` with the painted voxels as flat (C-order) indices into the grid ``[k, j, i]``."""
        voxels = np.unique(np.asarray(voxels, dtype=np.int64))
        if voxels.size and (voxels[0] < 0 or voxels[-1] >= self.labels.size):
            raise InputError("the painted lesion is not on the CT's grid; paint it on the segmented CT")
        if voxels.size == 0:
            raise InputError("the painted lesion is empty; paint at least one voxel")
        if segment is not None and segment not in SEGMENT_IDS:
            raise InputError(f"unknown segment {segment!r}; expected one of {', '.join(SEGMENT_IDS)}")
        lesion_id = self.lesion_count + 1
        self._added[lesion_id] = voxels
        if segment is not None:
            self._overrides[lesion_id] = SEGMENT_IDS[segment]
        try:
            changed = self._remap(np.union1d(self._voxels, voxels))
        except InputError:
            self._added.pop(lesion_id)
            self._overrides.pop(lesion_id, None)
            raise
        self._record(LESION_ADDED, lesion=lesion_id, segment=self.lesion_segment(lesion_id), voxels=int(voxels.size),
                     changed_voxels=changed)
        return lesion_id

    def measures(self, hu: np.ndarray) -> dict[str, Any]:
        """Measures of the corrected labels with the CT ``hu`` (HU, same grid): `iacseg.measure.measure_case`,
        run on the box around the calcified voxels (padded by one voxel) — the same numbers as on the whole grid."""
        from iacseg.measure import measure_case

        hu = np.asarray(hu)
        if tuple(hu.shape) != tuple(self.grid.shape):
            raise ValueError(f"HU shape {hu.shape} does not match grid shape {self.grid.shape}")
        if self._voxels.size == 0:
            return measure_case(np.zeros((1, 1, 1), np.uint8), np.zeros((1, 1, 1), np.float32),
                                self._sub_grid((0, 0, 0), (1, 1, 1)))
        kji = np.stack(np.unravel_index(self._voxels, self.grid.shape), axis=1)
        lo = np.maximum(kji.min(axis=0) - 1, 0)
        hi = np.minimum(kji.max(axis=0) + 2, self.grid.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        return measure_case(self.labels[box], hu[box], self._sub_grid(lo, hi))

    def _sub_grid(self, lo, hi) -> Grid:
        """The grid of the box ``[lo, hi)`` (``k, j, i``) of ``grid``: same spacing and axes, origin at ``lo``."""
        origin = self.grid.index_to_world(np.array([[lo[2], lo[1], lo[0]]], dtype=np.float64))[0]
        shape = tuple(int(b - a) for a, b in zip(lo, hi))
        return Grid(shape, self.grid.spacing, tuple(origin), self.grid.direction)  # type: ignore[arg-type]

    @property
    def landmarks_moved(self) -> bool:
        """True when a landmark is no longer at the engine's height (the result's QC is about the automatic ones)."""
        return any(lm.z_mm != self.original_landmarks[name].z_mm for name, lm in self.landmarks.items()
                   if name in self.original_landmarks)

    @property
    def unsaved_edits(self) -> list[Edit]:
        """The edits made since the last save (each save records only its own edits)."""
        return self.edits[self.saved_edits:]


from .corrections import save_correction  # noqa: E402 — re-exported: saving is part of the review flow

__all__ = ["Edit", "LabelChange", "RelabelResult", "ReviewSession", "save_correction"]
