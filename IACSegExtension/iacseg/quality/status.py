"""The case-level quality-control status of one result: ``ok``, ``review`` or ``unusable``, with reasons.

Reasons (code — severity):

* ``low_landmark_confidence`` — review: a landmark's posterior mass within ±1 slice is below 0.5;
* ``landmark_prior_disagreement`` — review: a landmark lies more than max(10 mm, 2.5 σ) from the height the bone
  prior expects (`iacseg.preprocess.landmark_prior`);
* ``landmark_from_prior`` — review: the network was unsure and the landmark rests on the bone prior;
* ``no_landmark_prior`` — review: the skull base could not be found in the bone, so nothing cross-checks the
  landmarks;
* ``incomplete_coverage`` — review (unusable when no segment is left): the scan does not cover the named
  segments (`coverage`: at the landmarks' columns, or beyond a landmark the bone puts outside the scan); they are
  reported *not assessable*;
* ``thick_slices``, ``contrast_enhanced``, ``not_head_ct`` — from `scan_checks`;
* ``weak_symmetry`` — review: the hemispheres are hard to tell apart, so left/right may be wrong.

The status is the most severe reason's severity, ``ok`` when there is none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..core.contracts import LANDMARKS, SEGMENTS
from .coverage import SideCoverage, not_assessable, segment_fractions
from .scan_checks import Reason

LOW_CONFIDENCE = 0.5
PRIOR_DISAGREEMENT_MM = 10.0
PRIOR_DISAGREEMENT_SIGMAS = 2.5
SEVERITY_ORDER = ("ok", "review", "unusable")


@dataclass
class QualityControl:
    status: str
    reasons: list[Reason] = field(default_factory=list)
    not_assessable: list[str] = field(default_factory=list)
    fractions: dict[str, float] = field(default_factory=dict)
    coverage: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reasons": [r.to_dict() for r in self.reasons],
                "not_assessable": list(self.not_assessable), "coverage": self.coverage}


def landmark_reasons(landmarks: Mapping[str, Any], prior_found: bool) -> list[Reason]:
    """Reasons about the six automatic landmarks (`Landmark` with the localiser's ``extra``)."""
    reasons: list[Reason] = []
    low = [f"{n} ({landmarks[n].confidence:.2f})" for n in LANDMARKS if landmarks[n].confidence < LOW_CONFIDENCE]
    if low:
        reasons.append(Reason("low_landmark_confidence", "review", f"low landmark confidence: {', '.join(low)}; "
                              "check these landmarks"))
    far = []
    for n in LANDMARKS:
        extra = landmarks[n].extra
        if extra.get("prior_z_mm") is None:
            continue
        limit = max(PRIOR_DISAGREEMENT_MM, PRIOR_DISAGREEMENT_SIGMAS * float(extra.get("prior_sigma_mm", 0.0)))
        d = float(landmarks[n].z_mm) - float(extra["prior_z_mm"])
        if abs(d) > limit:
            far.append(f"{n} {d:+.0f} mm")
    if far:
        reasons.append(Reason("landmark_prior_disagreement", "review", "landmarks far from where the skull base "
                              f"bone puts them: {', '.join(far)}; check these landmarks"))
    from_prior = [n for n in LANDMARKS if landmarks[n].extra.get("source") == "prior"]
    if from_prior:
        reasons.append(Reason("landmark_from_prior", "review", f"the landmark network was unsure of "
                              f"{', '.join(from_prior)}: placed from the skull-base bone; check them"))
    if not prior_found:
        reasons.append(Reason("no_landmark_prior", "review", "the skull base was not found in the bone, so the "
                              "landmarks could not be cross-checked"))
    return reasons


def coverage_reason(missing: list[str]) -> Reason | None:
    if not missing:
        return None
    if len(missing) == len(SEGMENTS):
        return Reason("incomplete_coverage", "unusable", "the scan does not cover the skull base from below the "
                      "carotid canals to above the clinoids: no ICA segment can be assessed")
    return Reason("incomplete_coverage", "review", "the scan does not cover every ICA segment; not assessable: "
                  f"{', '.join(missing)}")


def quality_control(coverage: Mapping[str, SideCoverage], reasons: list[Reason | None],
                    beyond: Sequence[str] = ()) -> QualityControl:
    """Combine the coverage and the other checks' reasons (None entries are skipped) into the case status.
    ``beyond``: segments the skull-base bone puts outside the scan (`coverage.beyond_scan`); they are not
    assessable (scanned fraction 0) whatever the landmark heights say."""
    fractions = segment_fractions(coverage)
    fractions.update({name: 0.0 for name in beyond})
    missing = not_assessable(fractions)
    all_reasons = [r for r in reasons if r is not None]
    cov = coverage_reason(missing)
    if cov is not None:
        all_reasons.append(cov)
    status = "ok"
    for r in all_reasons:
        if SEVERITY_ORDER.index(r.severity) > SEVERITY_ORDER.index(status):
            status = r.severity
    detail = {side: {"scanned_z_mm": None if c.z_range_mm is None else list(c.z_range_mm),
                     "segment_z_mm": {p: list(r) for p, r in c.segment_range_mm.items()},
                     "scanned_fraction": {p: fractions[f"{side}_{p}"] for p in c.fraction},
                     "outside_scan_by_bone": [p for p in c.fraction if f"{side}_{p}" in beyond],
                     "landmarks_at_scan_edge": list(c.at_edge)}
              for side, c in coverage.items()}
    return QualityControl(status, all_reasons, missing, fractions, detail)


def apply_assessability(measures: dict[str, Any], qc: QualityControl) -> dict[str, Any]:
    """Mark each segment's measures ``assessable`` (with its scanned fraction); a not-assessable segment keeps its
    voxels' volume as ``scanned_volume_mm3`` and reports null measures. ``total.complete`` says whether every
    segment was assessable (the total counts every labelled voxel either way). Changes ``measures`` in place."""
    keys = ("volume_mm3", "agatston", "mass_mg", "lesion_count", "peak_hu", "mean_hu")
    for name, row in measures["segments"].items():
        ok = name not in qc.not_assessable
        row["assessable"] = ok
        row["coverage_fraction"] = round(float(qc.fractions.get(name, 1.0)), 4)
        if not ok:
            row["scanned_volume_mm3"] = row["volume_mm3"]
            for k in keys:
                row[k] = None
    measures["total"]["complete"] = not qc.not_assessable
    return measures
