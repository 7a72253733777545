"""Slice-thickness simulation for the landmark localiser: a thin-slice view becomes a thick-slice one.

Groups of ``m`` adjacent slices, starting at slice ``phase``, are averaged into one slice (incomplete groups at
the ends are dropped). In units of the thin slices (slice d's centre at d), thick slice g's centre lies at
``phase + g·m + (m − 1)/2``: the thick grid has origin z0' = z0 + (phase + (m − 1)/2)·sk and spacing m·sk. The
targets are recomputed on it with the localiser's own convention (`landmark_target_slice`:
k* = ceil((z − z0')/sk'); the plane of slice k is z0' + (k − 0.5)·sk'), from each landmark's exact position
``(z − z0)/sk`` in thin slices, and the model is given the spacing m·sk.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..models.localiser import landmark_target_slice


def thick_grid(n_slices: int, m: int, phase: int) -> tuple[int, float]:
    """``(number of thick slices, centre of thick slice 0 in thin-slice units)``."""
    return max(0, (n_slices - phase) // m), phase + (m - 1) / 2.0


def thicken(view: np.ndarray, positions: Sequence[float], m: int,
            phase: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(thick view float32 [G, ...], positions in thick slices, targets [int64, clipped to 0..G−1])``.

    ``positions``: each landmark's (z − z0)/sk in thin slices of ``view`` (its target there is ceil(position))."""
    if m < 1 or not 0 <= phase < max(m, 1):
        raise ValueError(f"need m ≥ 1 and 0 ≤ phase < m, got m={m}, phase={phase}")
    n, first = thick_grid(view.shape[0], m, phase)
    if n < 1:
        raise ValueError(f"{view.shape[0]} slices hold no complete group of {m}")
    block = view[phase:phase + n * m].astype(np.float32)
    thick = block.reshape(n, m, *view.shape[1:]).mean(axis=1, dtype=np.float32)
    pos = (np.asarray(positions, dtype=np.float64) - first) / m
    targets = np.array([landmark_target_slice(float(p), 0.0, 1.0) for p in pos], dtype=np.int64)
    return thick, pos, np.clip(targets, 0, n - 1)


def choose_thickness(rng: np.random.Generator, n_slices: int, spacing_mm: float, max_mm: float = 10.0,
                     m_range: tuple[int, int] = (2, 4), min_slices: int = 8) -> tuple[int, int] | None:
    """A random ``(m, phase)`` giving slices of at most ``max_mm`` and at least ``min_slices`` of them, or None."""
    allowed = [m for m in range(m_range[0], m_range[1] + 1)
               if m * spacing_mm <= max_mm + 1e-6 and n_slices // m >= min_slices]
    if not allowed:
        return None
    m = int(allowed[int(rng.integers(len(allowed)))])
    phase = int(rng.integers(m))
    if thick_grid(n_slices, m, phase)[0] < min_slices:
        phase = 0
    return m, phase
