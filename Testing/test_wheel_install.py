"""A wheel built from the repository works on its own: it carries the shipped models (package data), and once
installed in a fresh virtual environment it segments a phantom with them — without the source checkout.

Offline: the wheel is built with the setuptools of this environment (``--no-build-isolation --no-index``) from a
copy of the sources, installed with ``--no-deps``; the fresh environment borrows this one's packages (torch,
monai…) through a ``.pth`` line, which does not run this environment's own ``.pth`` files, so the editable
``iacseg`` of the checkout is not importable there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from iacseg.core.contracts import LABELS_FILE, LANDMARKS_FILE, REPORT_CSV, REPORT_JSON, SEGMENTATION_FILE

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "IACSegExtension" / "iacseg" / "models" / "shipped"
MODEL_FILES = ("model.safetensors", "config.json", "MODEL_CARD.md")
MAX_WHEEL_MB = 20  # code + the two demo models (about 7.5 MB); far more means something unintended was packed

pytestmark = pytest.mark.slow

PROBE = """
import json, sys
import iacseg
from iacseg.core.locations import shipped_models_dir
print(json.dumps({"file": iacseg.__file__, "shipped": str(shipped_models_dir()), "path": sys.path}))
"""


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


def _copy_sources(dest: Path) -> Path:
    """What the build needs (pyproject, README, licence, the package), without caches or build leftovers."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "setup.py", "setup.cfg", "MANIFEST.in"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "IACSegExtension", dest / "IACSegExtension",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build"))
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools")
    pytest.importorskip("wheel")
    tmp = tmp_path_factory.mktemp("wheel")
    source = _copy_sources(tmp / "src")
    _run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "--no-index",
          "-w", str(tmp / "dist"), "-q"], cwd=tmp, env=dict(os.environ, PIP_NO_INPUT="1"))
    (built,) = (tmp / "dist").glob("iacseg-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """``(python of a new venv with only the wheel's iacseg installed, its environment)``."""
    tmp = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], cwd=tmp, env=dict(os.environ))
    python = tmp / "venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
          str(wheel)], cwd=tmp, env=dict(os.environ, PIP_NO_INPUT="1"))
    # this environment's packages (torch, monai, SimpleITK…) behind the venv's own site-packages
    site_packages = json.loads(_run([str(python), "-c", "import json, sysconfig; "
                                     "print(json.dumps(sysconfig.get_paths()['purelib']))"], tmp, {}).stdout)
    ours = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (Path(site_packages) / "zz_iacseg_test_dependencies.pth").write_text("\n".join(ours) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "IACSEG_MODEL_PATH")}
    env.update(IACSEG_HOME=str(tmp / "home"), PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1")
    return python, env


def test_the_wheel_carries_the_shipped_models(wheel):
    assert wheel.stat().st_size < MAX_WHEEL_MB << 20, f"{wheel.name} is {wheel.stat().st_size >> 20} MB"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for model in ("unet-demo", "dst-demo"):
            for file in MODEL_FILES:
                member = f"iacseg/models/shipped/{model}/{file}"
                assert member in names, member
                assert zf.getinfo(member).file_size == (SHIPPED / model / file).stat().st_size
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_a_wheel_install_in_a_fresh_venv_segments_a_phantom_with_the_shipped_models(fresh_venv, tmp_path):
    python, env = fresh_venv
    probe = json.loads(_run([str(python), "-c", PROBE], tmp_path, env).stdout)
    venv = python.parents[1].resolve()
    assert Path(probe["file"]).resolve().is_relative_to(venv), probe["file"]  # the wheel's iacseg, not the checkout
    assert Path(probe["shipped"]).is_relative_to(venv)
    assert not any(Path(p).resolve() == (ROOT / "IACSegExtension").resolve() for p in probe["path"] if p)

    _run([str(python), "-m", "iacseg", "phantom", "-o", "D", "--seed", "70101", "--slice-mm", "2.5"], tmp_path, env)
    ct = tmp_path / "D" / "phantom_70101" / "ct.nii.gz"
    assert ct.is_file()
    _run([str(python), "-m", "iacseg", "segment", str(ct), "-o", "OUT", "--device", "cpu", "--progress", "none"],
         tmp_path, env, timeout=600)
    for name in (LABELS_FILE, SEGMENTATION_FILE, LANDMARKS_FILE, REPORT_JSON, REPORT_CSV):
        assert (tmp_path / "OUT" / name).is_file(), name
    report = json.loads((tmp_path / "OUT" / REPORT_JSON).read_text())
    used = {m["kind"]: (m["name"], m["sha256"]) for m in report["models"]}
    shipped = {kind: json.loads((SHIPPED / name / "config.json").read_text())
               for kind, name in (("segmenter", "unet-demo"), ("landmarks", "dst-demo"))}
    assert used == {kind: (cfg["name"], cfg["sha256"]) for kind, cfg in shipped.items()}

    listing = json.loads(_run([str(python), "-m", "iacseg", "models", "--json"], tmp_path, env).stdout)
    paths = {m["name"]: Path(m["path"]) for m in listing}
    assert paths["unet-demo"].is_relative_to(venv) and paths["dst-demo"].is_relative_to(venv)
