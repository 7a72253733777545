"""The module's logic end to end on Slicer's own code (slicer-core): Segment in blocking and background modes
through the real launchers, the result under the input's study, landmark planes, a failed run, cancel, and the
module's own self-test ``IACSegTest``. Qt is stood in by ``IACSegModule/Testing/slicercore_env.py`` (settings,
timers and the event loop); scene, nodes, readers, subject hierarchy and ``slicer.util`` are Slicer's.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest

MODULE = Path(__file__).resolve().parents[1] / "IACSegModule"
sys.path[:0] = [str(MODULE), str(MODULE / "Testing")]

import engine_cases  # noqa: E402
from slicercore_env import slicer_env  # noqa: E402,F401 — fixture
from iacseg.core.contracts import LANDMARKS, LANDMARKS_FILE, REPORT_JSON, SEGMENTS  # noqa: E402


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    return engine_cases.phantom_ct(tmp_path_factory.mktemp("truth"))


@pytest.fixture
def iacseg(slicer_env):
    """The module file ``IACSeg.py`` imported against slicer-core."""
    import IACSeg

    return IACSeg


def load_in_study(path: Path):
    """The CT loaded by Slicer and put under a patient/study in the subject hierarchy; (volume, study item)."""
    import slicer

    volume = slicer.util.loadVolume(str(path))
    sh = slicer.mrmlScene.GetSubjectHierarchyNode()
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "Patient A")
    study = sh.CreateStudyItem(patient, "Head CT")
    sh.SetItemParent(sh.GetItemByDataNode(volume), study)
    return volume, study


def parent_item(node) -> int:
    import slicer

    sh = slicer.mrmlScene.GetSubjectHierarchyNode()
    return sh.GetItemParent(sh.GetItemByDataNode(node))


def segmentation_nodes() -> list:
    import slicer

    return list(slicer.util.getNodesByClass("vtkMRMLSegmentationNode"))


def check_shown(logic, volume, study) -> None:
    """Segments equal the engine's labels on the CT grid; points at the report's positions; all under the study."""
    import slicer

    result = logic.result
    assert logic.volumeNode is volume
    node = logic.segmentationNode
    assert node.GetSegmentation().GetNumberOfSegments() == 8
    for value, name in sorted(SEGMENTS.items()):
        array = slicer.util.arrayFromSegmentBinaryLabelmap(node, name, volume)
        np.testing.assert_array_equal(array > 0, result.labels == value, err_msg=name)
    assert (result.labels > 0).any()
    report = json.loads((result.folder / REPORT_JSON).read_text())
    points = logic.markupsNode
    assert [points.GetNthControlPointLabel(i) for i in range(points.GetNumberOfControlPoints())] == list(LANDMARKS)
    for i, name in enumerate(LANDMARKS):
        x, y, z = report["landmarks"][name]["position"]
        np.testing.assert_allclose(points.GetNthControlPointPositionWorld(i), (-x, -y, z), atol=1e-4)
    assert sorted(logic.planes) == sorted(LANDMARKS)
    for node in (logic.segmentationNode, logic.markupsNode, *logic.planes.values()):
        assert parent_item(node) == study, node.GetName()


def check_planes(logic) -> None:
    """One locked axial plane per landmark, centred on its point."""
    for i, name in enumerate(LANDMARKS):
        plane = logic.planes[name]
        assert plane.IsA("vtkMRMLMarkupsPlaneNode") and plane.GetName() == f"{name} plane"
        assert plane.GetLocked()
        np.testing.assert_allclose(plane.GetNormalWorld(), (0.0, 0.0, 1.0), atol=1e-9)
        np.testing.assert_allclose(plane.GetCenterWorld(), logic.markupsNode.GetNthControlPointPositionWorld(i),
                                   atol=1e-4, err_msg=name)


def test_parameter_node_keeps_the_choices_in_the_scene(slicer_env, iacseg, phantom) -> None:
    import slicer

    volume = slicer.util.loadVolume(str(phantom))
    logic = iacseg.IACSegLogic()
    p = logic.getParameterNode()
    assert (p.device, p.threshold, p.inputVolume) == ("auto", "auto", None)
    p.inputVolume, p.device = volume, "cpu"
    again = iacseg.IACSegLogic().getParameterNode()  # one parameter node per scene
    assert again.parameterNode is p.parameterNode
    assert again.inputVolume is volume and again.device == "cpu"
    with pytest.raises(ValueError):
        p.device = "tpu"


def test_segment_blocking_shows_the_result_under_the_inputs_study(slicer_env, iacseg, phantom) -> None:
    import slicer

    volume, study = load_in_study(phantom)
    logic = iacseg.IACSegLogic()
    params = logic.segmentParameters(volume)
    assert Path(slicer.app.temporaryPath) in params.input_path.parents  # exported by Slicer's writer
    result = logic.segmentBlocking(params, volume)
    assert result is logic.result and result.folder == params.output_dir
    check_shown(logic, volume, study)
    check_planes(logic)
    assert logic.session is not None and logic.storeCaseId is None


def test_segment_in_the_background_through_launch_console_process(slicer_env, iacseg, phantom, monkeypatch) -> None:
    """The Segment button's path: ``slicer.util.launchConsoleProcess(blocking=False)``; lines and the end arrive on
    the main thread through Qt timers while the event loop runs; the result is then shown."""
    import slicer
    from IACSegLib.process import ProcessState

    real, calls = slicer.util.launchConsoleProcess, []
    monkeypatch.setattr(slicer.util, "launchConsoleProcess", lambda *a, **k: calls.append(k) or real(*a, **k))
    volume, study = load_in_study(phantom)
    logic = iacseg.IACSegLogic()
    progress, finished, threads = [], [], set()

    def on_progress(update) -> None:
        progress.append(update)
        threads.add(threading.current_thread())

    def on_finished(process) -> None:
        finished.append(process)
        threads.add(threading.current_thread())

    logic.startSegment(logic.segmentParameters(volume), volume, on_progress, on_finished)
    assert len(calls) == 1 and calls[0]["blocking"] is False and calls[0]["useStartupEnvironment"] is True
    assert logic.process.state is ProcessState.RUNNING and logic.segmentationNode is None  # returned at once
    slicer_env.run_until(lambda: finished, timeout=300)
    assert finished == [None] and logic.process.state is ProcessState.FINISHED
    assert threads == {threading.main_thread()}
    overall = [u.overall for u in progress]
    assert len(overall) >= 5 and overall == sorted(overall) and overall[-1] == 1.0
    assert {"landmarks", "segment", "write"} <= {u.stage for u in progress}
    check_shown(logic, volume, study)
    check_planes(logic)


def test_a_failed_run_says_why_and_shows_nothing(slicer_env, iacseg, phantom) -> None:
    from IACSegLib.process import ProcessState

    volume, _ = load_in_study(phantom)
    logic = iacseg.IACSegLogic()
    finished = []
    params = dataclasses.replace(logic.segmentParameters(volume), model="no-such-model")
    logic.startSegment(params, volume, lambda u: None, finished.append)
    slicer_env.run_until(lambda: finished, timeout=120)
    assert finished == [logic.process] and logic.process.state is ProcessState.FAILED
    assert logic.process.exit_code == 2
    assert "no segmenter model 'no-such-model' found" in logic.process.error_message
    assert segmentation_nodes() == [] and logic.segmentationNode is None


def test_cancel_ends_the_engine_process_tree_and_shows_nothing(slicer_env, iacseg, phantom) -> None:
    import slicer
    from IACSegLib.kill import _alive, descendants
    from IACSegLib.process import ProcessState

    volume, _ = load_in_study(phantom)
    logic = iacseg.IACSegLogic()
    progress, finished = [], []
    logic.startSegment(logic.segmentParameters(volume), volume, progress.append, finished.append)
    slicer_env.run_until(lambda: progress, timeout=120)  # the engine is running
    pid = logic.process._handle.pid
    tree = [pid, *descendants(pid)]
    logic.cancel()
    assert logic.process.state is ProcessState.CANCELLING
    slicer_env.run_until(lambda: finished, timeout=60)
    assert finished == [logic.process] and logic.process.state is ProcessState.CANCELLED
    assert not any(_alive(p) for p in tree)
    assert segmentation_nodes() == [] and logic.segmentationNode is None
    assert slicer.util.getNodesByClass("vtkMRMLMarkupsFiducialNode") == []


def test_a_landmark_move_moves_its_point_and_plane_and_relabels(slicer_env, iacseg, phantom) -> None:
    import slicer

    volume, study = load_in_study(phantom)
    logic = iacseg.IACSegLogic()
    result = logic.segmentBlocking(logic.segmentParameters(volume), volume)
    name, changed = iacseg.moveFirstRelabellingLandmark(logic, result)  # the first slice move that relabels calcium
    assert changed > 0
    assert (logic.session.labels != result.labels).sum() == changed
    for value, seg in sorted(SEGMENTS.items()):
        array = slicer.util.arrayFromSegmentBinaryLabelmap(logic.segmentationNode, seg, volume)
        np.testing.assert_array_equal(array > 0, logic.session.labels == value, err_msg=seg)
    i = list(LANDMARKS).index(name)
    x, y, z = logic.session.landmarks[name].position
    np.testing.assert_allclose(logic.markupsNode.GetNthControlPointPositionWorld(i), (-x, -y, z), atol=1e-4)
    check_planes(logic)
    assert len(slicer.util.getNodesByClass("vtkMRMLMarkupsPlaneNode")) == 6  # moved, not added
    assert all(parent_item(p) == study for p in logic.planes.values())


def test_segment_leaves_the_ct_nodes_own_file_alone(slicer_env, iacseg, phantom) -> None:
    import slicer

    volume = slicer.util.loadVolume(str(phantom))
    iacseg.IACSegLogic().segmentParameters(volume)
    assert volume.GetStorageNode().GetFileName() == str(phantom)


def test_segmenting_again_replaces_the_review_but_a_failed_run_keeps_it(slicer_env, iacseg, phantom,
                                                                       tmp_path) -> None:
    """A failed or cancelled run leaves the shown result, its review session and the CT it was made from (what
    Save correction stores) as they were; a new result replaces the landmark planes of the previous one."""
    import slicer

    first, study = load_in_study(phantom)
    logic = iacseg.IACSegLogic()
    params = logic.segmentParameters(first)
    shown = logic.segmentBlocking(params, first)
    session, planes = logic.session, dict(logic.planes)
    assert logic.inputPath == params.input_path

    second = slicer.util.loadVolume(str(engine_cases.oblique_copy(phantom, tmp_path / "second.nrrd")))
    finished = []
    failing = dataclasses.replace(logic.segmentParameters(second), model="no-such-model")
    logic.startSegment(failing, second, lambda u: None, finished.append)
    slicer_env.run_until(lambda: finished, timeout=120)
    assert finished[0].error_message and logic.result is shown and logic.session is session
    assert logic.inputPath == params.input_path  # Save correction would store the first CT with the first labels

    finished.clear()
    again = logic.segmentParameters(second)
    logic.startSegment(again, second, lambda u: None, finished.append)
    slicer_env.run_until(lambda: finished, timeout=300)
    assert finished == [None] and logic.result is not shown and logic.inputPath == again.input_path
    assert len(slicer.util.getNodesByClass("vtkMRMLMarkupsPlaneNode")) == 6  # the first result's planes are gone
    assert not any(p.GetScene() for p in planes.values())
    assert len(segmentation_nodes()) == 2  # both results stay in the scene
    assert slicer_env.app.callbackErrors == []


def test_a_result_slicer_cannot_show_ends_the_run_as_failed(slicer_env, iacseg, phantom) -> None:
    """The engine finished, but the volume changed meanwhile (here: another grid): the run ends as failed with a
    sentence, nothing half-shown, instead of an error lost in the event loop and a panel waiting forever."""
    import slicer
    from IACSegLib.process import ProcessState

    volume, _ = load_in_study(phantom)
    logic = iacseg.IACSegLogic()
    finished = []
    logic.startSegment(logic.segmentParameters(volume), volume, lambda u: None, finished.append)
    slicer.util.updateVolumeFromArray(volume, np.zeros((4, 5, 6), np.int16))  # e.g. cropped while the engine ran
    slicer_env.run_until(lambda: finished, timeout=300)
    assert finished == [logic.process] and logic.process.state is ProcessState.FAILED
    assert "not on the input volume's grid" in logic.process.error_message
    assert segmentation_nodes() == [] and slicer.util.getNodesByClass("vtkMRMLMarkupsNode") == []
    assert logic.result is None and logic.inputPath is None
    assert slicer_env.app.callbackErrors == []


def test_one_engine_run_at_a_time(slicer_env, iacseg, phantom) -> None:
    volume, _ = load_in_study(phantom)
    logic = iacseg.IACSegLogic()
    finished = []
    logic.startSegment(logic.segmentParameters(volume), volume, lambda u: None, finished.append)
    running = logic.process
    with pytest.raises(RuntimeError, match="already"):
        logic.startSegment(logic.segmentParameters(volume), volume, lambda u: None, finished.append)
    assert logic.process is running
    logic.cancel()
    slicer_env.run_until(lambda: finished, timeout=60)
    assert finished == [running]


def test_the_logic_library_imports_without_slicer() -> None:
    """The library files with no Slicer-facing code import with ``slicer``/``qt``/``vtk``/``ctk`` absent."""
    import subprocess

    pure = ["parameters", "process", "kill", "results", "review", "corrections", "headless_batch", "engine", "model_list"]
    code = (f"import sys, importlib\nsys.path.insert(0, {str(MODULE)!r})\n"
            f"sys.modules.update(dict.fromkeys(['slicer', 'qt', 'vtk', 'ctk']))\n"
            f"for name in {pure!r}:\n    importlib.import_module('IACSegLib.' + name)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr


@pytest.mark.slow
def test_the_modules_self_test_passes(slicer_env, iacseg) -> None:
    """``IACSegTest`` as Slicer's SelfTests module runs it: phantom (512 × 512 × 246) → Segment → landmark move
    → save the correction (≈ 1 min on 2 CPU cores); the reader's settings are left as they were."""
    import slicer

    module = iacseg.IACSeg(types.SimpleNamespace(path=str(MODULE / "IACSeg.py")))
    assert module.parent.title == "IACSeg"
    slicer_env.settings[iacseg.SETTINGS_CORRECTIONS] = "/home/reader/MyCorrections"
    slicer.selfTests["IACSeg"]()
    assert slicer_env.settings == {iacseg.SETTINGS_CORRECTIONS: "/home/reader/MyCorrections"}  # set back
    assert list(Path(slicer.app.temporaryPath).iterdir()) == []  # its phantom, store and result removed
    assert slicer_env.app.callbackErrors == []


def test_the_self_test_skips_clearly_where_the_engine_is_not_installed(slicer_env, iacseg, monkeypatch) -> None:
    """On the extension build machines (Slicer --testing, nothing installed) the self-test says why it does not
    run instead of failing on a missing torch/monai; it installs nothing."""
    import slicer

    iacseg.IACSeg(types.SimpleNamespace(path=str(MODULE / "IACSeg.py")))
    real = iacseg.engine.installed_version
    monkeypatch.setattr(iacseg.engine, "installed_version", lambda d: None if d == "monai" else real(d))
    monkeypatch.setattr(slicer_env.app, "_testing", True)
    shown = []
    monkeypatch.setattr(iacseg.IACSegTest, "delayDisplay", lambda self, message, *a, **k: shown.append(message))
    monkeypatch.setattr(iacseg.IACSegTest, "test_segment_and_correct",
                        lambda self: pytest.fail("the self-test must not run without the engine's requirements"))
    slicer.selfTests["IACSeg"]()
    assert len(shown) == 1 and "skipped" in shown[0] and "monai" in shown[0]
    assert list(Path(slicer.app.temporaryPath).iterdir()) == []
