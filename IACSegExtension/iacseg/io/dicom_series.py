"""Finding the CT series in a DICOM folder: header scan, grouping by series and orientation, selection.

Only headers are read here (``stop_before_pixels``). Patient identifiers are never kept.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.progress import Progress, no_progress
from .paths import describe_skipped, open_regular, shown, walk_regular_files

NOT_DICOM_SUFFIXES = {".txt", ".json", ".csv", ".xml", ".nii", ".gz", ".nrrd", ".nhdr", ".mha", ".mhd",
                      ".raw", ".png", ".jpg", ".jpeg", ".pdf", ".html", ".zip", ".md", ".py"}
AXIAL_MIN_COSINE = np.cos(np.radians(45.0))  # slice normal within 45° of superior counts as axial
ORIENTATION_TOLERANCE = 1e-3  # ImageOrientationPatient values closer than this are the same orientation
IOP_TOLERANCE = 0.01  # |cos| between row and column direction / |length - 1| accepted in ImageOrientationPatient


@dataclass(frozen=True)
class SliceHeader:
    """What the reader needs from one DICOM image's header (no pixels, no patient identifiers)."""

    path: Path
    series_uid: str
    modality: str
    image_type: tuple[str, ...]
    orientation: tuple[float, ...] | None  # ImageOrientationPatient (row_dir, col_dir), LPS
    position: tuple[float, float, float] | None  # ImagePositionPatient, LPS mm
    rows: int
    cols: int
    pixel_spacing: tuple[float, float] | None  # (between rows, between columns) mm
    frames: int

    @property
    def is_localizer(self) -> bool:
        return any(t in ("LOCALIZER", "SCOUT", "TOPOGRAM") for t in self.image_type)


@dataclass
class SeriesCandidate:
    """The images of one series that share orientation and matrix size (one stackable volume)."""

    series_uid: str
    modality: str
    slices: list[SliceHeader]
    is_localizer: bool
    total_images: int = 0  # images of the series in every stack (≥ n_slices)

    @property
    def n_slices(self) -> int:
        return len(self.slices)

    @property
    def has_geometry(self) -> bool:
        return all(s.orientation is not None and s.position is not None and s.pixel_spacing is not None
                   for s in self.slices)

    @property
    def is_axial(self) -> bool:
        iop = np.asarray(self.slices[0].orientation or (1, 0, 0, 0, 1, 0), float)
        normal = np.cross(iop[:3], iop[3:])
        return bool(abs(normal[2]) / max(np.linalg.norm(normal), 1e-9) >= AXIAL_MIN_COSINE)

    def summary(self) -> str:
        kind = "localizer" if self.is_localizer else f"{self.n_slices} slices"
        return f"{self.series_uid} ({self.modality}, {kind})"


