"""IACSeg: intracranial ICA calcification — Segment, review landmarks and lesions, save corrections, retrain.

A thin client of the ``iacseg`` engine: the work lives in ``IACSegLib`` (parameters, process, results,
review, corrections, scene); this file wires it to Slicer (module, parameter node, widget, logic, test).
"""

from __future__ import annotations

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
        from IACSegLib.widget import ReviewPanel

        self.widgets = ReviewPanel(self.ui, self.logic, engine.engine_source_dir(MODULE_DIR))
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, lambda *a: self.setParameterNode(None))
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, lambda *a: self.initializeParameterNode())
        self.ui.segmentButton.connect("clicked(bool)", self.onSegment)
        self.ui.cancelButton.connect("clicked(bool)", lambda: self.logic.cancel())
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.logic.cancel()
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
        """Install the engine's requirements once; asks only in the GUI, never with --no-main-window."""
        import importlib.util

        import slicer.packaging

        ask = interactive and not slicer.app.commandOptions().noMainWindow
        requirements = slicer.packaging.load_requirements(str(MODULE_DIR / "Resources" / "requirements.txt"))
        slicer.packaging.pip_ensure(requirements, prompt_install=ask, requester="IACSeg", skip_in_testing=False)
        if importlib.util.find_spec("torch") is None:  # never imported here: the engine process uses it
            import PyTorchUtils

            PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=ask, torchVersionRequirement=">=2.2")
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

    def startSegment(self, params, volumeNode, onProgress, onFinished) -> None:
        """Run the engine in the background; ``onFinished(None | ended process)`` after the result is shown."""
        def finished(state: ProcessState) -> None:
            if state is ProcessState.FINISHED:
                self.showResult(params.output_dir, volumeNode)
            if not state.is_active:
                onFinished(None if state is ProcessState.FINISHED else self.process)

        self.inputPath = params.input_path
        self.process = EngineProcess(self.launcher or SlicerLauncher(), on_progress=onProgress, on_state=finished)
        self.process.start(*self._command(params))

    def segmentBlocking(self, params, volumeNode):
        """Scripts and tests: run the engine, wait, show the result; raises `EngineError` on failure."""
        self.inputPath = params.input_path
        self.process = EngineProcess(SubprocessLauncher(startup_environment()))
        self.process.run(*self._command(params))
        return self.showResult(params.output_dir, volumeNode)

    def cancel(self) -> None:
        if self.process is not None:
            self.process.cancel()

    def showResult(self, folder, volumeNode):
        from IACSegLib import scene
        from IACSegLib.results import load_case_result
        from IACSegLib.review import ReviewSession

        self.result = load_case_result(folder)
        self.segmentationNode = scene.show_segmentation(self.result, volumeNode)
        self.markupsNode = scene.show_landmarks(self.result, volumeNode)
        self.planes = scene.landmark_planes(self.result.landmarks, volumeNode)
        self.volumeNode, self.storeCaseId = volumeNode, None
        self.session = ReviewSession(self.result.labels, self.result.grid, self.result.plane, self.result.landmarks,
                                     reader=slicer.util.settingsValue(SETTINGS_READER, ""))
        return self.result

    def applyCorrection(self, correct) -> int:
        """Run ``correct(session)`` (a landmark move or lesion edit), then update segments, points and planes."""
        from IACSegLib import scene

        before = self.session.labels
        result = correct(self.session)
        changed = before != self.session.labels
        values = set(before[changed].tolist()) | set(self.session.labels[changed].tolist())
        scene.update_segments(self.segmentationNode, self.volumeNode, self.session.labels, values - {0})
        scene.set_landmark_points(self.markupsNode, self.session.landmarks)
        self.planes = scene.landmark_planes(self.session.landmarks, self.volumeNode, self.planes)
        return getattr(result, "changed_voxels", int(changed.sum()))

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
        self.process = EngineProcess(self.launcher or SlicerLauncher(), TRAIN_STAGE_WEIGHTS, on_progress=onProgress,
                                     on_state=lambda s: None if s.is_active else onFinished(self.process))
        self.process.start(*self._command(params))


class IACSegTest(ScriptedLoadableModuleTest):
    """Makes a phantom with the engine, segments it (blocking), moves a landmark, checks labels changed."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_segment_and_correct()

    def test_segment_and_correct(self):
        logic = IACSegLogic()
        logic.ensureDependencies(interactive=False)
        work = Path(tempfile.mkdtemp(prefix="IACSegTest-", dir=slicer.app.temporaryPath))
        from iacseg.errors import InputError

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
        changed = 0
        for name in result.landmarks:
            for k in range(result.grid.shape[0]):
                try:
                    changed = logic.applyCorrection(lambda s, n=name, k=k: s.set_landmark_slice(n, k))
                except InputError:  # this slice would put the landmarks out of order
                    continue
                if changed:
                    break
            if changed:
                break
        self.assertGreater(changed, 0, "moving a landmark re-labelled calcified voxels")
        self.assertTrue((logic.session.labels != result.labels).any())
        from iacseg.store import CorrectionStore

        qt.QSettings().setValue(SETTINGS_CORRECTIONS, str(work / "store"))
        saved = logic.saveCorrection("IACSeg self-test")
        self.assertEqual(saved.version, 1)
        self.assertTrue(CorrectionStore.open(work / "store").verify().ok)
        self.delayDisplay("IACSeg self-test passed")
