"""measure stage: per-segment and total volume, Agatston-style and mass scores, lesions, risk group."""

from .agatston import agatston_by_label, density_weight
from .case import DEFAULT_MASS_CALIBRATION, measure_case
from .lesions import lesion_stats, lesion_table
from .risk import DEFAULT_CUTPOINTS_MM3, risk_group

__all__ = ["DEFAULT_CUTPOINTS_MM3", "DEFAULT_MASS_CALIBRATION", "agatston_by_label", "density_weight",
           "lesion_stats", "lesion_table", "measure_case", "risk_group"]