def _floats(value: object, count: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return out if len(out) == count and all(np.isfinite(out)) else None


def read_slice_header(path: Path) -> SliceHeader | None:
    """The header of ``path`` if it is a DICOM image, else ``None`` (never raises on foreign files)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with open_regular(path) as f:
            try:
                ds = pydicom.dcmread(f, stop_before_pixels=True)
            except InvalidDicomError:
                if path.suffix.lower() in NOT_DICOM_SUFFIXES:
                    return None
                f.seek(0)  # old files without the 128-byte preamble
                ds = pydicom.dcmread(f, stop_before_pixels=True, force=True)
    except Exception:
        return None
    try:
        if "SeriesInstanceUID" not in ds or "Rows" not in ds or "Columns" not in ds:
            return None
        raw_type = ds.get("ImageType") or ()
        if isinstance(raw_type, str):
            raw_type = raw_type.split("\\")
        image_type = tuple(str(t).strip().upper() for t in raw_type)
        return SliceHeader(
            path=path, series_uid=str(ds.SeriesInstanceUID), modality=str(ds.get("Modality", "") or "unknown"),
            image_type=image_type, orientation=_floats(ds.get("ImageOrientationPatient"), 6),
            position=_floats(ds.get("ImagePositionPatient"), 3), rows=int(ds.Rows), cols=int(ds.Columns),
            pixel_spacing=_floats(ds.get("PixelSpacing"), 2),  # type: ignore[arg-type]
            frames=int(ds.get("NumberOfFrames", 1) or 1))
    except Exception:
        return None


def list_files(folder: Path, recursive: bool = True) -> list[Path]:
    """Regular files under ``folder`` (sorted; hidden files, DICOMDIR, pipes, devices and sockets skipped)."""
    return [p for p in walk_regular_files(folder, recursive)[0] if p.name.upper() != "DICOMDIR"]


def looks_like_dicom(path: Path) -> bool:
    """``.dcm`` name or the ``DICM`` marker at byte 128 (cheap; never blocks)."""
    if path.suffix.lower() in (".dcm", ".dicom", ".ima"):
        return True
    try:
        with open_regular(path) as f:
            return f.read(132)[128:132] == b"DICM"
    except Exception:  # noqa: BLE001
        return False


def dicomdir_only_message(folder: Path, other_files: int = 0) -> str:
    """The refusal of a folder whose only DICOM file is a DICOMDIR index (its images were not copied)."""
    others = f" (and {other_files} other files that are not DICOM images)" if other_files else ""
    return (f"The folder {shown(folder)} holds only a DICOMDIR index{others} and no image files: the images it lists "
            "were not copied with it; give the folder with the images (copy the whole exported disc or folder, "
            "with the subfolders next to the DICOMDIR).")


def scan_folder(folder: Path, recursive: bool = True, progress: Progress = no_progress,
                warnings: list[str] | None = None) -> list[SliceHeader]:
    """Headers of every DICOM image under ``folder``; InputError when there is none.

    What was skipped — pipes, devices, sockets, symlink loops, and files that look like DICOM but cannot be
    read — is appended to ``warnings`` (file names only).
    """
    warnings = [] if warnings is None else warnings
    found, skipped = walk_regular_files(folder, recursive)
    files = [p for p in found if p.name.upper() != "DICOMDIR"]
    has_dicomdir = len(files) < len(found)
    if not files:
        if has_dicomdir:
            raise InputError(dicomdir_only_message(folder))
        if skipped:
            raise InputError(f"The folder {shown(folder)} holds no regular files, only "
                             f"{describe_skipped(skipped)}; give the folder of the CT's DICOM files.")
        raise InputError(f"The folder {shown(folder)} is empty; give a folder that contains the CT's DICOM files "
                         "or an image file (.nii.gz, .nrrd, .mha).")
    headers: list[SliceHeader] = []
    unreadable: list[Path] = []
    for n, path in enumerate(files):
        header = read_slice_header(path)
        if header is not None:
            headers.append(header)
        elif looks_like_dicom(path):
            unreadable.append(path)
        if n % 50 == 0:
            progress("read", 0.3 * n / len(files), f"scanning DICOM headers ({n}/{len(files)})")
    if not headers:
        if has_dicomdir and not unreadable:
            raise InputError(dicomdir_only_message(folder, len(files)))
        what = f"{len(unreadable)} damaged DICOM files and " if unreadable else ""
        raise InputError(f"The folder {shown(folder)} contains no DICOM images ({what}{len(files) - len(unreadable)} "
                         "other files); give the folder of the CT's DICOM files, or the image file itself.")
    if skipped:
        warnings.append(f"{len(skipped)} entries of the folder were skipped: {describe_skipped(skipped)}")
    if unreadable:
        names = describe_skipped([(p, "unreadable header") for p in unreadable])
        warnings.append(f"{len(unreadable)} files that look like DICOM could not be read and were skipped: {names}")
    return headers


def _orientation_key(orientation: tuple[float, ...] | None, known: list[tuple[float, ...]]) -> tuple | None:
    """The first of ``known`` within `ORIENTATION_TOLERANCE` of ``orientation`` (added when new)."""
    if orientation is None:
        return None
    for k in known:
        if max(abs(a - b) for a, b in zip(orientation, k)) <= ORIENTATION_TOLERANCE:
            return k
    known.append(tuple(orientation))
    return tuple(orientation)


def group_series(headers: list[SliceHeader]) -> tuple[list[SeriesCandidate], list[str]]:
    """One candidate per series: its largest stack of same orientation/size images; plus warnings."""
    by_key: dict[tuple, list[SliceHeader]] = defaultdict(list)
    known: dict[str, list[tuple[float, ...]]] = defaultdict(list)
    for h in headers:
        iop = _orientation_key(h.orientation, known[h.series_uid])
        by_key[(h.series_uid, h.is_localizer, iop, h.rows, h.cols)].append(h)
    by_series: dict[str, list[list[SliceHeader]]] = defaultdict(list)
    for key, group in by_key.items():
        by_series[key[0]].append(group)
    candidates, warnings = [], []
    for uid, groups in by_series.items():
        groups.sort(key=lambda g: (g[0].is_localizer, -len(g)))  # the largest non-localizer stack first
        main = groups[0]
        total = sum(map(len, groups))
        if len(groups) > 1:
            warnings.append(f"series {uid} mixes images of different orientation, size or type; its largest "
                            f"stack ({len(main)} images) was used and {total - len(main)} others ignored")
        candidates.append(SeriesCandidate(uid, main[0].modality, main,
                                          main[0].is_localizer, total))
    candidates.sort(key=lambda c: c.series_uid)
    return candidates, warnings


def _available(candidates: list[SeriesCandidate]) -> str:
    return "; ".join(c.summary() for c in candidates)


def select_series(candidates: list[SeriesCandidate], folder: Path,
                  series_uid: str | None = None) -> tuple[SeriesCandidate, list[str]]:
    """The CT series to read: ``series_uid`` when given, else the axial CT series with most slices."""
    warnings: list[str] = []
    if series_uid is not None:
        chosen = [c for c in candidates if c.series_uid == series_uid]
        if not chosen:
            raise InputError(f"{shown(folder)} has no series with SeriesInstanceUID {series_uid}; available series: "
                             f"{_available(candidates)}.")
        _check_usable(chosen[0], folder)
        return chosen[0], warnings

    usable = [c for c in candidates if c.modality == "CT" and not c.is_localizer and c.n_slices >= 2
              and c.has_geometry and c.slices[0].frames == 1]
    if not usable:
        ct = [c for c in candidates if c.modality == "CT"]
        if not ct:
            found = ", ".join(sorted({c.modality for c in candidates}))
            raise InputError(f"{shown(folder)} holds no CT series (found modality {found}); IACSeg needs a "
                             "non-contrast head CT.")
        images = [c for c in ct if not c.is_localizer]
        if len(images) > 1 and all(c.total_images == 1 for c in images):
            raise InputError(f"{shown(folder)} holds {len(images)} CT images, but each is in a series of its own (a "
                             "different SeriesInstanceUID on every image), so no series stacks into a 3D volume; "
                             "re-export the CT series without changing its SeriesInstanceUID (an anonymiser that "
                             "gives every file a new UID does this).")
        for c in sorted(ct, key=lambda c: (c.is_localizer, -c.n_slices)):
            _check_usable(c, folder)  # raises the most relevant reason
    axial = [c for c in usable if c.is_axial]
    pool = axial or usable
    if not axial:
        warnings.append("no axial CT series was found; a non-axial series was used and will be resampled")
    best = max(pool, key=lambda c: c.n_slices)
    others = [c for c in usable if c is not best]
    if others:
        warnings.append(f"{len(others)} other CT series found in the folder were ignored; the one with most "
                        f"slices ({best.n_slices}) was used; choose another by its series UID "
                        f"({_available(others)})")
    return best, warnings


def _check_usable(c: SeriesCandidate, folder: Path) -> None:
    """Raise the InputError that explains why ``c`` cannot be read as a CT volume (if any)."""
    if c.modality != "CT":
        raise InputError(f"Series {c.series_uid} in {shown(folder)} is {c.modality}, not CT; IACSeg needs a "
                         "non-contrast head CT series.")
    if c.is_localizer:
        raise InputError(f"{shown(folder)} holds only localizer (scout) images in series {c.series_uid}, not an "
                         "axial CT series; export the reconstructed axial CT images.")
    if c.slices[0].frames > 1:
        raise InputError(f"Series {c.series_uid} in {shown(folder)} is an enhanced multi-frame DICOM, which this "
                         "reader does not support; convert it to NIfTI (e.g. with dcm2niix) and give that.")
    if c.n_slices < 2 and c.total_images > 1:
        raise InputError(f"Series {c.series_uid} in {shown(folder)} has {c.total_images} images but no two of them "
                         "share one orientation and matrix size (ImageOrientationPatient, Rows, Columns), so they do "
                         "not stack into a 3D volume; re-export the series as reconstructed axial CT images.")
    if c.n_slices < 2:
        raise InputError(f"Series {c.series_uid} in {shown(folder)} has a single slice, not a 3D CT volume; give "
                         "the folder with the whole CT series.")
    if not c.has_geometry:
        raise InputError(f"Series {c.series_uid} in {shown(folder)} {_geometry_problem(c)}, so its slices cannot be "
                         "placed in 3D; re-export it from the scanner or PACS.")


def _geometry_problem(c: SeriesCandidate) -> str:
    """Which slice-geometry tags the images of ``c`` lack, or hold as no valid numbers (e.g. NaN), as a phrase."""
    import pydicom

    bad = [s for s in c.slices if s.orientation is None or s.position is None or s.pixel_spacing is None]
    missing: set[str] = set()
    invalid: set[str] = set()
    for header in bad[:5]:
        try:
            with open_regular(header.path) as f:
                ds = pydicom.dcmread(f, stop_before_pixels=True, force=True)
        except Exception:  # noqa: BLE001 — it was read once already; the phrase below falls back
            continue
        for tag, value in (("ImagePositionPatient", header.position), ("ImageOrientationPatient", header.orientation),
                           ("PixelSpacing", header.pixel_spacing)):
            if value is None:
                (invalid if ds.get(tag) not in (None, "") else missing).add(tag)
    parts = []
    if missing:
        parts.append(f"no {' and no '.join(sorted(missing))}")
    if invalid:
        parts.append(f"{' and '.join(sorted(invalid))} that {'does' if len(invalid) == 1 else 'do'} not hold valid "
                     "numbers (NaN, empty or too few values)")
    if not parts:
        return ("lacks the slice position/orientation tags (ImagePositionPatient, ImageOrientationPatient, "
                "PixelSpacing)")
    which = f"all {c.n_slices} of its images" if len(bad) == c.n_slices else f"{len(bad)} of its {c.n_slices} images"
    return f"has {which} with {' and '.join(parts)}"
