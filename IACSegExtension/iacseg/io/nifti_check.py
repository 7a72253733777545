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

from ..errors import InputError
from .validate import nonfinite_error

CHUNK_BYTES = 8 * 1024 * 1024
FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype code → numpy float type


@dataclass(frozen=True)
class NiftiDataLayout:
    byte_order: str  # "<" or ">"
    datatype: int
    data_offset: int  # bytes from the start of the (uncompressed) file
    data_bytes: int  # what the header declares


def parse_nifti_header(head: bytes) -> NiftiDataLayout | None:
    """Layout of the data block from the first 540 bytes of a NIfTI-1 or NIfTI-2 file (None if neither)."""
    for order in "<>":
        if len(head) >= 348 and struct.unpack_from(order + "i", head, 0)[0] == 348:
            dims = struct.unpack_from(order + "8h", head, 40)
            datatype, bitpix = struct.unpack_from(order + "hh", head, 70)
            offset = int(struct.unpack_from(order + "f", head, 108)[0])
            break
        if len(head) >= 540 and struct.unpack_from(order + "i", head, 0)[0] == 540:
            datatype, bitpix = struct.unpack_from(order + "hh", head, 12)
            dims = struct.unpack_from(order + "8q", head, 16)
            offset = int(struct.unpack_from(order + "q", head, 168)[0])
            break
    else:
        return None
    n_dims = int(dims[0])
    if not 1 <= n_dims <= 7 or bitpix <= 0:
        return None
    n_voxels = int(np.prod([max(int(d), 1) for d in dims[1:n_dims + 1]], dtype=np.float64))
    return NiftiDataLayout(order, int(datatype), max(offset, 348), n_voxels * int(bitpix) // 8)


def check_nifti_data(path: Path) -> None:
    """Raise InputError when ``path``'s voxel data is truncated, unreadable or holds NaN/inf values."""
    compressed = path.name.lower().endswith(".gz")
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as stream:
            layout = parse_nifti_header(stream.read(540))
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
        raise InputError(f"{path} is damaged or truncated: its compressed data cannot be read to the end; "
                         "copy or export the file again.") from exc
    if found < layout.data_bytes:
        raise InputError(f"{path} is damaged or truncated: its header declares {layout.data_bytes} bytes of "
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
