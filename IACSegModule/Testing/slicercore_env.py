"""Slicer's own code (PyPI ``slicer-core``) under pytest, with stand-ins only for what slicer-core lacks.

slicer-core is Kitware's wheel of Slicer's MRML, logic and loadable-module logic without Qt: scenes, nodes, storage
nodes, the volumes/segmentations/markups/subject-hierarchy/terminologies logic and ``slicer.util`` are Slicer's
real code here. What Slicer's Qt application adds is stood in, kept small:

- ``qt``: ``QSettings`` (in memory), ``QTimer`` (fired by ``slicer.app.processEvents``), ``Qt`` constants,
  ``QTableWidgetItem``, and ``QFile``/``QUiLoader`` building generic `Widget` stand-ins from a ``.ui`` file (so
  Slicer's own ``slicer.util.loadUI``/``childWidgetVariables`` work; ``widget.emit(signal, *args)`` plays a user
  action); ``ctk``: empty (only so that ``import ctk`` works). Nothing is drawn: layout, rendering, focus and real
  widget behaviour are not checked here.
- ``slicer.app``: the scene, application logic, the IO manager (``loadNodes``/``saveNodes`` call the same logic
  classes Slicer's readers and writers call: ``vtkSlicerVolumesLogic.AddArchetypeVolume``,
  ``vtkSlicerSegmentationsModuleLogic.LoadSegmentationFromFile``, ``vtkSlicerMarkupsLogic.LoadMarkups``,
  ``AddDefaultStorageNode`` + ``WriteData``; ``exportNodes`` writes a copy in a temporary scene), settings, command
  options, ``processEvents`` (an error in a callback is printed and kept in ``callbackErrors``, as PythonQt goes
  on), ``exit``, the startup environment, the temporary folder and the version (slicer-core's). ``slicer.mrmlScene``,
  ``slicer.modules.<name>.logic()`` (volumes, markups, segmentations, subjecthierarchy, terminologies, colors; the
  terminologies logic has no scene: slicer-core ships no terminology files, load one with
  ``LoadTerminologyFromFile``).
- subject-hierarchy items for data nodes added to the scene (in Slicer, the Qt plugin logic adds them).
- the Qt-bound Python of Slicer the module imports: ``slicer.ScriptedLoadableModule``, ``slicer.parameterNodeWrapper``
  (no GUI connection), ``slicer.packaging`` (records ``pip_ensure`` calls, never installs).

The ``qt``/``ctk`` stand-ins live in `slicercore_qt`, the Qt-bound Python in `slicercore_slicer_python`; this file
holds ``slicer.app``, the scene and module logics, ``install`` and the script runner.

Usage (this folder on ``sys.path``)::

    import slicercore_env
    env = slicercore_env.install()            # once per process; idempotent
    scene = env.new_scene()                   # a fresh real vtkMRMLScene; slicer.mrmlScene / slicer.app.mrmlScene
    node = slicer.util.loadVolume(path)       # Slicer's own loading code
    env.run_until(lambda: done, timeout=60)   # the event loop: QTimer callbacks (launchConsoleProcess(blocking=False))

pytest (a fresh scene, empty settings and a temporary folder for each test)::

    from slicercore_env import slicer_env  # noqa: F401 — the fixture

    def test_something(slicer_env):
        slicer_env.scene, slicer_env.app, slicer_env.settings ...

A script as ``Slicer --no-main-window --python-script SCRIPT -- ARGS`` runs it (the exit code is the one given to
``slicer.util.exit`` or ``SystemExit``; a script that ends without either leaves "Slicer" running, as Slicer does)::

    python slicercore_env.py --no-main-window --python-script SCRIPT -- ARGS

Other tests may still put their own fake ``slicer``/``qt`` in ``sys.modules`` (monkeypatch): ``install`` only
fills in what is missing from the real ``slicer`` and re-installs its own ``qt``/``ctk`` when they were replaced.
"""

from __future__ import annotations

import atexit
import heapq
import importlib.metadata
import itertools
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import types
from pathlib import Path
from typing import Any, Callable

from slicercore_qt import QSettings, ctk_module, qt_module  # the stand-ins, split by what they imitate
from slicercore_slicer_python import packaging_module, parameter_node_wrapper_module, scripted_loadable_module


