"""Training cases made from the synthetic phantom families, prepared for both trainers in parallel processes.

One *job* is ``(seed, family)``: the phantom `iacseg.phantom.make_phantom(seed, family=…)` is made, brought to the
inference pre-processing (`iacseg.train.data.to_training_case`) and reduced to the segmenter's and the localiser's
cached tensors (`prepare_segmenter_case`, `prepare_landmark_case`). With a cache folder each prepared pair is kept
as a numpy ``.npz`` (`case_cache`, no pickle) keyed by everything it depends on — including a hash of the phantom
generator's source — so a re-run after an interruption does not make the phantoms again.

The "classic" family (the original generator) gets a gantry-tilted acquisition every ``tilt_every``-th seed, as the
shipped models always had; the randomised families draw their own tilts.
"""

from __future__ import annotations

import functools
import hashlib
import multiprocessing as mp
from pathlib import Path
from typing import Any, Callable, Sequence

TILT_EVERY = 7


def phantom_options(seed: int, family: str, tilt_every: int = TILT_EVERY) -> dict[str, Any]:
    """`make_phantom` keywords of one training phantom."""
    options: dict[str, Any] = {"family": family}
    if family == "classic" and seed % tilt_every == 3 % tilt_every:
        options["tilt_deg"] = float(10 + seed % 16)
    return options


def family_of(index: int, families: Sequence[str]) -> str:
    """Family of the ``index``-th seed of a range spread over ``families`` (round robin)."""
    return families[index % len(families)]


def check_families(families: Sequence[str]) -> None:
    """`ValueError` for an empty list or a name the phantom generator does not know."""
    from ..phantom import FAMILIES

    if not families:
        raise ValueError("give at least one phantom family")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown phantom families {unknown}; the generator knows {', '.join(FAMILIES)}")


@functools.lru_cache(maxsize=1)
def generator_hash() -> str:
    """Hash of the phantom generator's source: a cached case is stale once the generator changes."""
    from .. import phantom

    h = hashlib.sha256()
    for f in sorted(Path(phantom.__file__).parent.glob("*.py")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def cache_meta(seed: int, family: str, petrous_oversampling: int, tilt_every: int) -> dict[str, Any]:
    """Everything a prepared case depends on (checked when it is read back from the cache)."""
    from .landmarks import LANDMARK_DEFAULTS
    from .segmenter import SEGMENTER_DEFAULTS

    return {"seed": seed, "family": family, "options": phantom_options(seed, family, tilt_every),
            "petrous_oversampling": petrous_oversampling, "patch": SEGMENTER_DEFAULTS["patch"],
            "roi_jitter_mm": SEGMENTER_DEFAULTS["roi_jitter_mm"], "fov_mm": LANDMARK_DEFAULTS["fov_mm"],
            "size": LANDMARK_DEFAULTS["size"], "max_slices": LANDMARK_DEFAULTS["max_slices"],
            "generator": generator_hash()}


def make_case(seed: int, family: str, tilt_every: int = TILT_EVERY) -> Any:
    """The training `Case` of one phantom."""
    from ..phantom import make_phantom
    from .data import to_training_case

    ph = make_phantom(seed, **phantom_options(seed, family, tilt_every))
    return to_training_case(f"{family}_{seed:05d}", ph.ct, ph.labels, ph.landmarks)


def prepare_pair(job: tuple[int, str], petrous_oversampling: int = 1, tilt_every: int = TILT_EVERY,
                 cache: str | Path | None = None) -> tuple[Any, Any]:
    """``(SegmenterCase, LandmarkCase)`` of one ``(seed, family)`` job, from the cache when it is there."""
    import numpy as np
    import torch

    from ..models.localiser import DEFAULT_LOCALISER_INPUT
    from .case_cache import load_cases, save_cases
    from .landmarks import LANDMARK_DEFAULTS, LandmarkCase, prepare_landmark_case
    from .segmenter import SEGMENTER_DEFAULTS, SegmenterCase, prepare_segmenter_case

    torch.set_num_threads(1)
    seed, family = job
    meta = cache_meta(seed, family, petrous_oversampling, tilt_every)
    path = Path(cache) / f"{family}_{seed:05d}.npz" if cache else None
    kinds = {"segmenter": SegmenterCase, "landmarks": LandmarkCase}
    cached = load_cases(path, kinds, meta) if path else None
    if cached is not None:
        return cached["segmenter"], cached["landmarks"]
    case = make_case(seed, family, tilt_every)
    rng = np.random.default_rng(seed)
    seg = prepare_segmenter_case(case, SEGMENTER_DEFAULTS["patch"], rng, SEGMENTER_DEFAULTS["roi_jitter_mm"],
                                 petrous_oversampling=petrous_oversampling)
    lm_input = {**DEFAULT_LOCALISER_INPUT, "fov_mm": float(LANDMARK_DEFAULTS["fov_mm"]),
                "size": int(LANDMARK_DEFAULTS["size"])}
    lm = prepare_landmark_case(case, lm_input, int(LANDMARK_DEFAULTS["max_slices"]))
    if path:
        save_cases(path, {"segmenter": seg, "landmarks": lm}, meta)
    return seg, lm


def prepare_many(jobs: Sequence[tuple[int, str]], workers: int = 1, cache: str | Path | None = None,
                 petrous_oversampling: int = 1, tilt_every: int = TILT_EVERY,
                 report: Callable[[int, int], None] | None = None) -> list[tuple[Any, Any]]:
    """`prepare_pair` of every job, in ``workers`` processes (fork), in job order."""
    work = functools.partial(prepare_pair, petrous_oversampling=petrous_oversampling, tilt_every=tilt_every,
                             cache=None if cache is None else str(cache))
    out = []
    if workers <= 1:
        for n, job in enumerate(jobs):
            out.append(work(job))
            if report:
                report(n + 1, len(jobs))
        return out
    with mp.get_context("fork").Pool(workers) as pool:
        for n, item in enumerate(pool.imap(work, jobs, chunksize=1)):
            out.append(item)
            if report:
                report(n + 1, len(jobs))
    return out


def describe_jobs(jobs: Sequence[tuple[int, str]], tilt_every: int = TILT_EVERY) -> str:
    """The model card's data line: families with their seeds, tilted classic acquisitions."""
    by_family: dict[str, list[int]] = {}
    for seed, family in jobs:
        by_family.setdefault(family, []).append(seed)
    parts = []
    for family, seeds in by_family.items():
        listed = (f"{seeds[0]}, {seeds[1]}, …, {seeds[-1]}" if len(seeds) > 3 else ", ".join(map(str, seeds)))
        parts.append(f"{family}: {len(seeds)} (seeds {listed})")
    tilted = sum(1 for seed, family in jobs if "tilt_deg" in phantom_options(seed, family, tilt_every))
    seeds = [s for s, _ in jobs]
    return (f"{len(jobs)} synthetic head-CT phantoms (iacseg.phantom seeds {min(seeds)}–{max(seeds)}) from the "
            f"families {', '.join(by_family)} — {'; '.join(parts)}; {tilted} classic ones gantry-tilted 10–25° "
            "and resampled — synthetic data, not for clinical use")
