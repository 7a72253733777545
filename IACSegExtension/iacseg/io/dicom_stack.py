"""Reading a DICOM CT series into a `CTVolume`: pixels → HU, padding → air, regular orthogonal grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.progress import Progress, no_progress
from .dicom_series import IOP_TOLERANCE, SeriesCandidate, group_series, scan_folder, select_series
from .identity import IDENTITY_KEY, IdentityStrings, identity_strings
from .paths import describe_skipped, open_regular, shown
from .stack_geometry import analyse_stack, missing_slice_gaps, output_slices, stack_to_grid
from .validate import check_grid_size, check_hu_range, check_spacing, check_voxels, map_padding_to_air
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


UNCOMPRESSED_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}
ALLOW_GAPS_HINT = ("copy or re-export the complete series, or allow gaps to fill the gap by interpolation "
                   "(measures near the gap are then less reliable)")


class SliceFailure(Exception):
    """One slice's pixels could not be used; ``reason`` is a short phrase, ``compressed`` a missing decoder,
    ``no_pixels`` a file without any pixel data element (a header-only file)."""

    def __init__(self, reason: str, compressed: bool = False, no_pixels: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.compressed = compressed
        self.no_pixels = no_pixels


def _decoder_available(syntax: object) -> bool:
    """True when pydicom has a working decoder for the transfer syntax ``syntax`` (False when unknown)."""
    try:
        from pydicom.pixels import get_decoder

        return bool(get_decoder(syntax).is_available)
    except Exception:  # noqa: BLE001 — older pydicom, or a syntax it does not know
        return False


def _rescale(ds: object, path: Path) -> tuple[float, float]:
    """RescaleSlope / RescaleIntercept (defaults 1 / 0); InputError for a slope of 0 or a non-finite value."""
    slope = _tag_float(ds, "RescaleSlope")
    intercept = _tag_float(ds, "RescaleIntercept")
    for name, value in (("RescaleSlope", slope), ("RescaleIntercept", intercept)):
        if value is None and getattr(ds, name, None) not in (None, ""):
            raise InputError(f"The DICOM file {shown(path)} has a {name} that is not a number; its pixel values "
                             "cannot be turned into HU — re-export the series from the scanner or PACS.")
    slope = 1.0 if slope is None else slope
    intercept = 0.0 if intercept is None else intercept
    if not (np.isfinite(slope) and np.isfinite(intercept)):
        raise InputError(f"The DICOM file {shown(path)} has a RescaleSlope/RescaleIntercept that is NaN or infinite; "
                         "its pixel values cannot be turned into HU — re-export the series.")
    if slope == 0:
        raise InputError(f"The DICOM file {shown(path)} has RescaleSlope 0, which would make every voxel the same "
                         "value; its header is wrong — re-export the series from the scanner or PACS.")
    return slope, intercept


def _read_pixels(path: Path) -> tuple[object, np.ndarray]:
    """(dataset, stored pixel array) of one slice; SliceFailure says why it cannot be used."""
    import pydicom

    try:
        with open_regular(path) as f:
            ds = pydicom.dcmread(f)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise SliceFailure(f"unreadable file ({type(exc).__name__})") from exc
    meta = getattr(ds, "file_meta", None)
    syntax = getattr(meta, "TransferSyntaxUID", None)
    compressed = syntax is not None and str(syntax) not in UNCOMPRESSED_SYNTAXES
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise SliceFailure("no pixel data: a header-only or truncated file", no_pixels=True)
    try:
        stored = ds.pixel_array
    except Exception as exc:  # noqa: BLE001
        name = getattr(syntax, "name", str(syntax))
        if compressed and not _decoder_available(syntax):
            raise SliceFailure(f"compressed as {name}, which no installed decoder reads", compressed=True) from exc
        if compressed:
            raise SliceFailure(f"{name} pixel data that cannot be decoded (truncated or damaged)") from exc
        raise SliceFailure("pixel data truncated or damaged") from exc
    return ds, stored


def load_hu_slices(candidate: SeriesCandidate, folder: Path, progress: Progress = no_progress,
                   allow_gaps: bool = False) -> tuple[np.ndarray, list[str], list[str], np.ndarray]:
    """Pixels of the readable slices of ``candidate`` in HU (``[n, rows, cols]`` float32, header order).

    Applies each slice's RescaleSlope/RescaleIntercept and maps padding (PixelPaddingValue/range and any
    value ≤ −1500 HU) to air (−1024 HU). Returns the slices, the corrections made, warnings (slices that could
    not be read, named by file name only) and the indices (into ``candidate.slices``) of the slices returned.
    Unreadable slices are missing slices: refused unless ``allow_gaps``; a series none of whose slices can
    be decoded is refused with the reason (e.g. a compression without a decoder).
    """
    first = candidate.slices[0]
    check_grid_size(folder, (first.cols, first.rows, candidate.n_slices))
    stack = np.empty((candidate.n_slices, first.rows, first.cols), np.float32)
    padding_values: set[str] = set()
    padded = 0
    kept: list[int] = []
    failures: list[tuple[Path, SliceFailure]] = []
    for s, header in enumerate(candidate.slices):
        try:
            ds, stored = _read_pixels(header.path)
            if stored.shape != (first.rows, first.cols):
                raise SliceFailure(f"pixel data of shape {stored.shape}, not {first.rows} × {first.cols} as its "
                                   "header says")
        except SliceFailure as failure:
            failures.append((header.path, failure))
            continue
        slope, intercept = _rescale(ds, header.path)
        mask, text = _padding_mask(ds, stored)
        if text is not None:
            padding_values.add(text)
        with np.errstate(over="ignore", invalid="ignore"):
            hu = stored.astype(np.float64) * slope + intercept
            hu = hu.astype(np.float32)
        check_hu_range(header.path, hu)
        padded += map_padding_to_air(hu, mask)
        stack[len(kept)] = hu
        kept.append(s)
        if s % 20 == 0:
            progress("read", 0.3 + 0.4 * s / candidate.n_slices, f"reading slices ({s}/{candidate.n_slices})")
    warnings: list[str] = []
    if failures:
        named = describe_skipped([(p, f.reason) for p, f in failures], limit=3)
        if not kept:
            path, failure = failures[0]
            if all(f.no_pixels for _, f in failures):
                names = ", ".join(shown(p.name) for p, _ in failures[:2])
                names += f" and {len(failures) - 2} more" if len(failures) > 2 else ""
                raise InputError(f"The DICOM files of series {candidate.series_uid} in {shown(folder)} have no pixel "
                                 f"data (PixelData missing: header-only files, e.g. {names}); re-export the series "
                                 "with its images.")
            if failure.compressed:
                raise InputError(f"The DICOM files of series {candidate.series_uid} in {shown(folder)} cannot be "
                                 f"decoded ({shown(path.name)}: {failure.reason}); decompress the series (e.g. "
                                 "gdcmconv --raw) or convert it to NIfTI with dcm2niix.")
            raise InputError(f"None of the {candidate.n_slices} DICOM files of series {candidate.series_uid} in "
                             f"{shown(folder)} holds usable pixels ({named}); copy or re-export the series.")
        if not allow_gaps:
            raise InputError(f"{len(failures)} of the {candidate.n_slices} slices of series {candidate.series_uid} in "
                             f"{shown(folder)} could not be read ({named}), so the series has missing slices; "
                             f"{ALLOW_GAPS_HINT}.", parameter="allow_gaps")
        warnings.append(f"{len(failures)} slice(s) could not be read and were left out, the gap filled by "
                        f"interpolation because gaps were allowed: {named}")
    corrections = []
    if padded:
        if padding_values:
            corrections.append(f"padding value {', '.join(sorted(padding_values))} mapped to air (−1024 HU) "
                               f"in {padded} voxels")
        else:
            corrections.append(f"{padded} padding voxels (≤ −1500 HU) mapped to air (−1024 HU)")
    return stack[: len(kept)], corrections, warnings, np.asarray(kept, int)


def _mm_text(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _tag_float(ds: object, name: str) -> float | None:
    try:
        value = getattr(ds, name, None)
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def _acquisition_metadata(path: Path) -> dict:
    """Acquisition facts from one slice's header, and its identity strings (kept only to cut them out of
    everything written; see `iacseg.io.identity`)."""
    import pydicom

    with open_regular(path) as f:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
    kernel = ds.get("ConvolutionKernel")
    if kernel is not None and not isinstance(kernel, str):
        kernel = "\\".join(str(k) for k in kernel)
    return {"slice_thickness_mm": _tag_float(ds, "SliceThickness"),
            "gantry_tilt_tag_deg": _tag_float(ds, "GantryDetectorTilt"),
            "kernel": str(kernel) if kernel else None,
            "manufacturer": str(ds.get("Manufacturer", "")) or None,
            IDENTITY_KEY: IdentityStrings(identity_strings(ds))}


def check_orientation(folder: Path, series_uid: str, orientation: tuple[float, ...]) -> None:
    """Refuse an ImageOrientationPatient whose row and column directions are not unit and perpendicular."""
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    lengths = np.linalg.norm(row), np.linalg.norm(col)
    if min(lengths) < 1e-6 or np.linalg.norm(np.cross(row, col)) < 1e-3 * max(lengths):
        problem = "its row and column directions are zero or parallel (a singular orientation)"
    elif max(abs(n - 1) for n in lengths) > IOP_TOLERANCE:
        problem = f"its row/column directions have lengths {lengths[0]:.4g} and {lengths[1]:.4g} instead of 1"
    elif abs(row @ col) / (lengths[0] * lengths[1]) > IOP_TOLERANCE:
        angle = float(np.degrees(np.arccos(np.clip(abs(row @ col) / (lengths[0] * lengths[1]), 0, 1))))
        problem = f"its row and column directions are at {angle:.1f}° instead of 90° (a skewed grid)"
    else:
        return
    raise InputError(f"Series {series_uid} in {shown(folder)} has an unusable ImageOrientationPatient: {problem}; "
                     "re-export the series from the scanner or PACS, or convert it with dcm2niix.")


def read_dicom_series(folder: Path, series_uid: str | None = None, recursive: bool = True,
                      progress: Progress = no_progress, allow_gaps: bool = False) -> CTVolume:
    """The CT series in ``folder`` (chosen by ``series_uid`` or automatically) as a `CTVolume` in HU.

    Missing slices (unreadable slice files, or a gap in the positions — see `missing_slice_gaps`) are refused
    unless ``allow_gaps``; then the gap is filled by interpolation and named in the warnings.
    """
    warnings: list[str] = []
    headers = scan_folder(folder, recursive, progress, warnings)
    candidates, grouping_warnings = group_series(headers)
    warnings += grouping_warnings
    chosen, selection_warnings = select_series(candidates, folder, series_uid)
    warnings += selection_warnings
    first = chosen.slices[0]
    assert first.orientation is not None and first.pixel_spacing is not None
    check_orientation(folder, chosen.series_uid, first.orientation)
    check_spacing(folder, (first.pixel_spacing[1], first.pixel_spacing[0], 1.0))

    slices, corrections, slice_warnings, kept = load_hu_slices(chosen, folder, progress, allow_gaps)
    warnings += slice_warnings
    check_voxels(folder, slices)
    positions = np.asarray([chosen.slices[s].position for s in kept], float)
    row_dir, col_dir = np.asarray(first.orientation[:3]), np.asarray(first.orientation[3:])
    layout = analyse_stack(positions, row_dir, col_dir, first.pixel_spacing)
    if len(layout.order) < 2:
        raise InputError(f"Series {chosen.series_uid} in {shown(folder)} has all its images at one position, not a "
                         "3D CT volume; give the folder with the whole CT series.")
    missing = missing_slice_gaps(layout.gaps)
    if missing and not allow_gaps:
        gaps = layout.gaps
        where = ", ".join(f"{_mm_text(gaps[i])} mm" for i in missing[:3]) + (" …" if len(missing) > 3 else "")
        raise InputError(f"Series {chosen.series_uid} in {shown(folder)} has missing slices: {len(missing)} gap(s) "
                         f"between slices ({where}) where the rest of the series is "
                         f"{_mm_text(float(np.median(gaps)))} mm apart; {ALLOW_GAPS_HINT}.",
                         parameter="allow_gaps")
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
        IDENTITY_KEY: meta[IDENTITY_KEY],
    }
    progress("read", 1.0, f"read {len(layout.order)} slices")
    return CTVolume(hu, grid, metadata)
