"""IACSeg: intracranial ICA calcification — Segment, review landmarks and lesions, save corrections, retrain.

A thin client of the ``iacseg`` engine: the work lives in ``IACSegLib`` (parameters, process, results,
review, corrections, scene); this file wires it to Slicer (module, parameter node, widget, logic, test).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Annotated

import qt
import vtk

import slicer
from slicer import vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from IACSegLib import engine
from IACSegLib.parameters import DEVICES, SegmentParameters, TrainParameters, engine_command, parse_threshold_text
from IACSegLib.process import TRAIN_STAGE_WEIGHTS, EngineProcess, ProcessState, SubprocessLauncher
from IACSegLib.slicer_launcher import SlicerLauncher, startup_environment

MODULE_DIR = Path(__file__).resolve().parent
SETTINGS_READER = "IACSeg/ReaderName"
SETTINGS_CORRECTIONS = "IACSeg/CorrectionsFolder"


class IACSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "IACSeg"
        self.parent.categories = ["Segmentation"]
        self.parent.contributors = ["IACSeg developers"]
        self.parent.helpText = ("Finds intracranial internal carotid artery calcification on non-contrast head CT, "
                                "maps it to ICA segments with six landmarks and measures it. Demo models are "
                                "trained on synthetic phantoms only: not for clinical use.")
        self.parent.acknowledgementText = "Built on the iacseg engine (see the extension's README)."
        from IACSegLib import color_table, slicer_version

        problem = slicer_version.unsupported_message(slicer.app)  # one clear message on Slicer < 5.12
        if problem:
            import logging

            logging.error(problem)
            self.parent.helpText = f"<b>{problem}</b><br><br>{self.parent.helpText}"
        table = color_table.color_table_path(MODULE_DIR)  # the label map's colour table, once Slicer has started
        if table is not None:
            slicer.app.connect("startupCompleted()",
                               lambda: color_table.register_color_table(slicer.mrmlScene, table))


@parameterNodeWrapper
class IACSegParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    device: Annotated[str, Choice(list(DEVICES))] = "auto"
    threshold: str = "auto"


class IACSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._guiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/IACSeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = IACSegLogic()
        if not engine.make_engine_importable(MODULE_DIR):  # pip-only install: ask once, on first opening
            self.logic.ensureDependencies(interactive=True)
        from IACSegLib.review_panel import ReviewPanel

        self.widgets = ReviewPanel(self.ui, self.logic, engine.engine_source_dir(MODULE_DIR))
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, lambda *a: self.setParameterNode(None))
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, lambda *a: self.initializeParameterNode())
        self.ui.segmentButton.connect("clicked(bool)", self.onSegment)
        self.ui.cancelButton.connect("clicked(bool)", lambda: self.logic.cancel())
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.logic.cancel()
        self.widgets.cleanup()  # the landmark points' observers
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self.setParameterNode(None)

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

    def setParameterNode(self, node) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._guiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = node
        if node:
            self._guiTag = node.connectGui(self.ui)
            self.addObserver(node, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        running = self.logic.process is not None and self.logic.process.state.is_active
        ready = bool(self._parameterNode and self._parameterNode.inputVolume) and not running
        self.ui.segmentButton.enabled = ready
        self.ui.segmentButton.toolTip = "Segment the selected CT" if ready else "Select a CT volume (or wait)"
        self.ui.cancelButton.enabled = running

    def onSegment(self) -> None:
        with slicer.util.tryWithErrorDisplay("IACSeg could not start.", waitCursor=True):
            self.logic.ensureDependencies(interactive=True)
            p = self._parameterNode
            params = self.logic.segmentParameters(p.inputVolume, self.widgets.selectedModel(), p.device,
                                                  parse_threshold_text(p.threshold))
            self.logic.startSegment(params, p.inputVolume, self.widgets.onProgress, self.onFinished)
        self._checkCanApply()

    def onFinished(self, failed) -> None:
        self.widgets.onFinished(failed)
        self._checkCanApply()


class IACSegLogic(ScriptedLoadableModuleLogic):
    """Runs the engine (background or blocking), shows results, and holds the review session."""

    def __init__(self, launcher=None) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        engine.make_engine_importable(MODULE_DIR)
        self.launcher = launcher
        self.process: EngineProcess | None = None
        self.result = self.session = self.segmentationNode = self.markupsNode = self.volumeNode = None
        self.inputPath = self.storeCaseId = None  # the CT file the engine read; the case id after a first save
        self.planes: dict = {}

    def getParameterNode(self):
        return IACSegParameterNode(super().getParameterNode())

    def ensureDependencies(self, interactive: bool) -> None:
        """Install the engine's requirements once: torch from the PyTorch extension first, then the rest
        (`engine.ensure_dependencies`); nothing in testing mode; asks only in the GUI, never with --no-main-window."""
        import slicer.packaging

        def installTorch(ask, requirement):
            import PyTorchUtils  # the PyTorch extension (IACSeg's EXTENSION_DEPENDS)

            return PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=ask,
                                                                 torchVersionRequirement=requirement)

        requirements = slicer.packaging.load_requirements(str(MODULE_DIR / "Resources" / "requirements.txt"))
        engine.ensure_dependencies(requirements, testing=slicer.app.testingEnabled(),
                                   ask=interactive and not slicer.app.commandOptions().noMainWindow,
                                   install_torch=installTorch, pip_ensure=slicer.packaging.pip_ensure)
        if not engine.make_engine_importable(MODULE_DIR):
            raise RuntimeError("the iacseg engine is not installed; reinstall the IACSeg extension")

    def segmentParameters(self, volumeNode, model=None, device="auto", threshold=None) -> SegmentParameters:
        from IACSegLib.scene import export_volume

        work = Path(tempfile.mkdtemp(prefix="IACSeg-", dir=slicer.app.temporaryPath))
        params = SegmentParameters(export_volume(volumeNode, work), work / "result", model, None, device, threshold)
        params.validate()
        return params

    def _command(self, params) -> tuple[list[str], dict]:
        return engine_command(engine.python_executable(), params.as_arg_list()), engine.child_environment(MODULE_DIR)

    def _checkIdle(self) -> None:
        if self.process is not None and self.process.state.is_active:
            raise RuntimeError("an engine run is already in progress; cancel it or wait for it to end")

    def startSegment(self, params, volumeNode, onProgress, onFinished) -> None:
        """Run the engine in the background; ``onFinished(None | ended process)`` after the result is shown. A
        result Slicer cannot show ends the run as failed (``error_message`` says why). Until a new result is shown,
        the previous one, its review session and its input stay as they were."""
        def finished(state: ProcessState) -> None:
            if state.is_active:
                return
            if state is ProcessState.FINISHED:
                try:
                    self.showResult(params.output_dir, volumeNode, params.input_path)
                except Exception as exc:  # noqa: BLE001 — called from the event loop: say it, never lose it
                    logging.exception("IACSeg could not show the result")
                    process.state = ProcessState.FAILED
                    process.error_message = f"the engine finished but Slicer could not show its result: {exc}"
                    onFinished(process)
                    return
            onFinished(None if state is ProcessState.FINISHED else process)

        self._checkIdle()
        process = EngineProcess(self.launcher or SlicerLauncher(), on_progress=onProgress, on_state=finished)
        self.process = process
        process.start(*self._command(params))

    def segmentBlocking(self, params, volumeNode):
        """Scripts and tests: run the engine, wait, show the result; raises `EngineError` on failure."""
        self._checkIdle()
        self.process = EngineProcess(SubprocessLauncher(startup_environment()))
        self.process.run(*self._command(params))
        return self.showResult(params.output_dir, volumeNode, params.input_path)

    def cancel(self) -> None:
        if self.process is not None:
            self.process.cancel()

    def showResult(self, folder, volumeNode, inputPath=None):
        """Load an engine output folder as the result under review (``inputPath``: the CT file the engine read).
        All or nothing: on an error the nodes already added are removed and the previous result stays; on success
        the previous result's landmark planes are removed (its segmentation and landmarks stay in the scene)."""
        from IACSegLib import scene
        from IACSegLib.results import load_case_result
        from IACSegLib.review import ReviewSession

        result = load_case_result(folder)
        added = []
        try:
            segmentationNode = scene.show_segmentation(result, volumeNode)
            added.append(segmentationNode)
            markupsNode = scene.show_landmarks(result, volumeNode)
            added.append(markupsNode)
            planes = scene.landmark_planes(result.landmarks, volumeNode)
            added += planes.values()
            session = ReviewSession(result.labels, result.grid, result.plane, result.landmarks,
                                    reader=slicer.util.settingsValue(SETTINGS_READER, ""))
        except BaseException:
            for node in added:
                if node.GetScene() is not None:
                    node.GetScene().RemoveNode(node)
            raise
        for node in self.planes.values():  # the previous review's planes: their landmarks are no longer edited
            if node.GetScene() is not None:
                node.GetScene().RemoveNode(node)
        self.result, self.session, self.volumeNode, self.inputPath = result, session, volumeNode, inputPath
        self.segmentationNode, self.markupsNode, self.planes = segmentationNode, markupsNode, planes
        self.storeCaseId = None
        return self.result

    def applyCorrection(self, correct) -> int:
        """Run ``correct(session)`` (a landmark move or lesion edit), then update only the changed voxels of the
        changed segments, the moved points and their planes; returns how many voxels changed label."""
        from IACSegLib import scene

        _, self.planes = scene.apply_correction(self.session, correct, self.segmentationNode, self.volumeNode,
                                                self.markupsNode, self.planes)
        return self.session.last_change.count

    def saveCorrection(self, reader: str):
        """Save the session's new edits in the corrections store (settings); returns a `SavedCorrection`."""
        from IACSegLib.review import save_correction

        self.session.reader = reader
        saved = save_correction(self.storePath(), self.session, image=self.inputPath, engine_output=self.result.folder,
                                case_id=self.storeCaseId, models=self.result.report.get("models", []))
        self.storeCaseId = saved.case_id
        return saved

    @staticmethod
    def storePath() -> str:
        return slicer.util.settingsValue(SETTINGS_CORRECTIONS, str(Path.home() / "IACSegCorrections"))

    def startTraining(self, params: TrainParameters, onProgress, onFinished) -> None:
        params.validate()
        self._checkIdle()
        process = EngineProcess(self.launcher or SlicerLauncher(), TRAIN_STAGE_WEIGHTS, on_progress=onProgress,
                                on_state=lambda s: None if s.is_active else onFinished(process))
        self.process = process
        process.start(*self._command(params))


