"""Small real engine inputs and outputs for the slicer-core tests: a phantom CT, an oblique copy, ``iacseg segment``.

    ct = phantom_ct(tmp / "truth")                 # 256 × 256 × 60 axial phantom CT (NIfTI), ≈ 2 s
    oblique = oblique_copy(ct, tmp / "oblique.nrrd")  # same voxels, rotated 12° about z, another origin
    folder = segment(ct, tmp / "result")           # the engine's five contract files, ≈ 5 s on 2 CPU cores
"""

from __future__ import annotations

import math
from pathlib import Path

PHANTOM_SEED = 70101


def phantom_ct(root: Path, seed: int = PHANTOM_SEED, matrix: int = 256, slice_mm: float = 2.5) -> Path:
    """A small phantom case written by the engine; returns its ``ct.nii.gz``."""
    from iacseg.phantom import generate_cases

    (case,) = generate_cases(Path(root), seed, 1, slice_mm=slice_mm, matrix=matrix)
    return case / "ct.nii.gz"


def oblique_copy(ct: Path, path: Path, degrees: float = 12.0, origin=(10.5, -20.25, 3.0)) -> Path:
    """The same voxels with a direction rotated ``degrees`` about the z axis and another origin (LPS)."""
    import numpy as np
    import SimpleITK as sitk

    image = sitk.ReadImage(str(ct))
    a = math.radians(degrees)
    rotation = np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
    image.SetDirection(tuple(rotation.ravel()))
    image.SetOrigin(tuple(float(v) for v in origin))
    sitk.WriteImage(image, str(path))
    return Path(path)


def segment(ct: Path, out: Path) -> Path:
    """``iacseg segment CT -o OUT --device cpu`` in this process (bundled demo models); returns OUT."""
    from iacseg.cli.main import main

    assert main(["segment", str(ct), "-o", str(out), "--progress", "none", "--device", "cpu"]) == 0
    return Path(out)
