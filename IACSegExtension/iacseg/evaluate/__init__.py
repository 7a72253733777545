"""evaluate stage: agreement of predictions with truth (metrics are pure; folders read images with SimpleITK)."""

from .metrics import case_metrics, label_accuracy, landmark_errors, overlap_metrics, volume_metrics

__all__ = ["case_metrics", "evaluate_folders", "format_summary", "label_accuracy", "landmark_errors", "overlap_metrics",
           "volume_metrics"]


def __getattr__(name: str):  # keep SimpleITK out of `import iacseg.evaluate` until folders are evaluated
    if name in ("evaluate_folders", "format_summary"):
        from . import folders

        return getattr(folders, name)
    raise AttributeError(name)
