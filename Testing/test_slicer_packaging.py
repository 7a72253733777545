"""The extension as Slicer and the Extensions Index see it: dependency installation, Slicer version, colour table,
extension description (JSON, CMake), LICENSE, screenshot and the self-test workflow.

- ``engine.ensure_dependencies``: torch only from the PyTorch extension and before anything else, the rest with a
  constraints file pinning that torch, nothing at all in testing mode; ``IACSeg.py`` wires it to
  ``slicer.packaging.pip_ensure`` and ``PyTorchUtils``.
- ``slicer_version``: one clear message below Slicer 5.12, called from the module class.
- the colour table read by slicer-core's own ``vtkMRMLColorTableStorageNode`` (names with underscores kept, colours
  and terminology as in the contracts) and registered in a real MRML scene.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = ROOT / "IACSegModule"
sys.path.insert(0, str(MODULE_DIR))

from IACSegLib import engine, slicer_version  # noqa: E402
from iacseg.core.contracts import SEGMENT_COLORS, SEGMENTS  # noqa: E402
from iacseg.outputs import terminology  # noqa: E402

REQUIREMENTS = MODULE_DIR / "Resources" / "requirements.txt"


def _requirements() -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in REQUIREMENTS.read_text().splitlines()]
    return [line for line in lines if line]


class Recorder:
    """Plays the PyTorch extension's installer and slicer.packaging.pip_ensure; records the calls in order."""

    def __init__(self, torch_version: str | None, installs: str | None = "2.5.1+cu121", declines: bool = False):
        self.versions = {"torch": torch_version}
        self.installs, self.declines = installs, declines
        self.calls: list[tuple] = []

    def version_of(self, distribution: str) -> str | None:
        return self.versions.get(distribution)

    def install_torch(self, ask: bool, requirement: str):
        self.calls.append(("install_torch", ask, requirement))
        if self.declines:
            return None
        self.versions["torch"] = self.installs
        return object()  # PyTorchUtils returns the torch module

    def pip_ensure(self, requirements, constraints=None, prompt_install=True, requester=None, skip_in_testing=True,
                   **other):
        pinned = Path(constraints).read_text() if constraints else None  # read while the file exists
        self.calls.append(("pip_ensure", [str(r) for r in requirements], pinned, prompt_install, requester,
                           skip_in_testing, other))

    def run(self, requirements=None, testing=False, ask=True):
        return engine.ensure_dependencies(_requirements() if requirements is None else requirements,
                                          testing=testing, ask=ask, install_torch=self.install_torch,
                                          pip_ensure=self.pip_ensure, version_of=self.version_of)


# -- dependencies -----------------------------------------------------------------------------------------------


def test_torch_comes_from_the_pytorch_extension_before_anything_else() -> None:
    rec = Recorder(torch_version=None)
    assert rec.run(ask=True) == ["torch", "pip"]
    assert [c[0] for c in rec.calls] == ["install_torch", "pip_ensure"]
    assert rec.calls[0] == ("install_torch", True, engine.TORCH_REQUIREMENT)
    _, requirements, pinned, prompt, requester, skip_in_testing, other = rec.calls[1]
    assert pinned == "torch==2.5.1+cu121\n"  # pip may neither add another torch nor replace this build
    assert "monai>=1.3" in requirements and not any(r.split("<")[0].split(">")[0].split("=")[0].strip()
                                                     in engine.TORCH_DISTRIBUTIONS for r in requirements)
    assert requirements == _requirements()
    assert (prompt, requester, skip_in_testing, other) == (True, "IACSeg", True, {})


def test_nothing_is_installed_in_testing_mode() -> None:
    rec = Recorder(torch_version=None)
    assert rec.run(testing=True) == []
    assert rec.calls == []


def test_an_installed_torch_is_kept_and_pinned() -> None:
    rec = Recorder(torch_version="2.13.0+cpu")
    assert rec.run(ask=False) == ["pip"]
    assert [c[0] for c in rec.calls] == ["pip_ensure"]
    assert rec.calls[0][2] == "torch==2.13.0+cpu\n" and rec.calls[0][3] is False


def test_a_torch_older_than_the_engine_needs_is_updated_by_the_extension() -> None:
    rec = Recorder(torch_version="2.1.2", installs="2.4.0")
    assert rec.run() == ["torch", "pip"]
    assert rec.calls[1][2] == "torch==2.4.0\n"


