"""Integrity check of a NIfTI file's voxel data, which SimpleITK does not do.

ITK's NIfTI reader accepts a truncated ``.nii``/``.nii.gz`` (the missing voxels come back as zeros) and
turns NaN voxels into 0, so both would pass unnoticed. This module streams the data block once
(decompressing ``.gz`` on the fly, in chunks, never holding the whole file) and refuses a file whose data
is shorter than its header declares or that holds non-finite floating-point values.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from .paths import open_regular, shown
from .validate import nonfinite_error

CHUNK_BYTES = 8 * 1024 * 1024
FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype code → numpy float type


@dataclass(frozen=True)
class NiftiDataLayout:
    byte_order: str  # "<" or ">"
    datatype: int
    data_offset: int  # bytes from the start of the (uncompressed) file
    data_bytes: int  # what the header declares


#: header fields read here: name → ((NIfTI-1 struct format, offset), (NIfTI-2 struct format, offset))
_FIELDS = {
    "dim": (("8h", 40), ("8q", 16)),
    "datatype_bitpix": (("hh", 70), ("hh", 12)),
    "pixdim": (("8f", 76), ("8d", 104)),
    "vox_offset": (("f", 108), ("q", 168)),
    "qform_sform_code": (("hh", 252), ("ii", 344)),
    "quatern": (("6f", 256), ("6d", 352)),
    "srow": (("12f", 280), ("12d", 400)),
}


def _header_fields(head: bytes) -> tuple[str, dict[str, tuple]] | None:
    """Byte order and `_FIELDS` of the first 540 bytes of a NIfTI-1 or NIfTI-2 file (None if neither)."""
    for order in "<>":
        for version, size in enumerate((348, 540)):
            if len(head) >= size and struct.unpack_from(order + "i", head, 0)[0] == size:
                return order, {name: struct.unpack_from(order + spec[version][0], head, spec[version][1])
                               for name, spec in _FIELDS.items()}
    return None


def parse_nifti_header(head: bytes) -> NiftiDataLayout | None:
    """Layout of the data block from the first 540 bytes of a NIfTI-1 or NIfTI-2 file (None if neither)."""
    found = _header_fields(head)
    if found is None:
        return None
    order, f = found
    dims, (datatype, bitpix) = f["dim"], f["datatype_bitpix"]
    n_dims = int(dims[0])
    if not 1 <= n_dims <= 7 or bitpix <= 0:
        return None
    n_voxels = int(np.prod([max(int(d), 1) for d in dims[1:n_dims + 1]], dtype=np.float64))
    return NiftiDataLayout(order, int(datatype), max(int(f["vox_offset"][0]), 348), n_voxels * int(bitpix) // 8)


def nifti_header_problem(head: bytes) -> str | None:
    """Which geometry field of a NIfTI-1/2 header is NaN or infinite (ITK silently reads NaN spacing as 1 or 0)."""
    found = _header_fields(head)
    if found is None:
        return None
    f = found[1]
    pixdim, (qform_code, sform_code) = f["pixdim"], f["qform_sform_code"]
    if not np.all(np.isfinite(pixdim[1:4])):
        text = " × ".join("NaN" if np.isnan(v) else f"{v:g}" for v in pixdim[1:4])
        return f"voxel spacing {text} mm (not a finite number)"
    if qform_code > 0 and not np.all(np.isfinite(f["quatern"])):
        return "an orientation (qform) holding NaN or infinite values"
    if sform_code > 0 and not np.all(np.isfinite(f["srow"])):
        return "an orientation (sform) holding NaN or infinite values"
    return None


def check_nifti_data(path: Path) -> None:
    """Raise InputError when ``path``'s voxel data is truncated, unreadable or holds NaN/inf values."""
    compressed = path.name.lower().endswith(".gz")
    try:
        with open_regular(path) as raw, (gzip.open(raw, "rb") if compressed else raw) as stream:
            head = stream.read(540)
            problem = nifti_header_problem(head)
            if problem is not None:
                raise InputError(f"{shown(path)} has {problem} in its header; fix the image header or re-export "
                                 "the CT.")
            layout = parse_nifti_header(head)
            if layout is None:
                return  # not a NIfTI header ITK would have accepted either; ITK has judged it already
            float_type = FLOAT_TYPES.get(layout.datatype)
            if not compressed and float_type is None:
                found = path.stat().st_size - layout.data_offset
            else:
                stream.seek(layout.data_offset)
                found, bad = _stream_data(stream, layout, float_type)
                if bad:
                    raise nonfinite_error(path, bad)
    except (EOFError, OSError, zlib.error) as exc:
        raise InputError(f"{shown(path)} is damaged or truncated: its compressed data cannot be read to the end; "
                         "copy or export the file again.") from exc
    if found < layout.data_bytes:
        raise InputError(f"{shown(path)} is damaged or truncated: its header declares {layout.data_bytes} bytes of "
                         f"voxels but the file holds {max(found, 0)}; copy or export the file again.")


def _stream_data(stream, layout: NiftiDataLayout, float_type: str | None) -> tuple[int, int]:
    """(bytes read up to the declared size, count of non-finite float values among them)."""
    dtype = np.dtype(layout.byte_order + float_type) if float_type else None
    remaining, found, bad, carry = layout.data_bytes, 0, 0, b""
    while remaining > 0:
        chunk = stream.read(min(CHUNK_BYTES, remaining))
        if not chunk:
            break
        remaining -= len(chunk)
        found += len(chunk)
        if dtype is not None:
            block = carry + chunk
            usable = len(block) - len(block) % dtype.itemsize
            values = np.frombuffer(block[:usable], dtype)
            bad += int(values.size - np.count_nonzero(np.isfinite(values)))
            carry = block[usable:]
    return found, bad
