"""Training cases: an axial LPS CT, its calcification label map and its six landmarks.

Sources (``data`` of the trainers):

* a folder holding case folders — or one case folder — in the phantom/truth layout
  (``ct.nii.gz`` or ``dicom/``, ``truth_calcifications.nii.gz``, ``truth_landmarks.mrk.json``; found and read by
  `iacseg.outputs.truth_folder`);
* a list of such folders;
* a list of in-memory phantoms / `Case` objects (anything with ``ct``, ``labels``, ``landmarks``);
* a list or range of ints: phantom seeds, generated on the fly by ``iacseg.phantom.make_phantom``.

Cases are yielded one at a time so trainers can reduce each to its small cached tensors and drop the volume.
Every case goes through the inference pre-processing (`to_axial_lps`, `midsagittal_plane`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from ..core.plane import MidsagittalPlane
from ..core.errors import InputError
from ..io.volume import CTVolume
from ..outputs.truth_folder import TruthFolder, case_folders

if TYPE_CHECKING:  # type hints only
    from ..core.landmarks import Landmark


@dataclass
class Case:
    """One training case on an axial LPS grid: HU volume, label map (uint8 0..8, same grid), landmarks."""

    name: str
    ct: CTVolume
    labels: np.ndarray
    landmarks: "dict[str, Landmark]"
    plane: MidsagittalPlane | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def read_case_folder(folder: str | Path) -> Case:
    """Read one truth-layout case folder (CT, label map, landmarks) and bring it to axial LPS."""
    case = TruthFolder(Path(folder))
    ct = case.read_ct()
    labels, label_grid = case.read_labels()
    return to_training_case(case.name, ct, labels, case.read_landmarks(), label_grid=label_grid)


def to_training_case(name: str, ct: CTVolume, labels: np.ndarray, landmarks: "dict[str, Landmark]",
                     label_grid: Any = None, plane: MidsagittalPlane | None = None) -> Case:
    """`Case` on the axial LPS grid of ``ct`` (labels resampled nearest-neighbour when grids differ)."""
    from ..preprocess import resample_to_grid, to_axial_lps

    label_grid = label_grid or ct.grid
    ax = ct if ct.grid.is_axial_lps() else to_axial_lps(ct)
    if not label_grid.same_geometry(ax.grid):
        labels = resample_to_grid(labels.astype(np.float32), label_grid, ax.grid, order=0).astype(np.uint8)
    return Case(name, ax, np.asarray(labels, dtype=np.uint8), dict(landmarks), plane)


def case_plane(case: Case) -> MidsagittalPlane:
    """The midsagittal plane from the inference algorithm (cached on the case)."""
    if case.plane is None:
        from ..preprocess import midsagittal_plane

        case.plane = midsagittal_plane(case.ct)
    return case.plane


def iter_cases(data: Any, phantom_options: dict[str, Any] | None = None) -> Iterator[Case]:
    """Yield `Case` objects from any supported ``data`` source (see module docstring)."""
    if isinstance(data, (str, Path)):
        for folder in case_folders(data):
            yield read_case_folder(folder)
        return
    for n, item in enumerate(data):
        if isinstance(item, Case):
            yield item
        elif isinstance(item, (str, Path)):
            yield read_case_folder(item)
        elif isinstance(item, (int, np.integer)):
            from ..phantom import make_phantom  # type: ignore[attr-defined]

            ph = make_phantom(int(item), **(phantom_options or {}))
            yield to_training_case(f"phantom_{int(item):05d}", ph.ct, ph.labels, ph.landmarks)
        elif all(hasattr(item, a) for a in ("ct", "labels", "landmarks")):
            name = getattr(item, "name", None) or f"case_{n:05d}"
            yield to_training_case(str(name), item.ct, item.labels, item.landmarks)
        else:
            raise InputError(f"training data item {n} is neither a case folder, a phantom seed nor a phantom")


def is_prepared(data: Any, kind: type) -> bool:
    """True when ``data`` is a non-empty list of a trainer's cached cases (``kind``) rather than raw cases."""
    return isinstance(data, (list, tuple)) and len(data) > 0 and all(isinstance(c, kind) for c in data)


def describe_data(data: Any, phantom_options: dict[str, Any] | None = None) -> str:
    """One line saying what the training data was (for the model card)."""
    if isinstance(data, (str, Path)):
        return f"case folders under {Path(data).name}"
    items = list(data) if not isinstance(data, range) else data
    if isinstance(items, range) or (items and all(isinstance(i, (int, np.integer)) for i in items)):
        seeds = list(items)
        return (f"{len(seeds)} synthetic head-CT phantoms (iacseg.phantom, seeds {min(seeds)}–{max(seeds)}, "
                f"options {phantom_options or {}})")
    return f"{len(items)} in-memory cases"


def landmark_slices(case: Case, names: Sequence[str]) -> np.ndarray:
    """Target slice k* = ceil((z − z0)/sk) of each landmark on the case's grid (int64, may be out of range)."""
    from ..models.localiser import landmark_target_slice

    z0, sk = case.ct.grid.origin[2], case.ct.grid.spacing[2]
    return np.array([landmark_target_slice(case.landmarks[n].z_mm, z0, sk) for n in names], dtype=np.int64)
