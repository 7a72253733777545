"""Unlabelled CT regions for self-supervised pre-training: the skull-base box around both ICAs, as HU crops.

Sources (``data``):

* a folder of CTs — case folders (``ct.nii.gz``, ``dicom/``, one image file or DICOM files, as ``iacseg batch``
  finds them) or image files; truth files are optional: a case folder's ``truth_landmarks.mrk.json`` is used
  when present, labels never;
* anything `iacseg.train.data.iter_cases` takes (phantom seeds, phantoms, `Case` objects, truth-layout folders
  given as a list).

Each CT is brought to axial LPS, its midsagittal plane found (the inference algorithm), and the ICA box taken
from `iacseg.preprocess.ica_region_box`: from the landmarks when the case has them, else ± 50 mm around the
densest skull-base bone level (the same fallback inference uses), else the whole volume. The crop kept is that
box grown by a context margin (voxels) on each side, clipped to the volume; HU as int16.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from ..core.errors import InputError
from ..core.progress import Progress, no_progress

if TYPE_CHECKING:  # type hints only
    from ..core.plane import MidsagittalPlane
    from ..io.volume import CTVolume
    from ..core.landmarks import Landmark

AIR_HU = -1024


@dataclass
class CTRegion:
    """One case's cached pre-training region: HU crop ``[k, j, i]`` (int16, axial LPS grid of the CT), the ICA
    box inside the crop (index slices), how the box was found, and the case name."""

    name: str
    hu: np.ndarray
    roi: tuple[slice, slice, slice]
    method: str


def _folder_cts(root: Path) -> Iterator[tuple[str, "CTVolume", "dict[str, Landmark] | None"]]:
    from ..io.cohort import discover_cases
    from ..io import read_ct
    from ..outputs.truth_folder import CT_FILE, DICOM_DIR, TruthFolder

    for case in discover_cases([root]):
        if case.input.is_dir() and case.input.name != DICOM_DIR:
            truth = TruthFolder(case.input)
        elif case.input.name in (CT_FILE, DICOM_DIR):
            truth = TruthFolder(case.input.parent)
        else:
            truth = None  # a bare image file: no truth beside it that belongs to it alone
        landmarks = truth.read_landmarks() if truth is not None and truth.has_landmarks() else None
        yield case.name, read_ct(case.input), landmarks


def iter_ct_sources(data: Any, phantom_options: dict[str, Any] | None = None
                    ) -> Iterator[tuple[str, "CTVolume", "dict[str, Landmark] | None", "MidsagittalPlane | None"]]:
    """``(name, CT, landmarks or None, plane or None)`` for every CT of ``data`` (see module docstring)."""
    if isinstance(data, (str, Path)):
        root = Path(data)
        if not root.exists():
            raise InputError(f"pre-training data {root} does not exist; give a folder of CTs or case folders")
        for name, ct, landmarks in _folder_cts(root):
            yield name, ct, landmarks, None
        return
    from .data import iter_cases

    for case in iter_cases(data, phantom_options):
        yield case.name, case.ct, case.landmarks or None, case.plane


def region_of(name: str, ct: "CTVolume", landmarks: "dict[str, Landmark] | None", margin_kji: Sequence[int],
              plane: "MidsagittalPlane | None" = None) -> CTRegion:
    """The cached `CTRegion` of one CT (any orientation; brought to axial LPS here)."""
    from ..models.segmenter import expand_box
    from ..preprocess import ica_region_box, midsagittal_plane, to_axial_lps

    ax = ct if ct.grid.is_axial_lps() else to_axial_lps(ct)
    plane = plane if plane is not None and ax is ct else midsagittal_plane(ax)
    box = ica_region_box(ax, plane, landmarks)
    crop = expand_box(box.slices, margin_kji, ax.hu.shape)
    hu = np.clip(ax.hu[crop], AIR_HU, 3071).astype(np.int16)
    inner = tuple(slice(r.start - c.start, r.stop - c.start) for r, c in zip(box.slices, crop))
    return CTRegion(name, hu, inner, box.method)  # type: ignore[arg-type]


def prepare_regions(data: Any, margin_kji: Sequence[int], phantom_options: dict[str, Any] | None = None,
                    progress: Progress = no_progress) -> list[CTRegion]:
    """Every CT of ``data`` reduced to its `CTRegion` (a list of `CTRegion` is returned as it is)."""
    if isinstance(data, (list, tuple)) and data and all(isinstance(r, CTRegion) for r in data):
        return list(data)
    regions = []
    for n, (name, ct, landmarks, plane) in enumerate(iter_ct_sources(data, phantom_options)):
        regions.append(region_of(name, ct, landmarks, margin_kji, plane))
        progress("prepare", 0.0, f"case {n + 1}: {name} (region from {regions[-1].method})")
    if not regions:
        raise InputError("the pre-training data holds no CT; give a folder of CTs or case folders, or phantoms")
    return regions


def sample_cube(region: CTRegion, size: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """A ``size`` (k, j, i voxels) HU block (int16) centred on a uniformly random voxel of the region's ICA box;
    air (−1024 HU) where it leaves the crop."""
    size = [int(s) for s in size]
    centre = [int(rng.integers(s.start, s.stop)) for s in region.roi]
    out = np.full(size, AIR_HU, dtype=np.int16)
    src, dst = [], []
    for c, p, n in zip(centre, size, region.hu.shape):
        start = c - p // 2
        a, b = max(start, 0), min(start + p, n)
        src.append(slice(a, max(a, b)))
        dst.append(slice(a - start, max(a, b) - start))
    out[tuple(dst)] = region.hu[tuple(src)]
    return out