def test_torch_in_the_requirements_is_never_passed_to_pip() -> None:
    rec = Recorder(torch_version="2.13.0")
    rec.run(requirements=["numpy>=1.24", "torch>=2.2", "TorchVision", "monai>=1.3"])
    assert rec.calls[0][1] == ["numpy>=1.24", "monai>=1.3"]


def test_declining_the_torch_install_installs_nothing_else() -> None:
    rec = Recorder(torch_version=None, declines=True)
    with pytest.raises(RuntimeError, match="needs PyTorch"):
        rec.run()
    assert [c[0] for c in rec.calls] == ["install_torch"]


def test_a_missing_pytorch_extension_is_named() -> None:
    def no_extension(ask, requirement):
        import PyTorchUtils  # noqa: F401  (not installed here)

    with pytest.raises(RuntimeError, match="PyTorch extension"):
        engine.ensure_dependencies([], testing=False, ask=False, install_torch=no_extension,
                                   pip_ensure=lambda *a, **k: None, version_of=lambda name: None)


def test_torch_versions_are_compared_as_versions() -> None:
    assert engine.torch_satisfied("2.13.0+cpu") and engine.torch_satisfied("2.2.0")
    assert not engine.torch_satisfied("2.1.2+cu118") and not engine.torch_satisfied(None)
    assert not engine.torch_satisfied("not-a-version")
    assert engine.installed_version("no-such-distribution-iacseg") is None
    assert engine.installed_version("numpy") is not None


def test_requirements_file_has_no_torch_and_slicer_packaging_can_read_it() -> None:
    from packaging.requirements import Requirement

    names = {Requirement(line).name.lower() for line in _requirements()}
    assert "monai" in names and not names & engine.TORCH_DISTRIBUTIONS


def _function(tree: ast.AST, cls: str, name: str) -> ast.FunctionDef:
    klass = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls)
    return next(n for n in klass.body if isinstance(n, ast.FunctionDef) and n.name == name)


