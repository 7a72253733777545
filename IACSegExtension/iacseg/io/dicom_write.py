"""Writing a synthetic CT as a classic DICOM series (CT Image Storage, one file per slice).

Used by the phantom generator and the tests to exercise the DICOM reader on the things real scanners do:
gantry tilt (a sheared stack), uneven slice spacing, rescale slope/intercept, pixel padding values and
instance numbers that do not follow the slice order. Only synthetic identifiers are written
(patient name ``IACSEG^PHANTOM``, id ``PHANTOM``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"


def _uid(uid_seed: int, *parts: object) -> str:
    """A valid UID that depends only on ``uid_seed`` and ``parts`` (same inputs → same UID)."""
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["iacseg", str(uid_seed), *[str(p) for p in parts]]))


def _ds_string(value: float) -> str:
    """A DICOM decimal string (≤ 16 characters) for ``value``."""
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    if len(text) > 16:
        text = f"{float(value):.8g}"
    return "0" if text in ("-0", "") else text


def _stored_values(slice_hu: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """HU → int16 stored values with ``HU = stored * slope + intercept`` (rounded, clipped to int16)."""
    stored = np.rint((np.asarray(slice_hu, dtype=np.float64) - intercept) / slope)
    return np.clip(stored, -32768, 32767).astype(np.int16)


def write_ct_series(folder: Path, slices_hu: np.ndarray, positions: np.ndarray,
                    row_dir: Sequence[float], col_dir: Sequence[float],
                    pixel_spacing: tuple[float, float], *, slice_thickness_mm: float,
                    gantry_tilt_deg: float = 0.0, rescale_slope: float = 1.0,
                    rescale_intercept: float = -1024.0, padding_value: int | None = None,
                    padding_mask: np.ndarray | None = None, modality: str = "CT",
                    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
                    shuffle_seed: int | None = None, series_description: str = "IACSeg phantom",
                    kernel: str = "STANDARD", manufacturer: str = "IACSeg phantom",
                    uid_seed: int = 0) -> list[Path]:
    """Write a CT series, one DICOM file per slice, into ``folder`` (created if needed).

    ``slices_hu`` is ``[n, rows, cols]`` in HU; slice ``s`` is written with ImagePositionPatient
    ``positions[s]`` (LPS mm, centre of its first pixel) and ImageOrientationPatient ``row_dir + col_dir``
    (``row_dir``: LPS direction of increasing column index; ``col_dir``: of increasing row index).
    ``pixel_spacing`` is DICOM order (between rows, between columns) in mm. Pixels are stored as int16
    ``round((HU - rescale_intercept) / rescale_slope)``; where ``padding_mask`` (bool ``[n, rows, cols]``)
    is true the stored value is ``padding_value`` (written as PixelPaddingValue). InstanceNumbers are
    1..n in slice order, or a permutation of it drawn from ``shuffle_seed``. UIDs are deterministic
    functions of ``uid_seed`` (and of ``series_description``/``modality`` for the series UID); file names
    ``CT_<end of series UID>_<slice number>.dcm`` let several series share a folder. Returns the file paths
    in slice order.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset

    slices_hu = np.asarray(slices_hu)
    positions = np.asarray(positions, dtype=np.float64)
    if slices_hu.ndim != 3 or positions.shape != (slices_hu.shape[0], 3):
        raise ValueError(f"slices_hu must be [n, rows, cols] and positions [n, 3]; got {slices_hu.shape}, "
                         f"{positions.shape}")
    if padding_mask is not None and padding_value is None:
        raise ValueError("padding_mask needs a padding_value")
    n, rows, cols = slices_hu.shape
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    instance_numbers = np.arange(1, n + 1)
    if shuffle_seed is not None:
        instance_numbers = np.random.default_rng(shuffle_seed).permutation(instance_numbers)

    study_uid = _uid(uid_seed, "study")
    series_uid = _uid(uid_seed, "series", series_description, modality)
    frame_uid = _uid(uid_seed, "frame")
    orientation = [_ds_string(v) for v in (*row_dir, *col_dir)]
    normal = np.cross(np.asarray(row_dir, float), np.asarray(col_dir, float))

    paths: list[Path] = []
    for s in range(n):
        stored = _stored_values(slices_hu[s], rescale_slope, rescale_intercept)
        if padding_mask is not None:
            stored[np.asarray(padding_mask[s], bool)] = np.int16(padding_value)
        sop_uid = _uid(uid_seed, "instance", series_uid, s)

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = EXPLICIT_VR_LITTLE_ENDIAN
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.preamble = b"\0" * 128

        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.PatientName = "IACSEG^PHANTOM"
        ds.PatientID = "PHANTOM"
        ds.PatientSex = "O"
        ds.StudyID = "1"
        ds.StudyDate = "20000101"
        ds.StudyTime = "000000"
        ds.SeriesNumber = 1 + uid_seed % 1000
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = int(instance_numbers[s])
        ds.Modality = modality
        ds.Manufacturer = manufacturer
        ds.SeriesDescription = series_description
        ds.ImageType = list(image_type)
        ds.ConvolutionKernel = kernel
        ds.KVP = "120"
        ds.PatientPosition = "HFS"
        ds.SliceThickness = _ds_string(slice_thickness_mm)
        ds.GantryDetectorTilt = _ds_string(gantry_tilt_deg)
        ds.ImagePositionPatient = [_ds_string(v) for v in positions[s]]
        ds.ImageOrientationPatient = orientation
        ds.SliceLocation = _ds_string(float(positions[s] @ normal))
        ds.PixelSpacing = [_ds_string(pixel_spacing[0]), _ds_string(pixel_spacing[1])]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = rows
        ds.Columns = cols
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope = _ds_string(rescale_slope)
        ds.RescaleIntercept = _ds_string(rescale_intercept)
        ds.RescaleType = "HU"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        if padding_value is not None:
            ds.add_new(0x00280120, "SS", int(padding_value))  # PixelPaddingValue, signed pixels
        ds.PixelData = np.ascontiguousarray(stored).tobytes()

        path = folder / f"CT_{series_uid[-6:]}_{s + 1:05d}.dcm"  # several series can share a folder
        _save(ds, path)
        paths.append(path)
    return paths


def _save(ds: object, path: Path) -> None:
    """Save with a proper file-meta header (pydicom 3 and 2.x spell this differently)."""
    try:
        ds.save_as(path, enforce_file_format=True)  # type: ignore[attr-defined]
    except TypeError:  # pydicom < 3
        ds.is_little_endian = True  # type: ignore[attr-defined]
        ds.is_implicit_VR = False  # type: ignore[attr-defined]
        ds.save_as(path, write_like_original=False)  # type: ignore[attr-defined]
