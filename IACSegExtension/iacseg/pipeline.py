"""The engine's flow for one case: read → preprocess → landmarks → segment → map → measure → write.

`segment_case` is what `iacseg segment`, `iacseg batch`, the Slicer module's background process and the
headless Slicer batch script all run. `relabel_case` re-runs only the cheap mapping (and measures) after a
reader moved landmarks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .core.plane import MidsagittalPlane
from .core.contracts import CALCIUM_HU
from .io.volume import CTVolume
from .core.grid import Grid
from .core.landmarks import Landmark, landmark_heights
from .core.progress import Progress, no_progress
from .core.threshold import model_threshold, parse_threshold


@dataclass
class SegmentOptions:
    """Options of `segment_case` (what ``iacseg segment`` and the Slicer module set)."""

    segmenter: str | Path | None = None  # model folder or name, or "nnunet:PATH[,…]"; None → the default model
    landmark_model: str | Path | None = None
    device: str = "auto"
    threshold: float | str | None = None  # None (or "auto") → the model's calibrated threshold (core.threshold)
    series_uid: str | None = None
    overwrite: bool = False
    overview_png: bool = False
    risk_cutpoints_mm3: list[float] | None = None
    keep_probability: bool = False  # put the probability map on vol.grid in info["probability"] (calibration)
    allow_gaps: bool = False  # read a DICOM series with missing slices (gap filled by interpolation, warned)


@dataclass
class CaseResult:
    """What `segment_case` computed (also written to the output folder)."""

    out_dir: Path
    report: dict[str, Any]
    labels: np.ndarray
    grid: Grid
    landmarks: dict[str, Landmark]
    plane: MidsagittalPlane
    warnings: list[str] = field(default_factory=list)
    qc: Any = None  # `iacseg.quality.QualityControl`


class _Stopwatch:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self._t, 3)
        self._t = now


def _describe(model: Any) -> dict[str, str]:
    return {"name": model.name, "version": model.version, "sha256": model.sha256}


@dataclass
class LoadedModels:
    """Both models of a run, loaded once on ``device`` (a batch reuses them for every case)."""

    segmenter: Any
    localiser: Any
    device: Any


def load_models(options: SegmentOptions) -> LoadedModels:
    """The segmenter (or a user's nnU-Net model) and the landmark localiser of ``options`` on its device."""
    from .core.device import resolve_device
    from .models.defaults import resolve_model
    from .models.localiser import LandmarkLocaliser
    from .models.nnunet_adapter import NnUNetSegmenter, is_nnunet_spec
    from .models.segmenter import CalcificationSegmenter

    device = resolve_device(options.device)
    if is_nnunet_spec(options.segmenter):  # a user's nnU-Net v2 model folder (optional extra [nnunet])
        segmenter: Any = NnUNetSegmenter.from_spec(str(options.segmenter), device=device)
    else:
        segmenter = CalcificationSegmenter.load(resolve_model(options.segmenter, "segmenter"), device=device)
    localiser = LandmarkLocaliser.load(resolve_model(options.landmark_model, "landmarks"), device=device)
    return LoadedModels(segmenter, localiser, device)


def probability_in_ct_box(prob_axial: np.ndarray, roi: tuple[slice, slice, slice], axial: Grid, ct: Grid,
                          device: Any = None) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """``(box, values)``: the probability on the CT grid, only in the CT-grid ``box`` (``[k, j, i]`` slices) that
    the ICA region ``roi`` (where ``prob_axial`` may be nonzero) reaches with one voxel of interpolation support;
    it is 0 elsewhere. Voxel for voxel what resampling the whole volume gives there, at the cost of the box only.
    """
    from .preprocess import resample_box

    support = tuple(slice(*s.indices(n)[:2]) for s, n in zip(roi, prob_axial.shape))
    return resample_box(prob_axial, axial, ct, order=1, fill=0.0, support=support, device=device)


def _quality(vol: CTVolume, axial: CTVolume, head: Any, plane: MidsagittalPlane, landmarks: dict[str, Landmark],
             prior: Any) -> Any:
    """The case's `QualityControl`: landmarks, coverage per segment, slices, contrast, head, symmetry."""
    from .quality import Reason, beyond_scan, case_coverage, contrast_enhanced, head_found, landmark_reasons
    from .quality import quality_control, thick_slices

    clinoid = min(landmarks[f"{s}_anterior_clinoid"].z_mm for s in ("L", "R"))
    reasons = landmark_reasons(landmarks, prior is not None)
    reasons += [thick_slices(vol), contrast_enhanced(axial, head, clinoid), head_found(head)]
    if plane.details.get("warning"):
        reasons.append(Reason("weak_symmetry", "review", str(plane.details["warning"])))
    beyond = beyond_scan(prior.outside_scan) if prior is not None else []
    return quality_control(case_coverage(axial, landmarks), reasons, beyond)


def check_models(options: SegmentOptions) -> None:
    """Resolve both model folders and check them (`iacseg.models.loading.check_model_folder`) before any CT is
    read, so a damaged or wrong model is one clear refusal at once, not an error after reading (or per case)."""
    from .models.nnunet_adapter import is_nnunet_spec
    from .models.defaults import resolve_model
    from .models.loading import check_model_folder

    check_model_folder(resolve_model(options.landmark_model, "landmarks"), "landmarks")
    if not is_nnunet_spec(options.segmenter):
        check_model_folder(resolve_model(options.segmenter, "segmenter"), "segmenter")


def segment_volume(vol: CTVolume, options: SegmentOptions, progress: Progress = no_progress,
                   models: LoadedModels | None = None,
                   ) -> tuple[np.ndarray, dict[str, Landmark], MidsagittalPlane, dict[str, Any]]:
    """Run preprocessing, both models, thresholding and mapping on an already-read CT.

    Returns ``(labels uint8 [k,j,i] on vol.grid, landmarks, midsagittal plane, info)`` where ``info`` holds
    timings, model descriptions, the threshold used, warnings, the quality control (``info["qc"]``,
    `iacseg.quality.QualityControl`) and the bone prior of the landmarks. Raises `InputError` only for input that
    cannot be processed at all (no head, a body CT); the landmarks are always in anatomical order. ``models``:
    already loaded models (`load_models`; a batch loads them once), else they are loaded here.
    """
    from .mapping import segment_labels
    from .models.postprocess import calcium_mask
    from .preprocess import (analyse_head, ica_region, landmark_prior, midsagittal_plane, outside_ica_corridor,
        to_axial_lps)
    from .quality import refuse_unprocessable

    threshold = parse_threshold(options.threshold)
    watch = _Stopwatch()
    models = models or load_models(options)
    segmenter, localiser, device = models.segmenter, models.localiser, models.device
    watch.lap("load_models")

    progress("preprocess", 0.0, "orienting to LPS")
    axial = to_axial_lps(vol, device=device)
    head = analyse_head(axial, device)
    refuse_unprocessable(axial, head)
    progress("preprocess", 0.5, "finding the midsagittal plane")
    plane = midsagittal_plane(axial, device=device, head=head)
    prior = landmark_prior(axial, plane, analysis=head)
    watch.lap("preprocess")

    progress("landmarks", 0.0, "locating the six landmarks")
    landmarks = localiser.predict(axial, plane, progress=progress, prior=prior)
    watch.lap("landmarks")

    progress("segment", 0.0, "calcification probability")
    roi = ica_region(axial, plane, landmarks)
    prob = segmenter.predict_proba(axial, roi, progress=progress)
    thr = model_threshold(segmenter.config) if threshold is None else threshold
    watch.lap("segment")

    progress("mapping", 0.0, "labelling ICA segments")
    prob_ct = prob
    if axial.grid.same_geometry(vol.grid):
        # the probability is 0 outside the ICA region, so only that box can hold calcium
        mask = np.zeros(vol.hu.shape, dtype=bool)
        mask[roi] = calcium_mask(prob[roi], vol.hu[roi], thr, min_hu=CALCIUM_HU)
    else:  # tilted/oblique/permuted CT grid: resample and threshold only the CT-grid box the ICA region reaches
        box, prob_box = probability_in_ct_box(prob, roi, axial.grid, vol.grid, device=device)
        mask = np.zeros(vol.hu.shape, dtype=bool)
        mask[box] = calcium_mask(prob_box, vol.hu[box], thr, min_hu=CALCIUM_HU)
        if options.keep_probability:
            prob_ct = np.zeros(vol.hu.shape, dtype=np.float32)
            prob_ct[box] = prob_box
    heights = landmark_heights(landmarks)
    outside = outside_ica_corridor(mask, vol.grid, plane, heights)
    for where in outside.values():
        mask &= ~where
    labels = segment_labels(mask, vol.grid, plane, heights)
    watch.lap("mapping")

    warnings = list(vol.metadata.get("warnings", []))
    qc = _quality(vol, axial, head, plane, landmarks, prior)
    watch.lap("quality")
    for lm in landmarks.values():  # the landmark's slice on the CT grid, for readers
        lm.extra["ct_index_k"] = float(vol.grid.world_to_index(np.asarray(lm.position))[2])
    info = {
        "timings_s": watch.timings,
        "threshold": thr,
        "threshold_source": "model calibration" if threshold is None else "user",
        "models": {"segmenter": _describe(segmenter), "landmarks": _describe(localiser)},
        "roi_kji": [[s.start, s.stop] for s in roi],
        "outside_ica_voxels": {where: int(m.sum()) for where, m in outside.items()},
        "device": str(device),
        "warnings": warnings,
        "qc": qc,
        "landmark_prior": None if prior is None else prior.to_dict(),
    }
    if options.keep_probability:  # float32 [k, j, i] on vol.grid, 0 outside the ICA region
        info["probability"] = prob_ct
    return labels, landmarks, plane, info


def segment_case(input_path: str | Path, out_dir: str | Path, options: SegmentOptions | None = None,
                 progress: Progress = no_progress, models: LoadedModels | None = None) -> CaseResult:
    """Segment one CT and write the contract outputs to ``out_dir`` (atomically).

    The output folder is checked first (`iacseg.core.folder_guard.check_output_folder`: not the input's folder,
    not a user's folder, writable, room, name length), so a bad ``out_dir`` fails before any computation.
    Nothing is written when anything fails: the output folder appears only complete. ``models``: already loaded
    models (`load_models`); a batch (`iacseg.batch`) runs the same three steps (read, `analyse_case`,
    `write_case`) with the reading and writing overlapped with the next case's computation.
    """
    from .core.folder_guard import check_output_folder
    from .io import read_ct

    options = options or SegmentOptions()
    # before anything is read or computed: never an input, the current/home folder or a user's folder; room to write
    out_dir = check_output_folder(out_dir, inputs=[input_path], overwrite=options.overwrite)
    if models is None:
        check_models(options)
    t0 = time.perf_counter()
    progress("read", 0.0, f"reading {Path(input_path).name}")
    vol = read_ct(input_path, series_uid=options.series_uid, allow_gaps=options.allow_gaps)
    analysis = analyse_case(vol, input_path, options, progress, models, read_s=time.perf_counter() - t0)
    return write_case(analysis, out_dir, options, progress)


@dataclass
class CaseAnalysis:
    """Everything of one case but its files: what `write_case` writes."""

    input_path: Path
    vol: CTVolume
    labels: np.ndarray
    landmarks: dict[str, Landmark]
    plane: MidsagittalPlane
    report: dict[str, Any]
    qc: Any
    started: float  # time.perf_counter() when its work began (reading included)


def analyse_case(vol: CTVolume, input_path: str | Path, options: SegmentOptions, progress: Progress = no_progress,
                 models: LoadedModels | None = None, read_s: float = 0.0) -> CaseAnalysis:
    """Models, mapping, quality control, measures and the report of a CT already read (``read_s``: how long
    reading took, for the report's timings)."""
    from .measure import measure_case
    from .outputs import build_report
    from .quality import apply_assessability

    t0 = time.perf_counter() - read_s
    labels, landmarks, plane, info = segment_volume(vol, options, progress, models)

    progress("measure", 0.0, "volumes and scores")
    t1 = time.perf_counter()
    measures = measure_case(labels, vol.hu, vol.grid, risk_cutpoints_mm3=options.risk_cutpoints_mm3)
    apply_assessability(measures, info["qc"])
    info["timings_s"] = {"read": round(read_s, 3), **info["timings_s"], "measure": round(time.perf_counter() - t1, 3)}
    timings = {**info["timings_s"], "total_before_write": round(time.perf_counter() - t0, 3)}
    report = build_report(measures=measures, landmarks=landmarks, plane=plane, models=info["models"],
                          timings=timings, warnings=info["warnings"], acquisition=vol.metadata, grid=vol.grid,
                          input_path=Path(input_path),
                          extra={"threshold": info["threshold"], "threshold_source": info["threshold_source"],
                                 "roi_kji": info["roi_kji"], "outside_ica_voxels": info["outside_ica_voxels"],
                                 "device": info["device"],
                                 "qc": info["qc"].to_dict(), "landmark_prior": info["landmark_prior"]})
    return CaseAnalysis(Path(input_path), vol, labels, landmarks, plane, report, info["qc"], t0)


def write_case(analysis: CaseAnalysis, out_dir: str | Path, options: SegmentOptions,
               progress: Progress = no_progress) -> CaseResult:
    """Write the five contract files of ``analysis`` into ``out_dir`` atomically; the report gets its write and
    total times."""
    from .outputs import write_case_outputs

    a = analysis
    progress("write", 0.0, "writing outputs")
    t2 = time.perf_counter()
    write_case_outputs(Path(out_dir), labels=a.labels, grid=a.vol.grid, landmarks=a.landmarks, report=a.report,
                       overwrite=options.overwrite, hu=a.vol.hu if options.overview_png else None)
    a.report["timings_s"]["write"] = round(time.perf_counter() - t2, 3)
    a.report["timings_s"]["total"] = round(time.perf_counter() - a.started, 3)
    progress("done", 1.0, f"wrote {out_dir}")
    return CaseResult(Path(out_dir), a.report, a.labels, a.vol.grid, a.landmarks, a.plane, a.report["warnings"], a.qc)