def test_the_module_installs_only_through_ensure_dependencies_with_slicers_testing_flag() -> None:
    source = (MODULE_DIR / "IACSeg.py").read_text()
    tree = ast.parse(source)
    body = ast.unparse(_function(tree, "IACSegLogic", "ensureDependencies"))
    assert "engine.ensure_dependencies(" in body and "testing=slicer.app.testingEnabled()" in body
    assert "pip_ensure=slicer.packaging.pip_ensure" in body
    assert "installTorch(askConfirmation=ask, torchVersionRequirement=requirement)" in body
    calls = [ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert "slicer.packaging.pip_ensure" not in calls  # only handed over, never called directly
    assert "skip_in_testing=False" not in source


# -- Slicer version ---------------------------------------------------------------------------------------------


class App:
    def __init__(self, major=None, minor=None, version=None):
        if major is not None:
            self.majorVersion, self.minorVersion = major, minor
        if version is not None:
            self.applicationVersion = version


@pytest.mark.parametrize("app", [App(5, 12), App(5, 13), App(6, 0), App(version="5.12.3"),
                                 App(version="5.13.0-2026-08-21"), App()])
def test_supported_or_unknown_slicer_gives_no_message(app) -> None:
    assert slicer_version.unsupported_message(app) is None


@pytest.mark.parametrize("app, shown", [(App(5, 10), "5.10"), (App(5, 8), "5.8"), (App(4, 11), "4.11"),
                                        (App(version="5.6.2"), "5.6")])
def test_older_slicer_gets_one_clear_message(app, shown) -> None:
    message = slicer_version.unsupported_message(app)
    assert message.startswith("IACSeg needs 3D Slicer 5.12 or later; this is Slicer " + shown + ".")
    assert "slicer.packaging" in message and "launchConsoleProcess" in message and "\n" not in message


def test_the_module_class_checks_the_version_when_it_loads() -> None:
    tree = ast.parse((MODULE_DIR / "IACSeg.py").read_text())
    init = ast.unparse(_function(tree, "IACSeg", "__init__"))
    assert "slicer_version.unsupported_message(slicer.app)" in init and "logging.error(problem)" in init


def test_version_check_is_plain_python_for_old_slicers() -> None:
    source = (MODULE_DIR / "IACSegLib" / "slicer_version.py").read_text()
    ast.parse(source, feature_version=(3, 9))  # Slicer 5.4-5.8 run Python 3.9
    assert "import slicer" not in source


# -- colour table -----------------------------------------------------------------------------------------------


def _slicer():
    import slicer

    assert hasattr(slicer, "vtkMRMLColorTableStorageNode"), "slicer-core is needed"
    return slicer


def _read_table(path: Path):
    slicer = _slicer()
    node = slicer.vtkMRMLColorTableNode()
    storage = slicer.vtkMRMLColorTableStorageNode()
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1
    return node


def test_colour_table_round_trips_through_slicers_reader() -> None:
    path = ROOT / "Resources" / terminology.COLOR_TABLE_FILE
    assert path.suffix == ".csv" and path.read_text() == terminology.color_table_text()
    node = _read_table(path)
    assert node.GetColorName(0) == "background"
    assert node.GetContainsTerminology()
    for value, name in SEGMENTS.items():
        assert node.GetColorName(value) == name  # underscores kept
        rgba = [0.0] * 4
        node.GetColor(value, rgba)
        assert np.allclose(rgba[:3], [round(c * 255) / 255 for c in SEGMENT_COLORS[value]], atol=1e-6)
        assert rgba[3] == 1.0
        term = terminology.segment_terminology(value)
        codes = [term[k] for k in ("category", "type", "typeModifier", "anatomicRegion", "anatomicRegionModifier")]
        # Slicer's serialisation: "context~category~type~modifier~regionContext~region~regionModifier~"
        parts = node.GetTerminologyAsString(value).split("~")
        assert [parts[i].split("^") for i in (1, 2, 3, 5, 6)] == [list(c) for c in codes]


def test_a_ctbl_would_have_lost_the_underscores(tmp_path: Path) -> None:
    # why the table is a CSV: Slicer's .ctbl reader turns "_" into " "
    old = tmp_path / "old.ctbl"
    old.write_text("0 background 0 0 0 0\n1 L_cervical 140 26 26 255\n")
    assert _read_table(old).GetColorName(1) == "L cervical"


def test_colour_table_is_registered_once_and_survives_closing_the_scene() -> None:
    slicer = _slicer()
    from IACSegLib import color_table

    path = color_table.color_table_path(MODULE_DIR)
    assert path == ROOT / "Resources" / "IACSegColors.csv"
    scene = slicer.vtkMRMLScene()
    node = color_table.register_color_table(scene, path)
    assert node.GetID() == "vtkMRMLColorTableNodeFileIACSegColors.csv"  # fixed: saved scenes find it again
    assert color_table.register_color_table(scene, path) is node
    assert scene.GetNumberOfNodesByClass("vtkMRMLColorTableNode") == 1
    assert (node.GetName(), node.GetTypeAsString(), node.GetAttribute("Category")) == ("IACSegColors", "File", "IACSeg")
    assert not node.GetSaveWithScene() and not node.GetHideFromEditors()
    scene.Clear(0)  # File > Close scene keeps singletons
    kept = scene.GetNodeByID("vtkMRMLColorTableNodeFileIACSegColors.csv")
    assert kept is not None and kept.GetColorName(8) == "R_supraclinoid" and kept.GetNumberOfColors() == 9


def test_label_map_imported_with_the_table_gets_the_segment_names_and_colours() -> None:
    slicer = _slicer()
    import vtk
    from vtk.util import numpy_support

    from IACSegLib import color_table

    scene = slicer.vtkMRMLScene()
    table = color_table.register_color_table(scene, color_table.color_table_path(MODULE_DIR))
    labelmap = slicer.vtkMRMLLabelMapVolumeNode()
    scene.AddNode(labelmap)
    display = slicer.vtkMRMLLabelMapVolumeDisplayNode()
    scene.AddNode(display)
    display.SetAndObserveColorNodeID(table.GetID())
    labelmap.SetAndObserveDisplayNodeID(display.GetID())
    image = vtk.vtkImageData()
    image.SetDimensions(6, 6, 6)
    image.AllocateScalars(vtk.VTK_SHORT, 1)
    voxels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    voxels[:] = 0
    voxels[[10, 50, 100]] = [3, 6, 8]
    labelmap.SetAndObserveImageData(image)
    segmentation = slicer.vtkMRMLSegmentationNode()
    scene.AddNode(segmentation)
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    assert logic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    segments = segmentation.GetSegmentation()
    found = {segments.GetNthSegment(i).GetName(): segments.GetNthSegment(i).GetColor()
             for i in range(segments.GetNumberOfSegments())}
    assert set(found) == {"L_cavernous", "R_petrous", "R_supraclinoid"}
    for name, color in found.items():
        value = next(v for v, n in SEGMENTS.items() if n == name)
        assert np.allclose(color, [round(c * 255) / 255 for c in SEGMENT_COLORS[value]], atol=1e-6)


def test_the_module_registers_the_table_after_startup() -> None:
    init = ast.unparse(_function(ast.parse((MODULE_DIR / "IACSeg.py").read_text()), "IACSeg", "__init__"))
    assert "slicer.app.connect('startupCompleted()'" in init
    assert "color_table.register_color_table(slicer.mrmlScene, table)" in init


# -- extension description, CMake, LICENSE, screenshot ----------------------------------------------------------

# The catalog entry schema the Extensions Index validates against (Slicer/Slicer Schemas/, v1.0.2): required keys
# and every allowed key with its type (additionalProperties is false).
SCHEMA_URL = ("https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/"
              "slicer-extension-catalog-entry-schema-v1.0.2.json#")
SCHEMA_REQUIRED = {"$schema", "category", "scm_url"}
SCHEMA_TYPES = {"$schema": str, "category": str, "scm_url": str, "scm_revision": str, "scm_type": str,
                "build_dependencies": list, "dicom_support_rule": str, "build_subdirectory": str, "enabled": bool,
                "tier": int}


def _cmake_sets(path: Path) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r'set\((EXTENSION_\w+)\s+"([^"]*)"\)', path.read_text())}


