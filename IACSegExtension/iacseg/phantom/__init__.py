"""Deterministic synthetic head-CT phantom with exact ground truth (the project's only data source).

Analytic anatomy (skin, skull, brain, skull base with petrous bones, carotid canals, sphenoid sinus, clinoids,
both ICAs with calcified plaques) evaluated at arbitrary world points, with partial volume, slice-thickness
profile, noise, head pose, optional head rest and gantry tilt. Imports only numpy/scipy.
"""

from .dicom_stack import DicomStack
from .generate import Phantom, generate_cases, make_phantom, write_phantom

__all__ = ["Phantom", "DicomStack", "make_phantom", "write_phantom", "generate_cases"]