def moveFirstRelabellingLandmark(logic, result) -> tuple[str | None, int]:
    """Move landmarks slice by slice until one move re-labels calcified voxels (the self-test's reader action);
    returns the landmark moved and the number of voxels that changed (``(None, 0)`` when no allowed move does)."""
    from iacseg.core.errors import InputError

    for name in result.landmarks:
        for k in range(result.grid.shape[0]):
            try:
                changed = logic.applyCorrection(lambda s, n=name, k=k: s.set_landmark_slice(n, k))
            except InputError:  # this slice would put the landmarks out of order
                continue
            if changed:
                return name, changed
    return None, 0


class IACSegTest(ScriptedLoadableModuleTest):
    """Makes a phantom with the engine, segments it (blocking), moves a landmark, checks labels changed."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        import slicer.packaging

        requirements = slicer.packaging.load_requirements(str(MODULE_DIR / "Resources" / "requirements.txt"))
        missing = engine.missing_distributions(requirements)
        if missing and slicer.app.testingEnabled():  # e.g. the extension build machines: nothing is installed there
            self.delayDisplay(f"IACSeg self-test skipped: the engine's requirements are not installed here "
                              f"({', '.join(missing)}); open the module and click Segment once to install them")
            return
        self.test_segment_and_correct()

    def test_segment_and_correct(self):
        logic = IACSegLogic()
        logic.ensureDependencies(interactive=False)
        work = Path(tempfile.mkdtemp(prefix="IACSegTest-", dir=slicer.app.temporaryPath))
        maker = EngineProcess(SubprocessLauncher(startup_environment()))
        maker.run(engine_command(engine.python_executable(), ["phantom", "-o", str(work), "--seed", "90001",
                                                              "--progress", "none"]),
                  engine.child_environment(MODULE_DIR), timeout=600)
        volume = slicer.util.loadVolume(str(next(work.glob("phantom_*/ct.nii.gz"))))
        t0 = time.time()
        result = logic.segmentBlocking(logic.segmentParameters(volume), volume)
        self.delayDisplay(f"Segmented in {time.time() - t0:.0f} s")
        self.assertEqual(logic.segmentationNode.GetSegmentation().GetNumberOfSegments(), 8)
        self.assertEqual(logic.markupsNode.GetNumberOfControlPoints(), 6)
        self.assertGreater(int((result.labels > 0).sum()), 0, "the phantom has calcifications")
        _, changed = moveFirstRelabellingLandmark(logic, result)
        self.assertGreater(changed, 0, "moving a landmark re-labelled calcified voxels")
        self.assertTrue((logic.session.labels != result.labels).any())
        from iacseg.store import CorrectionStore

        settings = qt.QSettings()  # the reader's own corrections folder is set back afterwards
        hadStore, userStore = settings.contains(SETTINGS_CORRECTIONS), settings.value(SETTINGS_CORRECTIONS)
        settings.setValue(SETTINGS_CORRECTIONS, str(work / "store"))
        try:
            saved = logic.saveCorrection("IACSeg self-test")
        finally:
            if hadStore:
                settings.setValue(SETTINGS_CORRECTIONS, userStore)
            else:
                settings.remove(SETTINGS_CORRECTIONS)
        self.assertEqual(saved.version, 1)
        self.assertTrue(CorrectionStore.open(work / "store").verify().ok)
        import shutil

        for folder in (work, Path(logic.result.folder).parent):  # phantom, store, exported CT and result
            shutil.rmtree(folder, ignore_errors=True)
        self.delayDisplay("IACSeg self-test passed")
