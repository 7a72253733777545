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


# --- Dependencies in Slicer's Python -------------------------------------------------------------------------
# torch is never pip-installed by the module: a plain ``pip install monai`` (or torch) takes PyPI's default torch
# build (CUDA on Linux, whatever the machine's driver) and can replace the build that the PyTorch extension chose.
# So torch comes first and only from the PyTorch extension's installer (``PyTorchUtils``); the rest is then
# installed with a constraints file that pins the installed torch, so pip can neither add nor replace it (it picks
# a compatible monai instead). In Slicer's testing mode nothing is installed at all (extension build/test machines).

TORCH_REQUIREMENT = ">=2.2"  # the engine's torch requirement (pyproject.toml)
TORCH_DISTRIBUTIONS = frozenset({"torch", "torchvision", "torchaudio"})  # only the PyTorch extension installs these
REQUESTER = "IACSeg"
PYTORCH_EXTENSION_MODULE = "PyTorchUtils"  # the PyTorch extension's module, which has the torch installer


def _distribution_name(requirement) -> str:
    """Canonical distribution name of a requirement (a string or a ``packaging`` Requirement)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    name = requirement.name if hasattr(requirement, "name") else Requirement(str(requirement)).name
    return canonicalize_name(name)


def installed_version(distribution: str) -> str | None:
    """Installed version of a distribution, read from its metadata (the package is not imported); None if absent."""
    import importlib.metadata

    importlib.invalidate_caches()  # torch may have been installed a moment ago, in this process
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def torch_satisfied(version: str | None, requirement: str = TORCH_REQUIREMENT) -> bool:
    """True when an installed torch ``version`` (e.g. ``2.5.1+cu121``) meets ``requirement``."""
    if version is None:
        return False
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version) in SpecifierSet(requirement)
    except InvalidVersion:
        return False


def missing_distributions(requirements) -> list[str]:
    """The distributions of ``requirements`` (plus torch) that are not installed, by name (metadata only)."""
    names = ["torch"] + [_distribution_name(r) for r in requirements]
    return sorted({n for n in names if installed_version(n) is None})


def non_torch_requirements(requirements) -> list:
    """The requirements without torch/torchvision/torchaudio (those come from the PyTorch extension only)."""
    return [r for r in requirements if _distribution_name(r) not in TORCH_DISTRIBUTIONS]


def torch_constraints_text(version: str) -> str:
    """A pip constraints file that keeps the installed torch build (``torch==2.5.1+cu121``) as it is."""
    return f"torch=={version}\n"


def ensure_dependencies(requirements, *, testing: bool, ask: bool, install_torch, pip_ensure,
                        version_of=None) -> list[str]:
    """Make the engine's requirements importable in Slicer's Python: torch first, from the PyTorch extension.

    - ``testing`` (Slicer's ``--testing``, e.g. the extension build/test machines): installs nothing, returns ``[]``.
    - ``install_torch(ask, requirement)``: the PyTorch extension's installer (``PyTorchUtilsLogic().installTorch``),
      called only when torch is missing or older than `TORCH_REQUIREMENT`; it returns None when the user declined.
    - ``pip_ensure(requirements, constraints=..., prompt_install=..., requester=..., skip_in_testing=True)``:
      ``slicer.packaging.pip_ensure``, given the non-torch requirements and a constraints file pinning the torch
      that is now installed.
    - ``version_of(distribution)``: installed version or None (default `installed_version`: metadata only, nothing
      is imported).

    Returns the steps taken, in order: ``"torch"`` when the PyTorch extension installed torch, ``"pip"`` for the
    call to ``pip_ensure``. Raises RuntimeError when torch is still missing (declined, or no PyTorch extension).
    """
    if testing:
        return []
    version_of = version_of or installed_version
    steps: list[str] = []
    if not torch_satisfied(version_of("torch")):
        try:
            installed = install_torch(ask, TORCH_REQUIREMENT)
        except ModuleNotFoundError as error:
            if error.name != PYTORCH_EXTENSION_MODULE:
                raise
            raise RuntimeError("IACSeg needs the PyTorch extension to install PyTorch: install it from the "
                               "Extensions Manager and restart Slicer") from error
        if installed is None:
            raise RuntimeError("IACSeg needs PyTorch: install it from the PyTorch extension (module PyTorch Utils)")
        steps.append("torch")
    version = version_of("torch")
    if not torch_satisfied(version):
        raise RuntimeError(f"IACSeg needs PyTorch {TORCH_REQUIREMENT}; found {version or 'none'} after installing")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="IACSeg-pip-") as folder:
        constraints = Path(folder) / "constraints.txt"
        constraints.write_text(torch_constraints_text(version))
        pip_ensure(non_torch_requirements(requirements), constraints=str(constraints), prompt_install=ask,
                   requester=REQUESTER, skip_in_testing=True)
    steps.append("pip")
    return steps
