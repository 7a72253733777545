"""`read_ct`: any supported CT input (DICOM folder or file, NIfTI, NRRD, MetaImage) → `CTVolume` in HU.

Image files are read with SimpleITK, header first (``ReadImageInformation``) so that a 2D/4D image, an
absurd spacing or a huge declared size is refused before any pixel is allocated. DICOM goes through
`read_dicom_series` (pydicom), which also corrects gantry tilt and uneven slice spacing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..progress import Progress, no_progress
from .dicom_series import read_slice_header
from .dicom_stack import read_dicom_series
from .nifti_check import check_nifti_data
from .validate import check_image_header, check_readable, check_voxels, map_padding_to_air
from .volume import CTVolume, grid_from_sitk

FORMAT_NAMES = {"nifti": "NIfTI", "nrrd": "NRRD", "metaimage": "MetaImage"}
IMAGE_FORMATS = {".nii.gz": "nifti", ".nii": "nifti", ".nrrd": "nrrd", ".nhdr": "nrrd",
                 ".mha": "metaimage", ".mhd": "metaimage"}
SUPPORTED = "a DICOM folder, .nii, .nii.gz, .nrrd, .nhdr, .mha or .mhd"


def image_format(path: Path) -> str | None:
    """``"nifti"``, ``"nrrd"`` or ``"metaimage"`` from the file name, else ``None``."""
    name = path.name.lower()
    for suffix, fmt in IMAGE_FORMATS.items():
        if name.endswith(suffix):
            return fmt
    return None


def read_ct(path: str | Path, series_uid: str | None = None, progress: Progress = no_progress) -> CTVolume:
    """Read a CT from ``path`` as float32 HU ``[k, j, i]`` on a regular orthogonal LPS grid.

    ``path`` is a DICOM folder (searched recursively; files with or without ``.dcm``), one DICOM file
    (its folder's series is read), or a ``.nii``/``.nii.gz``/``.nrrd``/``.nhdr``/``.mha``/``.mhd`` file.
    ``series_uid`` picks a DICOM series when the folder holds several CT series (default: most slices).
    ``metadata`` holds ``modality``, ``source_format``, ``series_uid``, ``slice_thickness_mm``,
    ``gantry_tilt_deg``, ``kernel``, ``manufacturer``, ``corrections`` and ``warnings`` (lists of str).
    Raises `InputError` (one sentence naming the path) for anything that is not a usable 3D CT.
    """
    path = check_readable(Path(path))
    progress("read", 0.0, f"reading {path.name}")
    if path.is_dir():
        return read_dicom_series(path, series_uid, recursive=True, progress=progress)
    fmt = image_format(path)
    if fmt is not None:
        volume = read_image_file(path, fmt, progress)
        if series_uid is not None:
            volume.metadata["warnings"].append("a series UID was given but the input is a single image file; "
                                               "it was ignored")
        return volume
    header = read_slice_header(path)
    if header is None:
        raise InputError(f"{path} is not an image this reader knows; give {SUPPORTED}.")
    # One DICOM file stands for its series: read the series it belongs to from its folder.
    return read_dicom_series(path.parent, series_uid or header.series_uid, recursive=False, progress=progress)


def read_image_file(path: Path, fmt: str, progress: Progress = no_progress) -> CTVolume:
    """A NIfTI / NRRD / MetaImage CT file as a `CTVolume` (header validated before pixels are read)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(f"{path} could not be read as a {FORMAT_NAMES[fmt]} image (the file is damaged or is "
                         f"not an image); give {SUPPORTED}.") from exc
    check_image_header(path, reader.GetSize(), reader.GetSpacing(), reader.GetNumberOfComponents())
    if fmt == "nifti":
        check_nifti_data(path)  # ITK accepts truncated NIfTI data and turns NaN into 0
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"{path} is damaged or truncated: its header was read but its voxels could not be; "
                         "copy or export the file again.") from exc
    if image.GetDimension() > 3:  # a 4D file with a single 3D volume
        size = list(image.GetSize())
        image = sitk.Extract(image, size[:3] + [0] * (len(size) - 3), [0] * len(size))
    progress("read", 0.7, "checking intensities")
    hu = sitk.GetArrayFromImage(image).astype(np.float32, copy=False)
    grid = grid_from_sitk(image)
    check_voxels(path, hu)
    corrections = []
    padded = map_padding_to_air(hu)
    if padded:
        corrections.append(f"{padded} padding voxels (≤ −1500 HU) mapped to air (−1024 HU)")
    metadata = {"modality": "CT", "source_format": fmt, "series_uid": None,
                "slice_thickness_mm": float(grid.spacing[2]), "gantry_tilt_deg": None, "kernel": None,
                "manufacturer": None, "corrections": corrections, "warnings": []}
    progress("read", 1.0, f"read {grid.shape[0]} slices")
    return CTVolume(np.ascontiguousarray(hu), grid, metadata)