def slicer_core_version() -> str:
    """The installed slicer-core's version, e.g. ``5.13.31053.0`` (major.minor.revision.build)."""
    return importlib.metadata.version("slicer-core")



# -- slicer.app -------------------------------------------------------------------------------------------------------

_VOLUME_OPTIONS = {"labelmap": 0x1, "center": 0x2, "singleFile": 0x4, "autoWindowLevel": 0x8,
                   "discardOrientation": 0x10}  # qSlicerVolumesReader's loading options


class CoreIOManager:
    """``slicer.app.coreIOManager()``: reads and writes through the logic classes Slicer's readers/writers use."""

    def __init__(self, app: "SlicerApp") -> None:
        self.app = app

    @staticmethod
    def fileType(filename: str) -> str:
        name = str(filename).lower()
        if name.endswith((".seg.nrrd", ".seg.nhdr", ".seg.vtm")):
            return "SegmentationFile"
        if name.endswith((".mrk.json", ".fcsv")):
            return "MarkupsFile"
        if name.endswith((".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd", ".hdr", ".img", ".img.gz", ".tif",
                          ".tiff", ".dcm")):
            return "VolumeFile"
        return "NoFile"

    @staticmethod
    def fileWriterFileType(node) -> str:
        for cls, kind in (("vtkMRMLSegmentationNode", "SegmentationFile"), ("vtkMRMLMarkupsNode", "MarkupsFile"),
                          ("vtkMRMLVolumeNode", "VolumeFile"), ("vtkMRMLTableNode", "TableFile"),
                          ("vtkMRMLModelNode", "ModelFile"), ("vtkMRMLTransformNode", "TransformFile")):
            if node is not None and node.IsA(cls):
                return kind
        return "NoFile"

    def loadNodes(self, filetype: str, properties: dict, loaded, userMessages=None) -> bool:
        fileName, name = str(properties["fileName"]), str(properties.get("name", "") or "")
        logic = self.app.moduleLogics
        nodes = []
        if filetype == "VolumeFile":
            options = sum(bit for key, bit in _VOLUME_OPTIONS.items() if properties.get(key))
            files = None
            if properties.get("fileNames"):
                import vtk

                files = vtk.vtkStringArray()
                for f in properties["fileNames"]:
                    files.InsertNextValue(str(f))
            node = logic["Volumes"].AddArchetypeVolume(fileName, name or _base_name(fileName), options, files)
            if node is not None:
                if properties.get("colorNodeID") and node.GetDisplayNode():
                    node.GetDisplayNode().SetAndObserveColorNodeID(properties["colorNodeID"])
                if properties.get("show", True):
                    selection = self.app.applicationLogic().GetSelectionNode()
                    if selection is not None:
                        if node.IsA("vtkMRMLLabelMapVolumeNode"):
                            selection.SetActiveLabelVolumeID(node.GetID())
                        else:
                            selection.SetActiveVolumeID(node.GetID())
                nodes.append(node)
        elif filetype == "SegmentationFile":
            color = self.app.mrmlScene.GetNodeByID(properties["colorNodeID"]) if properties.get("colorNodeID") else None
            auto_opacities = bool(properties.get("autoOpacities", True))
            node = logic["Segmentations"].LoadSegmentationFromFile(fileName, auto_opacities, name, color, userMessages)
            if node is not None:
                nodes.append(node)
        elif filetype == "MarkupsFile":
            ids = logic["Markups"].LoadMarkups(fileName, name, userMessages)
            nodes += [self.app.mrmlScene.GetNodeByID(i) for i in (ids or "").split(",") if i]
        else:
            raise NotImplementedError(f"the slicer.app stand-in cannot load {filetype} ({fileName})")
        for node in nodes:
            loaded.AddItem(node)
        return bool(nodes)

    @staticmethod
    def fileWriterExtensions(node) -> list[str]:
        """The node's write formats, e.g. ``"NRRD (.nrrd)"`` (its default storage node's; in slicer-core the volume
        archetype storage node lists none, so Slicer's usual volume formats stand in for them)."""
        storage = node.CreateDefaultStorageNode() if node is not None else None
        formats = storage.GetSupportedWriteFileTypes() if storage is not None else None
        found = [formats.GetValue(i) for i in range(formats.GetNumberOfValues())] if formats is not None else []
        if not found and node is not None and node.IsA("vtkMRMLVolumeNode"):
            found = ["NRRD (.nrrd)", "NRRD (.nhdr)", "NIfTI (.nii.gz)", "NIfTI (.nii)", "MetaImage (.mha)",
                     "MetaImage (.mhd)"]
        return found

    def extractKnownExtension(self, fileName: str, node) -> str:
        import slicer

        name = str(fileName).lower()
        extensions = [slicer.vtkDataFileFormatHelper.GetFileExtensionFromFormatString(f)
                      for f in self.fileWriterExtensions(node)]
        return max((e for e in extensions if e and name.endswith(e.lower())), key=len, default="")

    def exportNodes(self, nodeIDs, fileNames, properties: dict, hardenTransforms: bool, userMessages=None) -> bool:
        """As Slicer exports: a copy of each node in a temporary scene is written, the node itself is untouched."""
        import slicer

        ok = True
        for node_id, file_name in zip(nodeIDs, fileNames):
            node = self.app.mrmlScene.GetNodeByID(node_id)
            if node is None or not node.IsA("vtkMRMLStorableNode"):
                ok = False
                continue
            temporary = slicer.vtkMRMLScene()
            copy = temporary.AddNewNodeByClass(node.GetClassName())
            copy.CopyContent(node, bool(hardenTransforms))
            if not copy.AddDefaultStorageNode():
                ok = False
                continue
            storage = copy.GetStorageNode()
            storage.SetFileName(str(file_name))
            if properties.get("fileFormat"):
                storage.SetWriteFileFormat(properties["fileFormat"])
            if "useCompression" in properties:
                storage.SetUseCompression(int(properties["useCompression"]))
            ok = bool(storage.WriteData(copy)) and ok
            if userMessages is not None:
                userMessages.AddMessages(storage.GetUserMessages())
        return ok

    def saveNodes(self, filetype: str, properties: dict, userMessages=None) -> bool:
        node = self.app.mrmlScene.GetNodeByID(properties["nodeID"])
        if node is None or not node.IsA("vtkMRMLStorableNode") or not node.AddDefaultStorageNode():
            return False
        storage = node.GetStorageNode()
        storage.SetFileName(str(properties["fileName"]))
        if properties.get("fileFormat"):
            storage.SetWriteFileFormat(properties["fileFormat"])
        storage.SetURI(None)
        if "useCompression" in properties:
            storage.SetUseCompression(int(properties["useCompression"]))
        ok = bool(storage.WriteData(node))
        if userMessages is not None:
            userMessages.AddMessages(storage.GetUserMessages())
        return ok


