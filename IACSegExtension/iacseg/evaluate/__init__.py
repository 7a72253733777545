"""evaluate stage: agreement of predictions with truth (metrics are pure; folders read images with SimpleITK).

Also interval statistics (`bootstrap`), breakdowns by slice thickness / lesion size / risk group (`breakdown`),
threshold calibration (`calibrate`) and figures (`plots`, matplotlib imported only when drawing).
"""

from .bootstrap import bland_altman, bootstrap_ci, metric_intervals
from .breakdown import by_lesion_size, by_slice_thickness, lesion_detection, risk_group_accuracy
from .calibrate import calibrate_model, calibrate_threshold, write_calibration
from .metrics import case_metrics, label_accuracy, landmark_errors, overlap_metrics, volume_metrics

__all__ = ["bland_altman", "bland_altman_png", "bootstrap_ci", "by_lesion_size", "by_slice_thickness",
           "calibrate_model", "calibrate_threshold", "case_metrics", "evaluate_folders", "evaluation_plots",
           "format_summary", "label_accuracy", "landmark_errors", "lesion_detection", "metric_intervals",
           "overlap_metrics", "risk_group_accuracy", "segment_volumes_png", "volume_metrics", "write_calibration"]


def __getattr__(name: str):  # keep SimpleITK and matplotlib out of `import iacseg.evaluate` until they are needed
    if name in ("evaluate_folders", "format_summary"):
        from . import folders

        return getattr(folders, name)
    if name in ("bland_altman_png", "evaluation_plots", "segment_volumes_png"):
        from . import plots

        return getattr(plots, name)
    raise AttributeError(name)
