"""Where the ``iacseg`` engine is and how to start it: the Python that runs it and the child's environment.

The engine is either installed in Slicer's Python (pip), bundled next to the module (``IACSegEngine/``,
copied there by the module's CMakeLists), or in the source checkout (``../IACSegExtension``). The module
process itself never changes ``os.environ``: the engine folder goes into the *child's* ``PYTHONPATH`` and,
for the in-process mapping step, into ``sys.path``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

BUNDLED_ENGINE_DIR = "IACSegEngine"


def engine_source_dir(module_dir: str | Path) -> Path | None:
    """The folder holding an ``iacseg/`` package next to the module (bundled or source checkout), if any."""
    module_dir = Path(module_dir)
    for candidate in (module_dir / BUNDLED_ENGINE_DIR, module_dir.parent / "IACSegExtension"):
        if (candidate / "iacseg" / "__init__.py").is_file():
            return candidate
    return None


def engine_installed() -> bool:
    """True when ``import iacseg`` works in this Python (installed or already on ``sys.path``)."""
    return importlib.util.find_spec("iacseg") is not None


def make_engine_importable(module_dir: str | Path) -> bool:
    """Put a bundled/source engine on ``sys.path`` when it is not installed; True when ``iacseg`` is importable."""
    if engine_installed():
        return True
    source = engine_source_dir(module_dir)
    if source is None:
        return False
    if str(source) not in sys.path:
        sys.path.insert(0, str(source))
    return engine_installed()


def child_environment(module_dir: str | Path, base_pythonpath: str | None = None) -> dict[str, str]:
    """Environment entries to add for the engine's process (``PYTHONPATH`` with the bundled engine, if any)."""
    source = engine_source_dir(module_dir)
    if source is None:
        return {}
    parts = [str(source)] + ([base_pythonpath] if base_pythonpath else [])
    return {"PYTHONPATH": os.pathsep.join(parts)}


def python_executable() -> str:
    """The Python that runs the engine: ``PythonSlicer`` inside Slicer, else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable
