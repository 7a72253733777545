"""Finding the CTs of a cohort: each batch input is an image file, a case folder (``ct.nii.gz``, a ``dicom/``
series, its only image file, or DICOM files) or a folder of cases; one `BatchCase` (name, input) per case."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..core.contracts import PHANTOM_CT_FILE, PHANTOM_DICOM_DIR
from ..core.errors import InputError
from .paths import check_input_path

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


@dataclass(frozen=True)
class BatchCase:
    name: str
    input: Path


def _is_image_file(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and any(name.endswith(s) for s in IMAGE_SUFFIXES)


def _has_dicom_files(folder: Path) -> bool:
    for f in list(folder.iterdir())[:50]:
        if f.is_file():
            try:
                with open(f, "rb") as fh:
                    head = fh.read(132)
            except OSError:
                continue
            if head[128:132] == b"DICM" or f.suffix.lower() == ".dcm":
                return True
    return False


def case_input(folder: Path) -> Path | None:
    """The CT inside a case folder: ``ct.nii.gz``, a ``dicom/`` series, the only image file, or DICOM files."""
    if (folder / PHANTOM_CT_FILE).is_file():
        return folder / PHANTOM_CT_FILE
    if (folder / PHANTOM_DICOM_DIR).is_dir():
        return folder / PHANTOM_DICOM_DIR
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    images = sorted(p for p in entries if _is_image_file(p) and not p.name.startswith("truth_"))
    if len(images) == 1 and not any(p.is_dir() for p in entries):  # else: a folder of cases
        return images[0]
    if _has_dicom_files(folder):
        return folder
    return None


def _stem(path: Path) -> str:
    name = path.name
    for s in IMAGE_SUFFIXES:
        if name.lower().endswith(s):
            return name[: -len(s)]
    return name


def discover_cases(inputs: Iterable[str | Path]) -> list[BatchCase]:
    """Cases from the command line: image files, case folders, or folders of cases (a case per subfolder)."""
    cases: list[BatchCase] = []
    for raw in inputs:
        path = Path(raw)
        check_input_path(path, "The batch input")  # missing, symlink loop, FIFO/device/socket, unreadable
        if path.is_file():
            cases.append(BatchCase(_stem(path), path))
            continue
        own = case_input(path)
        if own is not None:
            cases.append(BatchCase(path.name, own))
            continue
        found = 0
        for child in sorted(path.iterdir()):
            if child.name.startswith("."):
                continue
            if child.is_dir():
                ct = case_input(child)
                cases.append(BatchCase(child.name, ct if ct is not None else child))
                found += 1
            elif _is_image_file(child):
                cases.append(BatchCase(_stem(child), child))
                found += 1
        if not found:
            raise InputError(f"batch input folder {path} contains no CT files or case folders")
    names = [c.name for c in cases]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"several batch inputs have the same case name ({', '.join(dupes)}); rename them")
    return cases