def _base_name(path: str) -> str:
    """Qt's ``QFileInfo.baseName``: the name up to the first dot."""
    return Path(path).name.split(".")[0]


class _Environment:
    """``slicer.app.startupEnvironment()`` (a QProcessEnvironment): ``keys()`` and ``value(key)``."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = dict(env)

    def keys(self) -> list[str]:
        return list(self.env)

    def value(self, key: str, default: str = "") -> str:
        return self.env.get(key, default)


class SlicerApp:
    """``slicer.app``: what the module and ``slicer.util`` use of qSlicerApplication."""

    applicationName = "Slicer"

    def __init__(self, no_main_window: bool = True, testing: bool = True) -> None:
        parts = [int(p) for p in re.findall(r"\d+", slicer_core_version())[:3]]
        self.majorVersion, self.minorVersion = parts[0], parts[1]
        self.revision = str(parts[2]) if len(parts) > 2 else ""
        self.applicationVersion = f"{self.majorVersion}.{self.minorVersion}.0"
        self.mainApplicationMajorVersion, self.mainApplicationMinorVersion = self.majorVersion, self.minorVersion
        self.mainApplicationPatchVersion = 0
        self.temporaryPath = tempfile.mkdtemp(prefix="slicercore-")  # removed when the process ends
        atexit.register(shutil.rmtree, self.temporaryPath, True)
        self.slicerHome = str(Path(sys.prefix))
        self._options = types.SimpleNamespace(noMainWindow=no_main_window, runPythonAndExit=False,
                                              testingEnabled=testing, pythonScript="", disableMessageHandlers=True)
        self._testing = testing
        self._startup_env = dict(os.environ)
        self._timers: list = []
        self._timer_seq = itertools.count()
        self._lock = threading.Lock()
        self.exitCode: int | None = None  # set by exit(): the code Slicer would exit with
        self.overrideCursors: list = []
        self.connections: dict[str, list[Callable]] = {}
        self.callbackErrors: list[BaseException] = []
        self.mrmlScene = None
        self._appLogic = None
        self.moduleLogics: dict[str, Any] = {}
        self._io = CoreIOManager(self)

    # Qt application
    def commandOptions(self):
        return self._options

    def testingEnabled(self) -> bool:
        return self._testing

    def settings(self) -> QSettings:
        return QSettings()

    def startupEnvironment(self) -> _Environment:
        return _Environment(self._startup_env)

    def exit(self, status: int = 0) -> None:
        self.exitCode = int(status)

    def topLevelWidgets(self) -> list:
        return []

    def setOverrideCursor(self, cursor) -> None:
        self.overrideCursors.append(cursor)

    def restoreOverrideCursor(self) -> None:
        if self.overrideCursors:
            self.overrideCursors.pop()

    def layoutManager(self):
        return None

    def connect(self, signal: str, slot: Callable) -> None:
        """Qt signal connection, e.g. ``connect("startupCompleted()", slot)``; `emit` calls the slots."""
        self.connections.setdefault(signal, []).append(slot)

    def emit(self, signal: str, *args) -> None:
        """Not a Qt name: what the application does when ``signal`` happens (e.g. ``"startupCompleted()"``)."""
        for slot in list(self.connections.get(signal, [])):
            slot(*args)

    # event loop
    def schedule(self, msec: int, callback: Callable) -> None:
        with self._lock:
            heapq.heappush(self._timers, (time.monotonic() + max(0, msec) / 1000.0, next(self._timer_seq), callback))

    def processEvents(self, *args) -> int:
        """Fire the timers that are due (those scheduled meanwhile wait for the next call); returns how many. As in
        Slicer (PythonQt), an error raised by a callback is printed and the event loop goes on; it is also kept in
        ``callbackErrors`` (not a Slicer name) for the tests."""
        import traceback

        now = time.monotonic()
        due = []
        with self._lock:
            while self._timers and self._timers[0][0] <= now:
                due.append(heapq.heappop(self._timers)[2])
        for callback in due:
            try:
                callback()
            except Exception as exc:  # noqa: BLE001
                traceback.print_exc()
                self.callbackErrors.append(exc)
        return len(due)

    def pendingTimers(self) -> int:
        with self._lock:
            return len(self._timers)

    # MRML
    def applicationLogic(self):
        return self._appLogic

    def coreIOManager(self) -> CoreIOManager:
        return self._io

    ioManager = coreIOManager


def _app() -> SlicerApp:
    import slicer

    return slicer.app


# -- scene and module logics ------------------------------------------------------------------------------------------

_LOGICS = (("Volumes", "vtkSlicerVolumesLogic", "volumes"), ("Markups", "vtkSlicerMarkupsLogic", "markups"),
           ("Terminologies", "vtkSlicerTerminologiesModuleLogic", "terminologies"),
           ("Segmentations", "vtkSlicerSegmentationsModuleLogic", "segmentations"),
           ("SubjectHierarchy", "vtkSlicerSubjectHierarchyModuleLogic", "subjecthierarchy"))
_SH_CLASSES = ("vtkMRMLDisplayableNode", "vtkMRMLTransformNode", "vtkMRMLTableNode", "vtkMRMLTextNode")


def _add_subject_hierarchy_items(scene) -> None:
    """Give each data node added to ``scene`` a subject-hierarchy item under the scene item (Slicer's Qt
    ``qSlicerSubjectHierarchyPluginLogic::onNodeAdded`` does it there; not while importing, not hidden nodes)."""
    import slicer
    import vtk

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def on_node_added(caller, event, node) -> None:
        if node is None or caller.IsImporting() or node.GetHideFromEditors() or node.IsA("vtkMRMLSubjectHierarchyNode"):
            return
        if not any(node.IsA(c) for c in _SH_CLASSES):
            return
        sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(caller)
        if sh is not None and not sh.GetItemByDataNode(node):
            sh.CreateItem(sh.GetSceneItemID(), node)

    scene.AddObserver(slicer.vtkMRMLScene.NodeAddedEvent, on_node_added)
    scene._iacseg_sh_observer = on_node_added  # keep the callback alive with the scene wrapper


class SlicerEnv:
    """The installed environment: ``app`` (``slicer.app``), ``scene`` (``slicer.mrmlScene``), ``logics``."""

    def __init__(self, app: SlicerApp) -> None:
        self.app = app

    @property
    def scene(self):
        return self.app.mrmlScene

    @property
    def logics(self) -> dict[str, Any]:
        return self.app.moduleLogics

    @property
    def settings(self) -> dict[str, Any]:
        return QSettings.store

    def new_scene(self):
        """A fresh vtkMRMLScene with Slicer's application logic and module logics on it (slicer.mrmlScene)."""
        import slicer
        import vtk

        scene = slicer.vtkMRMLScene()
        crosshair = slicer.vtkMRMLCrosshairNode()
        crosshair.SetCrosshairName("default")
        scene.AddNode(crosshair)
        app_logic = slicer.vtkSlicerApplicationLogic()
        app_logic.SetMRMLScene(scene)
        app_logic.GetColorLogic().SetMRMLScene(scene)
        app_logic.GetColorLogic().AddDefaultColorNodes()
        app_logic.SetSliceLogics(vtk.vtkCollection())
        app_logic.SetViewLogics(vtk.vtkCollection())
        logics = {"Colors": app_logic.GetColorLogic()}
        app_logic.SetModuleLogic("Colors", logics["Colors"])
        for name, class_name, _ in _LOGICS:
            logic = getattr(slicer, class_name)()
            logic.SetMRMLApplicationLogic(app_logic)
            if name != "Terminologies":  # with a scene it loads Slicer's terminology files, which slicer-core lacks
                logic.SetMRMLScene(scene)
            app_logic.SetModuleLogic(name, logic)
            logics[name] = logic
        slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
        _add_subject_hierarchy_items(scene)
        self.app.mrmlScene, self.app._appLogic, self.app.moduleLogics = scene, app_logic, logics
        slicer.mrmlScene = scene
        slicer.modules = types.SimpleNamespace(
            **{attr: _ModuleStandIn(name, logics[name]) for name, _, attr in _LOGICS},
            colors=_ModuleStandIn("Colors", logics["Colors"]))
        return scene

    def reset(self, temporary_path: str | Path | None = None) -> None:
        """A fresh scene, empty settings, no timers, no exit code, no recorded pip calls (between tests)."""
        QSettings.store.clear()
        with self.app._lock:
            self.app._timers.clear()
        self.app.exitCode = None
        self.app.connections.clear()
        self.app.callbackErrors.clear()
        self.app.commandOptions().runPythonAndExit = False
        if temporary_path is not None:
            Path(temporary_path).mkdir(parents=True, exist_ok=True)
            self.app.temporaryPath = str(temporary_path)
        import slicer

        slicer.packaging.calls.clear()
        self.new_scene()

    def process_events(self) -> int:
        return self.app.processEvents()

    def run_until(self, condition: Callable[[], bool], timeout: float = 60.0, interval: float = 0.01) -> None:
        """Run the event loop until ``condition()`` is true; `TimeoutError` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the condition was not met within {timeout} s")
            if not self.app.processEvents():
                time.sleep(interval)


class _ModuleStandIn:
    """``slicer.modules.<name>``: its ``logic()`` and ``name``."""

    def __init__(self, name: str, logic) -> None:
        self.name, self.title, self._logic = name, name, logic

    def logic(self):
        return self._logic




# -- install ----------------------------------------------------------------------------------------------------------

_ENV: SlicerEnv | None = None


def install(no_main_window: bool = True, testing: bool = True) -> SlicerEnv:
    """Make ``import slicer`` Slicer's real code plus the stand-ins above; idempotent (returns the same env)."""
    global _ENV
    for name, make in (("qt", qt_module), ("ctk", ctk_module)):
        if not getattr(sys.modules.get(name), "STAND_IN", False):
            sys.modules[name] = make()
    import slicer
    import slicer.util  # noqa: F401 — Slicer's own

    if not hasattr(slicer, "vtkMRMLScene"):
        raise RuntimeError("`slicer` is not slicer-core here (a test left a fake `slicer` in sys.modules?)")
    if _ENV is None:
        _ENV = SlicerEnv(SlicerApp(no_main_window=no_main_window, testing=testing))
    for name, make in (("ScriptedLoadableModule", scripted_loadable_module),
                       ("parameterNodeWrapper", parameter_node_wrapper_module), ("packaging", packaging_module)):
        module = sys.modules.get(f"slicer.{name}")
        if module is None or getattr(slicer, name, None) is not module:
            module = sys.modules.get(f"slicer.{name}") or make()
            sys.modules[f"slicer.{name}"] = module
            setattr(slicer, name, module)
    slicer.app = _ENV.app
    _forget_imports_of_another_slicer(slicer)
    if _ENV.app.mrmlScene is None:
        _ENV.new_scene()
    slicer.mrmlScene = _ENV.app.mrmlScene
    return _ENV


