"""Reader review of one case: move landmarks (labels re-mapped in-process), reassign/delete/add lesions, record edits.

The calcified voxels are the non-zero voxels of the engine's label map ``[k, j, i]`` on its `Grid` (LPS).
Moving a landmark re-runs only the engine's mapping step (`iacseg.relabel.relabel_arrays`); a lesion the
reader reassigned keeps its segment through later landmark moves. Lesions are the 26-connected components of
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

from iacseg.anatomy import MidsagittalPlane
from iacseg.contracts import SEGMENT_IDS, SEGMENTS
from iacseg.errors import InputError
from iacseg.io.volume import Grid
from iacseg.mapping.sparse import flat_nonzero
from iacseg.outputs.markups import Landmark
from iacseg.relabel import relabel_arrays

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
        self.labels = labels.copy()
        self.mask = labels > 0
        self.edits: list[Edit] = []
        self.saved_edits = 0  # how many of ``edits`` are already in a saved correction
        self._voxels = flat_nonzero(self.mask)  # flat indices of the calcified voxels
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
    def _remap(self, mask_changed: bool = False) -> int:
        """Labels from mask × plane × landmarks, then the reader's lesion choices; returns changed voxels."""
        labels = relabel_arrays(self.mask, self.grid, self.plane, self.landmarks)
        flat = labels.reshape(-1)
        for lesion_id, value in self._overrides.items():
            flat[self.lesion_voxels(lesion_id)] = value
        voxels = flat_nonzero(self.mask) if mask_changed else self._voxels
        check = np.union1d(self._voxels, voxels) if mask_changed else voxels
        changed = int(np.count_nonzero(self.labels.reshape(-1)[check] != flat[check]))
        self.labels, self._voxels = labels, voxels
        return changed

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

    def reassign_lesion(self, lesion_id: int, segment: str) -> RelabelResult:
        """Give every voxel of a lesion the segment ``segment`` (a contract name, e.g. ``L_cavernous``)."""
        if segment not in SEGMENT_IDS:
            raise InputError(f"unknown segment {segment!r}; expected one of {', '.join(SEGMENT_IDS)}")
        if lesion_id in self._deleted:
            raise InputError(f"lesion {lesion_id} was deleted; add it again instead")
        t0 = time.perf_counter()
        before = self.lesion_segment(lesion_id)
        self._overrides[lesion_id] = SEGMENT_IDS[segment]
        changed = self._remap()
        self._record(LESION_REASSIGNED, lesion=lesion_id, from_segment=before, to_segment=segment,
                     changed_voxels=changed)
        return RelabelResult(changed, (time.perf_counter() - t0) * 1000.0)

    def delete_lesion(self, lesion_id: int) -> RelabelResult:
        """Remove a false lesion: its voxels are no longer calcified."""
        t0 = time.perf_counter()
        voxels = self.lesion_voxels(lesion_id)
        before = self.lesion_segment(lesion_id)
        self.mask.reshape(-1)[voxels] = False
        self._deleted.add(lesion_id)
        self._overrides.pop(lesion_id, None)
        changed = self._remap(mask_changed=True)
        self._record(LESION_DELETED, lesion=lesion_id, segment=before, voxels=int(voxels.size))
        return RelabelResult(changed, (time.perf_counter() - t0) * 1000.0)

    def add_lesion(self, voxel_mask: np.ndarray, segment: str | None = None) -> int:
        """Add a missed lesion painted by the reader (bool ``[k, j, i]`` on the grid); returns its lesion id.

        Its segment is mapped from the landmarks unless ``segment`` is given.
        """
        voxel_mask = np.asarray(voxel_mask)
        if tuple(voxel_mask.shape) != tuple(self.grid.shape):
            raise InputError("the painted lesion is not on the CT's grid; paint it on the segmented CT")
        voxels = flat_nonzero(voxel_mask)
        if voxels.size == 0:
            raise InputError("the painted lesion is empty; paint at least one voxel")
        if segment is not None and segment not in SEGMENT_IDS:
            raise InputError(f"unknown segment {segment!r}; expected one of {', '.join(SEGMENT_IDS)}")
        lesion_id = self.lesion_count + 1
        self._added[lesion_id] = voxels
        self.mask.reshape(-1)[voxels] = True
        if segment is not None:
            self._overrides[lesion_id] = SEGMENT_IDS[segment]
        changed = self._remap(mask_changed=True)
        self._record(LESION_ADDED, lesion=lesion_id, segment=self.lesion_segment(lesion_id), voxels=int(voxels.size),
                     changed_voxels=changed)
        return lesion_id

    def measures(self, hu: np.ndarray) -> dict[str, Any]:
        """Measures of the corrected labels with the CT ``hu`` (HU, same grid): `iacseg.measure.measure_case`."""
        from iacseg.measure import measure_case

        return measure_case(self.labels, hu, self.grid)

    @property
    def landmarks_moved(self) -> bool:
        """True when a landmark is no longer at the engine's height (the result's QC is about the automatic ones)."""
        return any(lm.z_mm != self.original_landmarks[name].z_mm for name, lm in self.landmarks.items()
                   if name in self.original_landmarks)

    @property
    def is_modified(self) -> bool:
        return bool(self.edits)

    @property
    def unsaved_edits(self) -> list[Edit]:
        """The edits made since the last save (each save records only its own edits)."""
        return self.edits[self.saved_edits:]


from .corrections import save_correction  # noqa: E402 — re-exported: saving is part of the review flow

__all__ = ["Edit", "RelabelResult", "ReviewSession", "save_correction"]
