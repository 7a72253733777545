"""Deterministic synthetic head-CT phantom with exact ground truth (the project's only data source).

Analytic anatomy (skin, skull, brain, skull base with petrous bones, carotid canals, sphenoid sinus, clinoids,
both ICAs with calcified plaques) evaluated at arbitrary world points, with partial volume, slice-thickness
profile, noise, head pose, optional head rest and gantry tilt. Imports only numpy/scipy.

Families (``make_phantom(seed, family=...)``): ``classic`` is the original generator; ``soft``, ``bone``,
``thick`` and ``aged`` are domain-randomised (tissue HU, reconstruction kernels, correlated noise, beam
hardening, dental metal, head shape and size, pneumatisation, atrophy, distractor calcifications, holders,
matrices, slice thickness, uneven spacing, tilt, oblique reformats) so that a benchmark can train on some
families and test on one never seen; see `style`.
"""

from .style import FAMILIES, FAMILY_RANGES, RANDOMISED_FAMILIES

__all__ = ["Phantom", "DicomStack", "make_phantom", "write_phantom", "generate_cases", "FAMILIES",
           "RANDOMISED_FAMILIES", "FAMILY_RANGES"]

_LAZY = {"Phantom": "generate", "make_phantom": "generate", "write_phantom": "generate",
         "generate_cases": "generate", "DicomStack": "dicom_stack"}


def __getattr__(name: str):
    """The generator (scipy, io) is imported on first use, so that the CLI can list the families cheaply."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
