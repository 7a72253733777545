"""Reading a DICOM CT series into a `CTVolume`: pixels → HU, padding → air, regular orthogonal grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..progress import Progress, no_progress
from .dicom_series import SeriesCandidate, group_series, scan_folder, select_series
from .stack_geometry import analyse_stack, output_slices, stack_to_grid
from .validate import check_grid_size, check_spacing, check_voxels, map_padding_to_air
from .volume import CTVolume


def _padding_mask(ds: object, stored: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """Stored-value padding (PixelPaddingValue, optionally up to PixelPaddingRangeLimit) and its text."""
    value = getattr(ds, "PixelPaddingValue", None)
    if value is None:
        return None, None
    value = int(value)
    limit = getattr(ds, "PixelPaddingRangeLimit", None)
    if limit is None:
        return stored == value, f"{value}"
    lo, hi = sorted((value, int(limit)))
    return (stored >= lo) & (stored <= hi), f"{lo}…{hi}"


def load_hu_slices(candidate: SeriesCandidate, folder: Path,
                   progress: Progress = no_progress) -> tuple[np.ndarray, list[str]]:
    """Pixels of every slice of ``candidate`` in HU (``[n, rows, cols]`` float32, header order).

    Applies each slice's RescaleSlope/RescaleIntercept and maps padding (PixelPaddingValue/range and any
    value ≤ −1500 HU) to air (−1024 HU). Returns the slices and the corrections made.
    """
    import pydicom

    first = candidate.slices[0]
    check_grid_size(folder, (first.cols, first.rows, candidate.n_slices))
    stack = np.empty((candidate.n_slices, first.rows, first.cols), np.float32)
    padding_values: set[str] = set()
    padded = 0
    for s, header in enumerate(candidate.slices):
        ds = None
        try:
            ds = pydicom.dcmread(header.path)
            stored = ds.pixel_array
        except Exception as exc:  # damaged file or a compression no installed decoder handles
            meta = getattr(ds, "file_meta", None)
            syntax = getattr(getattr(meta, "TransferSyntaxUID", None), "name", "unknown")
            raise InputError(f"The DICOM file {header.path} could not be decoded ({type(exc).__name__}, transfer "
                             f"syntax {syntax}); decompress the series (e.g. gdcmconv --raw) or convert it to "
                             "NIfTI with dcm2niix.") from exc
        if stored.shape != (first.rows, first.cols):
            raise InputError(f"The DICOM file {header.path} has pixel data of shape {stored.shape}, not "
                             f"{first.rows} × {first.cols} as its header says; re-export the series.")
        slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
        intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
        mask, text = _padding_mask(ds, stored)
        if text is not None:
            padding_values.add(text)
        hu = stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)
        padded += map_padding_to_air(hu, mask)
        stack[s] = hu
        if s % 20 == 0:
            progress("read", 0.3 + 0.4 * s / candidate.n_slices, f"reading slices ({s}/{candidate.n_slices})")
    corrections = []
    if padded:
        if padding_values:
            corrections.append(f"padding value {', '.join(sorted(padding_values))} mapped to air (−1024 HU) "
                               f"in {padded} voxels")
        else:
            corrections.append(f"{padded} padding voxels (≤ −1500 HU) mapped to air (−1024 HU)")
    return stack, corrections


def _tag_float(ds: object, name: str) -> float | None:
    try:
        value = getattr(ds, name, None)
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def _acquisition_metadata(path: Path) -> dict:
    """Acquisition facts from one slice's header (never patient identifiers)."""
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    kernel = ds.get("ConvolutionKernel")
    if kernel is not None and not isinstance(kernel, str):
        kernel = "\\".join(str(k) for k in kernel)
    return {"slice_thickness_mm": _tag_float(ds, "SliceThickness"),
            "gantry_tilt_tag_deg": _tag_float(ds, "GantryDetectorTilt"),
            "kernel": str(kernel) if kernel else None,
            "manufacturer": str(ds.get("Manufacturer", "")) or None}


def read_dicom_series(folder: Path, series_uid: str | None = None, recursive: bool = True,
                      progress: Progress = no_progress) -> CTVolume:
    """The CT series in ``folder`` (chosen by ``series_uid`` or automatically) as a `CTVolume` in HU."""
    headers = scan_folder(folder, recursive, progress)
    candidates, warnings = group_series(headers)
    chosen, selection_warnings = select_series(candidates, folder, series_uid)
    warnings += selection_warnings
    first = chosen.slices[0]
    assert first.orientation is not None and first.pixel_spacing is not None
    check_spacing(folder, (first.pixel_spacing[1], first.pixel_spacing[0], 1.0))

    slices, corrections = load_hu_slices(chosen, folder, progress)
    check_voxels(folder, slices)
    positions = np.asarray([h.position for h in chosen.slices], float)
    row_dir, col_dir = np.asarray(first.orientation[:3]), np.asarray(first.orientation[3:])
    layout = analyse_stack(positions, row_dir, col_dir, first.pixel_spacing)
    if len(layout.order) < 2:
        raise InputError(f"Series {chosen.series_uid} in {folder} has all its images at one position, not a "
                         "3D CT volume; give the folder with the whole CT series.")
    slice_spacing, n_out = output_slices(layout)  # refuse an absurd output grid before allocating it
    check_spacing(folder, (first.pixel_spacing[1], first.pixel_spacing[0], slice_spacing))
    check_grid_size(folder, (first.cols, first.rows, n_out))
    hu, grid, geometry_corrections = stack_to_grid(slices, layout, first.pixel_spacing, progress)
    del slices
    warnings += layout.warnings

    meta = _acquisition_metadata(first.path)
    tag_tilt = meta.pop("gantry_tilt_tag_deg")
    measured = round(layout.tilt_deg, 2) if layout.sheared else 0.0
    if tag_tilt is not None and abs(abs(tag_tilt) - measured) > 1.0:
        warnings.append(f"GantryDetectorTilt says {tag_tilt:g}° but the slice positions show {measured:g}°; "
                        "the positions were trusted")
    metadata = {
        "modality": chosen.modality, "source_format": "dicom", "series_uid": chosen.series_uid,
        "slice_thickness_mm": meta["slice_thickness_mm"] or float(grid.spacing[2]),
        "gantry_tilt_deg": measured if layout.sheared or tag_tilt is None else float(tag_tilt),
        "kernel": meta["kernel"], "manufacturer": meta["manufacturer"],
        "n_slices_read": int(len(layout.order)),
        "corrections": corrections + geometry_corrections, "warnings": warnings,
    }
    progress("read", 1.0, f"read {len(layout.order)} slices")
    return CTVolume(hu, grid, metadata)