MODULE_PACKAGES = ("IACSeg", "IACSegLib")  # the Slicer module's own code: re-imported if bound to a fake `slicer`


def _forget_imports_of_another_slicer(slicer) -> None:
    """Drop the module's files that were imported while a test's fake ``slicer`` was in ``sys.modules`` (their
    ``slicer`` global is that fake): the next import binds them to Slicer's. A package attribute left pointing to
    such a module (``IACSegLib.scene``) is dropped too, or ``from IACSegLib import scene`` would still find it."""
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in MODULE_PACKAGES:
            continue
        bound = vars(module).get("slicer")
        if bound is not None and bound is not slicer:
            del sys.modules[name]
    for package in MODULE_PACKAGES:
        package_module = sys.modules.get(package)
        for attr, value in list(vars(package_module).items()) if package_module is not None else ():
            if isinstance(value, types.ModuleType) and value.__name__ == f"{package}.{attr}" \
                    and sys.modules.get(value.__name__) is not value:
                delattr(package_module, attr)


try:  # the pytest fixture (only where pytest is importable)
    import pytest

    @pytest.fixture
    def slicer_env(tmp_path):
        """The installed environment with a fresh scene, empty settings and ``tmp_path/slicer-tmp`` as
        ``slicer.app.temporaryPath``."""
        env = install()
        env.reset(tmp_path / "slicer-tmp")
        yield env
        env.reset()
