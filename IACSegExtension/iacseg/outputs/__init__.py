"""outputs stage: the contract files of an output folder (label map, .seg.nrrd, markups, report), atomically."""

from .markups import read_landmarks, write_landmarks

__all__ = ["build_report", "read_landmarks", "write_case_outputs", "write_landmarks"]


def __getattr__(name: str):  # SimpleITK/slicerio are imported only when outputs are written
    if name == "write_case_outputs":
        from .writer import write_case_outputs

        return write_case_outputs
    if name == "build_report":
        from .report import build_report

        return build_report
    raise AttributeError(name)