def test_extension_description_matches_the_catalog_schema_and_cmake() -> None:
    assert not list(ROOT.glob("*.s4ext"))  # the Extensions Index uses JSON since its 5.8 branch
    path = ROOT / "IACSeg.json"
    raw = path.read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n") and b"\t" not in raw
    entry = json.loads(raw)
    assert entry["$schema"] == SCHEMA_URL
    assert SCHEMA_REQUIRED <= set(entry) <= set(SCHEMA_TYPES)
    for key, value in entry.items():
        assert isinstance(value, SCHEMA_TYPES[key]), key
    assert 1 <= entry["tier"] <= 5 and all(isinstance(d, str) for d in entry["build_dependencies"])
    assert entry["scm_url"].startswith("https://") and entry["scm_revision"] == "main"
    cmake = _cmake_sets(ROOT / "CMakeLists.txt")
    assert entry["category"] == cmake["EXTENSION_CATEGORY"] == "Segmentation"
    assert entry["build_dependencies"] == cmake["EXTENSION_DEPENDS"].split() == ["PyTorch"]
    assert entry["scm_url"].removesuffix(".git") == cmake["EXTENSION_HOMEPAGE"]


def test_cmake_project_is_named_like_the_extension() -> None:
    text = (ROOT / "CMakeLists.txt").read_text()
    # the Extensions Index reads the first project(...) and compares it with the JSON file's name
    assert re.findall(r"project\s*\(\s*([^\s\)\n\r]+)", text, re.IGNORECASE)[0] == "IACSeg"
    assert "add_subdirectory(IACSegModule)" in text
    module = (MODULE_DIR / "CMakeLists.txt").read_text()
    assert "set(MODULE_NAME IACSeg)" in module
    listed = set(re.findall(r"IACSegLib/\w+\.py", module))
    assert listed == {f"IACSegLib/{p.name}" for p in (MODULE_DIR / "IACSegLib").glob("*.py")}
    for resource in re.findall(r"\$\{_shared_resources\}/(IACSeg[\w.-]+)", module):
        assert (ROOT / "Resources" / resource).is_file(), resource
    assert "IACSegColors.csv" in module and "ctbl" not in module


