"""Fast positions of the few non-zero voxels of a large, sparse volume.

Calcification masks are tiny (a few thousand voxels) inside large CT grids (~80 M voxels), and the mapping is
re-run on every landmark correction in Slicer, so finding the non-zero voxels must cost about one pass over
memory. For one-byte arrays (bool, uint8, int8) the volume is scanned as 64-bit words — eight voxels per
comparison — and only the non-zero words are expanded back to voxels.
"""

from __future__ import annotations

import numpy as np

_WORD = 8  # bytes per uint64


def flat_nonzero(volume: np.ndarray) -> np.ndarray:
    """Flat (C-order) indices of the non-zero voxels of ``volume``, ascending, as int64.

    Equivalent to ``np.flatnonzero(volume)`` but several times faster for sparse one-byte arrays.
    """
    a = np.asarray(volume)
    if a.dtype.itemsize != 1 or a.dtype == np.dtype(object):
        return np.flatnonzero(a).astype(np.int64, copy=False)
    flat = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    n_main = (flat.size // _WORD) * _WORD
    words = flat[:n_main].view(np.uint64)
    hit_words = np.flatnonzero(words)
    if hit_words.size:
        block = flat[:n_main].reshape(-1, _WORD)[hit_words]  # (n_hits, 8) bytes
        w, b = np.nonzero(block)
        main = hit_words[w].astype(np.int64) * _WORD + b
    else:
        main = np.empty(0, dtype=np.int64)
    tail = np.flatnonzero(flat[n_main:]).astype(np.int64) + n_main
    return np.concatenate([main, tail]) if tail.size else main


def nonzero_kji(volume: np.ndarray) -> np.ndarray:
    """``(N, 3)`` int64 array indices ``(k, j, i)`` of the non-zero voxels (like ``np.argwhere``), C order."""
    flat = flat_nonzero(volume)
    return np.stack(np.unravel_index(flat, np.shape(volume)), axis=1).astype(np.int64, copy=False)