except ImportError:  # pragma: no cover
    pass


# -- Slicer --no-main-window --python-script SCRIPT -- ARGS ----------------------------------------------------------


def run_python_script(argv: list[str], hang_after_s: float | None = None) -> int:
    """What ``Slicer [--no-main-window] --python-script SCRIPT [ARGS]`` does with SCRIPT: run it as ``__main__`` with
    ``sys.argv = [SCRIPT, ARGS…]``; ``SystemExit(code)`` ends Slicer with that code; an uncaught exception is printed
    and Slicer goes on. Then Slicer exits with the code given to ``slicer.util.exit`` (``slicer.app.exit``) or, when
    none was, keeps running its event loop: here until ``hang_after_s`` s (default: forever), then exit code 124."""
    import runpy
    import traceback

    args = list(argv)
    no_main_window = "--no-main-window" in args
    args = [a for a in args if a != "--no-main-window"]
    if not args or args[0] != "--python-script" or len(args) < 2:
        raise SystemExit("usage: slicercore_env.py [--no-main-window] --python-script SCRIPT [ARGS...]")
    script, script_args = args[1], args[2:]
    env = install(no_main_window=no_main_window, testing=False)
    env.app.commandOptions().pythonScript = script
    sys.argv = [script, *script_args]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:  # Slicer: systemExitExceptionRaised → terminate(code)
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except BaseException:  # noqa: BLE001 — Slicer prints the error and keeps running
        traceback.print_exc()
    deadline = None if hang_after_s is None else time.monotonic() + hang_after_s
    while env.app.exitCode is None:  # the event loop
        if deadline is not None and time.monotonic() > deadline:
            print("slicercore_env: the script did not make Slicer exit (it would keep running)", file=sys.stderr)
            return 124
        if not env.app.processEvents():
            time.sleep(0.02)
    return env.app.exitCode


if __name__ == "__main__":
    hang = os.environ.get("SLICERCORE_ENV_HANG_AFTER_S")
    sys.exit(run_python_script(sys.argv[1:], float(hang) if hang else None))