def test_icon_and_screenshot_urls_point_to_files_in_the_repository() -> None:
    cmake = _cmake_sets(ROOT / "CMakeLists.txt")
    prefix = "https://raw.githubusercontent.com/iacseg/IACSeg/main/"
    urls = [cmake["EXTENSION_ICONURL"]] + cmake["EXTENSION_SCREENSHOTURLS"].split()
    assert len(urls) >= 2
    for url in urls:
        assert url.startswith(prefix), url
        png = ROOT / url.removeprefix(prefix)
        assert png.is_file(), url
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 1024 * 1024
    shot = ROOT / "Resources" / "Screenshots" / "overview.png"
    width, height = int.from_bytes(shot.read_bytes()[16:20], "big"), int.from_bytes(shot.read_bytes()[20:24], "big")
    assert (width, height) == (1600, 900)
    # the catalog's check reads the screenshot list with this exact pattern (no space before the ")")
    assert re.search(r'set\s*\(EXTENSION_SCREENSHOTURLS\s*"([^"]+)"\)', (ROOT / "CMakeLists.txt").read_text())


def test_license_is_the_apache_2_text_named_in_pyproject() -> None:
    import hashlib

    text = (ROOT / "LICENSE").read_text()
    assert 'license = {text = "Apache-2.0"}' in (ROOT / "pyproject.toml").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    # the canonical https://www.apache.org/licenses/LICENSE-2.0.txt
    assert hashlib.sha256(text.encode()).hexdigest() == \
        "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
    assert "EXTENSION_LICENSE_FILE ${CMAKE_CURRENT_SOURCE_DIR}/LICENSE" in (ROOT / "CMakeLists.txt").read_text()


# -- the self-test workflow -------------------------------------------------------------------------------------

WORKFLOW = ROOT / ".github" / "workflows" / "slicer-selftest.yml"
# Slicer's docs (https://github.com/Slicer/Slicer/blob/main/Docs/user_guide/getting_started.md,
# "Ubuntu 24.04 (Noble Numbat)")
SLICER_DOCS_UBUNTU_2404 = {"libglu1-mesa", "libpulse-mainloop-glib0", "libnss3", "libasound2t64", "qt5dxcb-plugin"}


def _steps(text: str) -> list[str]:
    return re.split(r"\n(?=      - )", text.split("\n    steps:\n", 1)[1])


def test_workflow_runs_every_slicer_call_with_a_display_and_a_timeout() -> None:
    text = WORKFLOW.read_text()
    assert "runs-on: ubuntu-24.04" in text
    assert re.search(r"\n    timeout-minutes: \d+\n", text)  # the job
    commands = [line.strip() for line in text.splitlines() if re.search(r"\./slicer/Slicer\b", line)]
    assert len(commands) == 3  # --version, the self-test, the batch script
    for command in commands:
        assert re.match(r"timeout \d+ xvfb-run -a \./slicer/Slicer ", command), command
    for step in _steps(text)[1:]:  # every step but the checkout has its own limit
        assert re.search(r"\n        timeout-minutes: \d+\n", step), step.splitlines()[0]


def test_workflow_installs_the_packages_slicers_docs_list_and_runs_the_module_self_test() -> None:
    text = WORKFLOW.read_text()
    commands = re.findall(r"sudo apt-get install ((?:[^\n]*\\\n)*[^\n]*)", text)  # with continuation lines
    packages = {word for command in commands for word in command.replace("\\", " ").split()
                if not word.startswith("-")}
    assert SLICER_DOCS_UBUNTU_2404 <= packages and {"xvfb", "xauth", "libxkbcommon-x11-0", "libgl1"} <= packages
    assert "--testing" in text and "slicer.testing.runUnitTest(['$PWD/IACSegModule'], 'IACSeg')" in text
    assert "--python-script \"$PWD/IACSegModule/batch.py\"" in text
    assert "stability=release" in text  # the current Stable Release is 5.12.x: supported


def test_description_and_readme_name_the_supported_slicer() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "**3D Slicer 5.12 or later**" in readme
    assert "%d.%d" % slicer_version.MINIMUM_VERSION == "5.12"


def test_colour_table_text_is_csv_with_slicers_columns() -> None:
    rows = list(csv.reader(io.StringIO(terminology.color_table_text())))
    assert rows[0][:6] == ["LabelValue", "Name", "Color_R", "Color_G", "Color_B", "Color_A"]
    assert rows[0][6:] == [f"{e}_{p}" for e in ("Category", "Type", "TypeModifier", "Region", "RegionModifier")
                           for p in ("CodingScheme", "CodeValue", "CodeMeaning")]
    assert len(rows) == 1 + 1 + len(SEGMENTS) and all(len(r) == 21 for r in rows)


