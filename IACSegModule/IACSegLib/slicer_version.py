"""Which 3D Slicer versions IACSeg supports, checked once when the module loads.

IACSeg needs Slicer 5.12 or later: it installs its Python requirements with ``slicer.packaging.pip_ensure``
(added in 5.12) and runs the engine with ``slicer.util.launchConsoleProcess(blocking=False, ...)`` (the
``blocking``/``logCallback``/``completedCallback`` arguments are new in 5.12). Pure Python without any Slicer
import, so it is testable anywhere; the module passes ``slicer.app`` in.
"""

from __future__ import annotations

import re

MINIMUM_VERSION = (5, 12)
DOWNLOAD_URL = "https://download.slicer.org"


def slicer_version(app) -> tuple[int, int] | None:
    """(major, minor) of the running Slicer from ``app.majorVersion``/``minorVersion`` (Q_PROPERTYs of
    qSlicerCoreApplication), else from ``app.applicationVersion`` ("5.12.1", "5.13.0-2026-08-21"); None if unknown."""
    major, minor = getattr(app, "majorVersion", None), getattr(app, "minorVersion", None)
    if isinstance(major, int) and isinstance(minor, int):
        return major, minor
    match = re.match(r"\s*(\d+)\.(\d+)", str(getattr(app, "applicationVersion", "") or ""))
    return (int(match.group(1)), int(match.group(2))) if match else None


def unsupported_message(app) -> str | None:
    """One clear message when this Slicer is older than `MINIMUM_VERSION`; None when it is supported (or unknown:
    the module then loads as usual rather than refusing a Slicer it cannot read the version of)."""
    version = slicer_version(app)
    if version is None or version >= MINIMUM_VERSION:
        return None
    needed = "%d.%d" % MINIMUM_VERSION
    return (f"IACSeg needs 3D Slicer {needed} or later; this is Slicer {version[0]}.{version[1]}. "
            f"It installs its Python packages with slicer.packaging and runs the engine with non-blocking "
            f"slicer.util.launchConsoleProcess, both new in Slicer {needed}: Segment will not work here. "
            f"Install Slicer {needed} or later from {DOWNLOAD_URL} and IACSeg from its Extensions Manager.")
