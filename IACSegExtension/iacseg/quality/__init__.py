"""Quality control of one result (runs after measuring, before writing): which segments the scan covers, what
about the scan or the landmarks needs a reader's eye, and the case status ``ok`` / ``review`` / ``unusable``.
Also the one refusal of input that cannot be processed at all (no head, a body CT)."""

from .coverage import ASSESSABLE_FRACTION, SideCoverage, beyond_scan, case_coverage, scanned_z_range
from .scan_checks import Reason, contrast_enhanced, head_found, refuse_unprocessable, thick_slices
from .status import QualityControl, apply_assessability, landmark_reasons, quality_control

__all__ = ["ASSESSABLE_FRACTION", "SideCoverage", "beyond_scan", "case_coverage", "scanned_z_range", "Reason",
           "contrast_enhanced", "head_found", "refuse_unprocessable", "thick_slices", "QualityControl",
           "apply_assessability", "landmark_reasons", "quality_control"]