# -- the module file on slicer-core (IACSegModule/Testing/slicercore_env.py stands in for Qt and slicer.app) ------

sys.path.insert(0, str(MODULE_DIR / "Testing"))
from slicercore_env import slicer_env  # noqa: E402,F401 — fixture


@pytest.fixture
def pip_calls(slicer_env, monkeypatch):
    """slicer.packaging.pip_ensure (the stand-in records, never installs), with the constraints file's text."""
    import slicer

    recorded = []
    stand_in = slicer.packaging.pip_ensure

    def pip_ensure(requirements, constraints=None, **kwargs):
        recorded.append({"names": [str(r).split(">")[0].split("=")[0] for r in requirements],
                         "constraints": Path(constraints).read_text() if constraints else None, **kwargs})
        return stand_in(requirements, constraints=constraints, **kwargs)

    monkeypatch.setattr(slicer.packaging, "pip_ensure", pip_ensure)
    return recorded


def test_logic_installs_nothing_when_slicer_runs_with_testing(slicer_env, pip_calls, monkeypatch) -> None:
    import IACSeg
    import slicer

    monkeypatch.setattr(slicer_env.app, "_testing", True)
    monkeypatch.setattr(engine, "installed_version", lambda name: None)  # even with no torch at all
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)  # importing it would fail
    IACSeg.IACSegLogic().ensureDependencies(interactive=True)
    assert pip_calls == [] and slicer.packaging.calls == []


def test_logic_installs_torch_from_the_pytorch_extension_then_the_rest(slicer_env, pip_calls, monkeypatch) -> None:
    import types

    import IACSeg
    import slicer

    order = []
    versions = {"torch": None}

    class PyTorchUtilsLogic:
        def installTorch(self, askConfirmation=False, forceComputationBackend=None, torchVersionRequirement=None,
                         torchvisionVersionRequirement=None):
            order.append(("PyTorchUtils.installTorch", askConfirmation, torchVersionRequirement))
            versions["torch"] = "2.6.0+cu124"
            return types.ModuleType("torch")

    monkeypatch.setattr(slicer_env.app, "_testing", False)
    monkeypatch.setattr(engine, "installed_version", lambda name: versions.get(name))
    monkeypatch.setitem(sys.modules, "PyTorchUtils", types.SimpleNamespace(PyTorchUtilsLogic=PyTorchUtilsLogic))
    real = slicer.packaging.pip_ensure
    monkeypatch.setattr(slicer.packaging, "pip_ensure", lambda *a, **k: (order.append(("pip_ensure",)), real(*a, **k)))
    IACSeg.IACSegLogic().ensureDependencies(interactive=False)  # --no-main-window: never asks
    assert order == [("PyTorchUtils.installTorch", False, ">=2.2"), ("pip_ensure",)]
    (call,) = pip_calls
    assert call["constraints"] == "torch==2.6.0+cu124\n"
    assert "monai" in call["names"] and "torch" not in call["names"]
    assert (call["skip_in_testing"], call["requester"], call["prompt_install"]) == (True, "IACSeg", False)


def test_module_loads_quietly_on_this_slicer_and_registers_the_colour_table(slicer_env, caplog) -> None:
    import types

    import IACSeg

    module = IACSeg.IACSeg(types.SimpleNamespace(path=str(MODULE_DIR / "IACSeg.py")))
    assert not module.parent.helpText.startswith("<b>IACSeg needs") and "needs 3D Slicer" not in caplog.text
    assert slicer_env.scene.GetFirstNodeByName("IACSegColors") is None  # not before Slicer has started
    slicer_env.app.emit("startupCompleted()")
    table = slicer_env.scene.GetFirstNodeByName("IACSegColors")
    assert table is not None and table.GetColorName(3) == "L_cavernous"


def test_module_says_once_that_an_older_slicer_is_not_supported(slicer_env, caplog, monkeypatch) -> None:
    import logging
    import types

    import IACSeg

    monkeypatch.setattr(slicer_env.app, "minorVersion", 10)
    with caplog.at_level(logging.ERROR):
        module = IACSeg.IACSeg(types.SimpleNamespace(path=str(MODULE_DIR / "IACSeg.py")))
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [slicer_version.unsupported_message(slicer_env.app)]
    assert "this is Slicer 5.10" in errors[0]
    assert module.parent.helpText.startswith(f"<b>{errors[0]}</b>")
