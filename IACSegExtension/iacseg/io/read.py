"""`read_ct`: any supported CT input (DICOM folder or file, NIfTI, NRRD, MetaImage) → `CTVolume` in HU.

Image files are read with SimpleITK, header first (``ReadImageInformation``) so that a 2D/4D image, an
absurd spacing or a huge declared size is refused before any pixel is allocated. DICOM goes through
`read_dicom_series` (pydicom), which also corrects gantry tilt and uneven slice spacing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.progress import Progress, no_progress
from .dicom_series import read_slice_header
from .dicom_stack import read_dicom_series
from .nifti_check import check_nifti_data
from .library_warnings import capture_library_warnings, capture_native_stderr
from .paths import itk_path, open_regular, shown
from .validate import check_direction, check_image_header, check_readable, check_voxels, map_padding_to_air
from .volume import CTVolume, grid_from_sitk
from ..core.grid import Grid

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


def read_ct(path: str | Path, series_uid: str | None = None, progress: Progress = no_progress,
            allow_gaps: bool = False) -> CTVolume:
    """Read a CT from ``path`` as float32 HU ``[k, j, i]`` on a regular orthogonal LPS grid.

    ``path`` is a DICOM folder (searched recursively; files with or without ``.dcm``), one DICOM file
    (its folder's series is read), or a ``.nii``/``.nii.gz``/``.nrrd``/``.nhdr``/``.mha``/``.mhd`` file.
    ``series_uid`` picks a DICOM series when the folder holds several CT series (default: most slices).
    A DICOM series with missing slices (a gap in the slice positions, or slices that cannot be read) is refused
    unless ``allow_gaps``, which fills the gap by interpolation with a warning (see `stack_geometry`).
    ``metadata`` holds ``modality``, ``source_format``, ``series_uid``, ``slice_thickness_mm``,
    ``gantry_tilt_deg``, ``kernel``, ``manufacturer``, ``corrections`` and ``warnings`` (lists of str); warnings
    that pydicom, numpy or ITK raise while reading are added to ``warnings`` instead of reaching the terminal.
    Only regular files are opened (never a FIFO, device or socket); names need not be UTF-8.
    Raises `InputError` (one sentence naming the path) for anything that is not a usable 3D CT.
    """
    path = check_readable(Path(path))
    progress("read", 0.0, f"reading {shown(path.name)}")
    with capture_library_warnings() as library_warnings:
        volume = _read(path, series_uid, progress, allow_gaps)
    volume.metadata.setdefault("warnings", []).extend(library_warnings)
    return volume


def _read(path: Path, series_uid: str | None, progress: Progress, allow_gaps: bool) -> CTVolume:
    if path.is_dir():
        return read_dicom_series(path, series_uid, recursive=True, progress=progress, allow_gaps=allow_gaps)
    fmt = image_format(path)
    if fmt is not None:
        volume = read_image_file(path, fmt, progress)
        if series_uid is not None:
            volume.metadata["warnings"].append("a series UID was given but the input is a single image file; "
                                               "it was ignored")
        return volume
    header = read_slice_header(path)
    if header is None:
        raise InputError(f"{shown(path)} is not an image this reader knows; give {SUPPORTED}.")
    # One DICOM file stands for its series: read the series it belongs to from its folder.
    return read_dicom_series(path.parent, series_uid or header.series_uid, recursive=False, progress=progress,
                             allow_gaps=allow_gaps)


TEXT_HEADER_KEYS = ("elementspacing", "elementsize", "offset", "origin", "position", "transformmatrix",
                    "rotation", "orientation", "spacings", "space directions", "space origin")


def text_header_problem(path: Path, fmt: str) -> str | None:
    """Which geometry line of a NRRD / MetaImage text header holds NaN or inf (ITK reads those as 0)."""
    if fmt not in ("nrrd", "metaimage"):
        return None
    with open_regular(path) as f:
        head = f.read(65536)
    for raw in head.split(b"\n"):
        line = raw.decode("latin-1").strip()
        if not line and fmt == "nrrd":
            break  # end of a NRRD header
        key, sep, value = line.partition("=" if fmt == "metaimage" else ":")
        key = key.strip().lower()
        if not sep or key not in TEXT_HEADER_KEYS:
            if key == "elementdatafile":
                break  # end of a MetaImage header
            continue
        words = value.replace("(", " ").replace(")", " ").replace(",", " ").lower().split()
        if any(w.lstrip("+-") in ("nan", "inf", "infinity") for w in words):
            name = "voxel spacing" if key in ("elementspacing", "elementsize", "spacings") else key
            return f"{name} {value.strip()[:60]} (not a finite number)"
    return None


def read_image_file(path: Path, fmt: str, progress: Progress = no_progress) -> CTVolume:
    """A NIfTI / NRRD / MetaImage CT file as a `CTVolume` (header validated before pixels are read)."""
    import SimpleITK as sitk

    problem = text_header_problem(path, fmt)
    if problem is not None:
        raise InputError(f"{shown(path)} has {problem} in its header; fix the image header or re-export the CT.")
    with itk_path(path) as name, capture_native_stderr("ITK") as native:
        reader = sitk.ImageFileReader()
        reader.SetFileName(name)
        try:
            reader.ReadImageInformation()
        except RuntimeError as exc:
            if "orthonormal" in str(exc):
                check_direction(path, (1, 0, 0, 1, 0, 0, 0, 0, 1), problem="its orientation (sform/qform) is not "
                                "an orthogonal grid: the image axes are skewed or scaled")
            raise InputError(f"{shown(path)} could not be read as a {FORMAT_NAMES[fmt]} image (the file is damaged "
                             f"or is not an image); give {SUPPORTED}.") from exc
        check_image_header(path, reader.GetSize(), reader.GetSpacing(), reader.GetNumberOfComponents())
        if fmt == "nifti":
            check_nifti_data(path)  # ITK accepts truncated NIfTI data, NaN voxels and NaN spacing
        dim = len(reader.GetSize())
        direction = [reader.GetDirection()[r * dim + c] for r in range(3) for c in range(3)]
        check_direction(path, direction)
        try:
            image = reader.Execute()
        except RuntimeError as exc:
            raise InputError(f"{shown(path)} is damaged or truncated: its header was read but its voxels could not "
                             "be; copy or export the file again.") from exc
    if image.GetDimension() > 3:  # a 4D file with a single 3D volume
        size = list(image.GetSize())
        image = sitk.Extract(image, size[:3] + [0] * (len(size) - 3), [0] * len(size))
    progress("read", 0.7, "checking intensities")
    hu = sitk.GetArrayFromImage(image).astype(np.float32, copy=False)
    grid = grid_from_sitk(image)
    check_voxels(path, hu)
    corrections = []
    direction = grid.direction_matrix
    u, _, vt = np.linalg.svd(direction)
    nearest = u @ vt  # the closest orthonormal matrix: every output then shares one exactly orthogonal grid
    if np.abs(nearest - direction).max() > 1e-6:
        grid = Grid(grid.shape, grid.spacing, grid.origin, tuple(nearest.ravel()))
    padded = map_padding_to_air(hu)
    if padded:
        corrections.append(f"{padded} padding voxels (≤ −1500 HU) mapped to air (−1024 HU)")
    metadata = {"modality": "CT", "source_format": fmt, "series_uid": None,
                "slice_thickness_mm": float(grid.spacing[2]), "gantry_tilt_deg": None, "kernel": None,
                "manufacturer": None, "corrections": corrections,
                "warnings": [w.replace(name, shown(path.name)) for w in native]}  # a file name, never its folders
    progress("read", 1.0, f"read {grid.shape[0]} slices")
    return CTVolume(np.ascontiguousarray(hu), grid, metadata)
