"""The review part of the IACSeg panel (Slicer only): progress, QC line, tables, landmark slices, lesion edits, save,
retrain.

Each handler reads the widgets, calls the logic, and writes the widgets; the logic never shows dialogs.

The landmark points of the result on display are observed (only those: the observers of an earlier result are
removed): a drag is applied when it ends, a point moved any other way (the Markups module's control-point table,
Python) when it moves, so the review session always holds the points the views show. A slice box moves its
landmark only when the reader typed another slice than the one it shows.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import qt

import slicer
from iacseg.core.contracts import LANDMARKS, SEGMENTS
from iacseg.core.errors import IACSegError

from .model_list import list_models, user_models_dir
from .parameters import TRAIN_TARGETS, ParameterError, TrainParameters
from .process import ProcessState, ProgressUpdate
from .results import LESION_HEADERS, MEASURE_HEADERS, carry_qc, lesion_rows, measure_rows, read_qc
from .scene import (POSITION_TOLERANCE_MM, jump_to, landmark_lps, painted_voxels, remove_painted_segment,
                    set_landmark_points, write_labels)

SETTINGS_READER = "IACSeg/ReaderName"
MISSED_SEGMENT = "missed"


def _fill(table, headers, rows) -> None:
    table.clear()
    table.setColumnCount(len(headers))
    table.setHorizontalHeaderLabels(list(headers))
    table.setRowCount(len(rows))
    for r, cells in enumerate(rows):
        for c, text in enumerate(cells):
            table.setItem(r, c, qt.QTableWidgetItem(text))


class ReviewPanel:
    def __init__(self, ui, logic, engine_dir: Path | None) -> None:
        self.ui, self.logic, self.lesions = ui, logic, []
        self._observations: list = []  # (markups node, observer tag) of the result on display
        self._shownSlices: dict[str, int] = {}  # what each slice box shows (set by refresh)
        self._dragging = False  # a point is being dragged in a view (PointStart/EndInteractionEvent)
        self._applying = False  # a correction is moving the points: their events are ours
        self.models = list_models("segmenter")
        ui.modelComboBox.addItem("bundled demo model")
        for m in self.models:
            ui.modelComboBox.addItem(m.title)
        ui.reassignComboBox.addItems(list(SEGMENTS.values()))
        ui.trainTargetComboBox.addItems(list(TRAIN_TARGETS))
        ui.readerNameLineEdit.text = slicer.util.settingsValue(SETTINGS_READER, "")
        ui.readerNameLineEdit.connect("editingFinished()", self.onReaderName)
        ui.lesionTable.connect("cellClicked(int,int)", self.onLesionClicked)
        ui.reassignButton.connect("clicked(bool)", self.onReassign)
        ui.deleteLesionButton.connect("clicked(bool)", self.onDelete)
        ui.addPaintedButton.connect("clicked(bool)", self.onAddPainted)
        ui.saveCorrectionButton.connect("clicked(bool)", self.onSave)
        ui.retrainButton.connect("clicked(bool)", self.onRetrain)
        for name in LANDMARKS:
            getattr(ui, f"{name}SpinBox").connect("editingFinished()", lambda n=name: self.onSliceTyped(n))

    def selectedModel(self) -> str | None:
        index = self.ui.modelComboBox.currentIndex
        return str(self.models[index - 1].path) if index > 0 else None

    def onReaderName(self) -> None:
        qt.QSettings().setValue(SETTINGS_READER, self.ui.readerNameLineEdit.text)

    def onProgress(self, update: ProgressUpdate) -> None:
        self.ui.progressBar.value = int(round(update.overall * 100))
        self.ui.progressLabel.text = update.label()

    def onFinished(self, failed) -> None:
        """``failed`` is None on success, else the ended `EngineProcess` (failed or cancelled)."""
        self.ui.cancelButton.enabled = False
        self.ui.segmentButton.enabled = True
        if failed is None:
            self.ui.progressBar.value = 100
            self.ui.progressLabel.text = "Done"
            self.refresh(self.logic.result.report)
            self._observeLandmarks()
        elif failed.state is ProcessState.CANCELLED:
            self.ui.progressLabel.text = "Cancelled"
        else:
            self.ui.progressLabel.text = "Failed"
            slicer.util.errorDisplay(failed.error_message, detailedText="\n".join(failed.log))

    def refresh(self, report) -> None:
        self.showQC(report)
        _fill(self.ui.measuresTable, MEASURE_HEADERS, [r.cells() for r in measure_rows(report)])
        self.lesions = lesion_rows(report)
        _fill(self.ui.lesionTable, LESION_HEADERS, [r.cells() for r in self.lesions])
        self.showSlices()

    def showSlices(self) -> None:
        """Each landmark's slice box: the first slice on or above its plane (the report's ``slice`` for the
        engine's landmarks); the plane's exact slice position in the tooltip."""
        session = self.logic.session
        self._shownSlices = {}
        for name in session.landmarks:
            box = getattr(self.ui, f"{name}SpinBox")
            k = session.landmark_slice(name)
            box.blockSignals(True)
            box.maximum = session.grid.shape[0] - 1
            box.value = k
            box.blockSignals(False)
            box.toolTip = (f"Axial slice of {name}: {k}, the first slice on or above its plane (the plane is at "
                           f"slice {session.landmark_slice_position(name):.2f}); type a slice or drag the point")
            self._shownSlices[name] = k

    def showQC(self, report) -> None:
        """The QC line above the measures: status in words and colour, one line per reason, details in the tooltip."""
        qc, moved = read_qc(report), self.logic.session.landmarks_moved
        self.ui.qcLabel.text = qc.text(moved)
        self.ui.qcLabel.toolTip = qc.tooltip(moved)
        self.ui.qcLabel.styleSheet = f"color: {qc.color}"

    def _observeLandmarks(self) -> None:
        """Observe the points of the result on display, and only those."""
        self.stopObservingLandmarks()
        node = self.logic.markupsNode
        if node is None:
            return
        markups = slicer.vtkMRMLMarkupsNode
        for event, handler in ((markups.PointStartInteractionEvent, self.onPointDragStarted),
                               (markups.PointEndInteractionEvent, self.onPointMoved),
                               (markups.PointModifiedEvent, self.onPointModified)):
            self._observations.append((node, node.AddObserver(event, handler)))

    def stopObservingLandmarks(self) -> None:
        for node, tag in self._observations:
            node.RemoveObserver(tag)
        self._observations = []
        self._dragging = False

    def cleanup(self) -> None:
        self.stopObservingLandmarks()

    def _correct(self, correct) -> bool:
        """Apply a correction; refresh tables from the corrected labels; show a clear error when refused (the
        points and slice boxes then show the session's landmarks again). Returns whether it was applied."""
        t0 = time.perf_counter()
        self._applying = True
        try:
            changed = self.logic.applyCorrection(correct)
        except (IACSegError, ParameterError) as exc:
            self._showSessionLandmarks()
            slicer.util.errorDisplay(str(exc))
            return False
        finally:
            self._applying = False
        measures = self.logic.session.measures(slicer.util.arrayFromVolume(self.logic.volumeNode))
        self.refresh(carry_qc(measures, self.logic.result.report))  # the engine's QC stays: relabelling has none
        self.ui.progressLabel.text = f"{changed} voxel(s) relabelled in {(time.perf_counter() - t0) * 1000:.0f} ms"
        return True

    def _showSessionLandmarks(self) -> None:
        """Put the points and the slice boxes back where the review session has the landmarks."""
        node = self.logic.markupsNode
        self._applying = True
        try:
            if node is not None:
                set_landmark_points(node, self.logic.session.landmarks)
        except IACSegError:
            pass  # a point was deleted or renamed: nothing to put back
        finally:
            self._applying = False
        self.showSlices()

    def _isShown(self, node) -> bool:
        return node is not None and node is self.logic.markupsNode and self.logic.session is not None

    def onPointDragStarted(self, caller, event) -> None:
        self._dragging = self._isShown(caller)

    def onPointModified(self, caller, event) -> None:
        """A point moved: while it is dragged in a view, wait for the drag to end (`onPointMoved`); moved from
        the control-point table or Python, apply it now."""
        if not self._dragging and not self._applying:
            self.onPointMoved(caller, event)

    def onPointMoved(self, caller, event) -> None:
        """Bring the review session to the points of ``caller`` (the result's markups node): each point that is
        not where the session has its landmark moves that landmark (relabelling at once)."""
        self._dragging = False
        if self._applying or not self._isShown(caller):
            return
        session = self.logic.session
        for name, lm in list(session.landmarks.items()):
            try:
                position = landmark_lps(caller, name)
            except IACSegError as exc:
                slicer.util.errorDisplay(str(exc))
                return
            if max(abs(a - b) for a, b in zip(position, lm.position)) > POSITION_TOLERANCE_MM:
                if not self._correct(lambda s, n=name, p=position: s.move_landmark(n, position=p)):
                    return

    def onSliceTyped(self, name: str) -> None:
        """A slice box lost focus or Enter was pressed: move the landmark only to another slice than shown."""
        if self.logic.session is None:
            return
        k = int(getattr(self.ui, f"{name}SpinBox").value)
        if k != self._shownSlices.get(name):
            self._correct(lambda s: s.set_landmark_slice(name, k))

    def _selectedLesion(self):
        row = self.ui.lesionTable.currentRow()
        return self.lesions[row].lesion_id if 0 <= row < len(self.lesions) else None

    def onLesionClicked(self, row: int, column: int) -> None:
        jump_to(self.lesions[row].centroid_ras)

    def onReassign(self) -> None:
        lesion = self._selectedLesion()
        if lesion is not None:
            self._correct(lambda s: s.reassign_lesion(lesion, self.ui.reassignComboBox.currentText))

    def onDelete(self) -> None:
        lesion = self._selectedLesion()
        if lesion is not None:
            self._correct(lambda s: s.delete_lesion(lesion))

    def onAddPainted(self) -> None:
        """Add the voxels painted in a segment named "missed" (Segment Editor) as a new lesion."""
        node = self.logic.segmentationNode
        segment_id = node.GetSegmentation().GetSegmentIdBySegmentName(MISSED_SEGMENT)
        if not segment_id:
            slicer.util.errorDisplay(f'Paint the missed lesion in a segment named "{MISSED_SEGMENT}" first.')
            return
        voxels = painted_voxels(node, segment_id, self.logic.volumeNode)
        if not self._correct(lambda s: s.add_lesion_voxels(voxels)):
            return  # the painting stays, to be fixed
        # Painted in the calcium's layer, the painting may have covered calcified voxels: show the session's labels
        labels = self.logic.session.labels.reshape(-1)[voxels]
        write_labels(node, self.logic.volumeNode, voxels, labels, set(np.unique(labels).tolist()))
        remove_painted_segment(node, segment_id, self.logic.volumeNode)

    def onSave(self) -> None:
        with slicer.util.tryWithErrorDisplay("The correction could not be saved."):
            saved = self.logic.saveCorrection(self.ui.readerNameLineEdit.text)
            self.ui.progressLabel.text = f"Correction saved: {saved.describe()}"

    def onRetrain(self) -> None:
        target = self.ui.trainTargetComboBox.currentText
        out = user_models_dir() / f"{target}-{time.strftime('%Y%m%d-%H%M%S')}"
        with slicer.util.tryWithErrorDisplay("Training could not start."):
            store = self.ui.trainDataPathLineEdit.currentPath or self.logic.storePath()
            params = TrainParameters(target, Path(store), out, init=self.selectedModel() if target == "segmenter" else None)
            self.logic.startTraining(params, self.onProgress, self.onTrainingFinished)
            self.ui.cancelButton.enabled = True

    def onTrainingFinished(self, process) -> None:
        self.ui.cancelButton.enabled = False
        if process.state is ProcessState.FINISHED:
            self.ui.progressLabel.text = f"Training finished: the new model is in {user_models_dir()}"
        else:
            self.onFinished(process)
