"""The review part of the IACSeg panel (Slicer only): progress, QC line, tables, landmark slices, lesion edits, save,
retrain.

Each handler reads the widgets, calls the logic, and writes the widgets; the logic never shows dialogs.
"""

from __future__ import annotations

import time
from pathlib import Path

import qt

import slicer
from iacseg.contracts import LANDMARKS, SEGMENTS
from iacseg.errors import IACSegError

from .models import USER_MODELS_DIR, find_models, model_search_dirs
from .parameters import TRAIN_TARGETS, ParameterError, TrainParameters
from .process import ProcessState, ProgressUpdate
from .results import LESION_HEADERS, MEASURE_HEADERS, carry_qc, landmark_slice, lesion_rows, measure_rows, read_qc
from .scene import jump_to, landmark_lps, painted_array

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
        self.ui, self.logic, self.lesions, self._observer = ui, logic, [], None
        self.models = find_models(model_search_dirs(engine_dir), "segmenter")
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
        grid = self.logic.session.grid
        for name, lm in self.logic.session.landmarks.items():
            box = getattr(self.ui, f"{name}SpinBox")
            box.blockSignals(True)
            box.maximum = grid.shape[0] - 1
            box.value = landmark_slice(grid, lm)
            box.blockSignals(False)

    def showQC(self, report) -> None:
        """The QC line above the measures: status in words and colour, one line per reason, details in the tooltip."""
        qc, moved = read_qc(report), self.logic.session.landmarks_moved
        self.ui.qcLabel.text = qc.text(moved)
        self.ui.qcLabel.toolTip = qc.tooltip(moved)
        self.ui.qcLabel.styleSheet = f"color: {qc.color}"

    def _observeLandmarks(self) -> None:
        node = self.logic.markupsNode
        self._observer = node.AddObserver(slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent, self.onPointMoved)

    def _correct(self, correct) -> None:
        """Apply a correction; refresh tables from the corrected labels; show a clear error when refused."""
        t0 = time.perf_counter()
        try:
            changed = self.logic.applyCorrection(correct)
        except (IACSegError, ParameterError) as exc:
            slicer.util.errorDisplay(str(exc))
            return
        measures = self.logic.session.measures(slicer.util.arrayFromVolume(self.logic.volumeNode))
        self.refresh(carry_qc(measures, self.logic.result.report))  # the engine's QC stays: relabelling has none
        self.ui.progressLabel.text = f"{changed} voxel(s) relabelled in {(time.perf_counter() - t0) * 1000:.0f} ms"

    def onPointMoved(self, caller, event) -> None:
        session = self.logic.session
        for name, lm in session.landmarks.items():
            position = landmark_lps(caller, name)
            if abs(position[2] - lm.z_mm) > 1e-3:
                self._correct(lambda s, n=name, p=position: s.move_landmark(n, position=p))

    def onSliceTyped(self, name: str) -> None:
        if self.logic.session is not None:
            k = getattr(self.ui, f"{name}SpinBox").value
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
        painted = painted_array(node, segment_id, self.logic.volumeNode)
        self._correct(lambda s: s.add_lesion(painted))
        node.GetSegmentation().RemoveSegment(segment_id)

    def onSave(self) -> None:
        with slicer.util.tryWithErrorDisplay("The correction could not be saved."):
            saved = self.logic.saveCorrection(self.ui.readerNameLineEdit.text)
            self.ui.progressLabel.text = f"Correction saved: {saved.describe()}"

    def onRetrain(self) -> None:
        target = self.ui.trainTargetComboBox.currentText
        out = USER_MODELS_DIR / f"{target}-{time.strftime('%Y%m%d-%H%M%S')}"
        with slicer.util.tryWithErrorDisplay("Training could not start."):
            store = self.ui.trainDataPathLineEdit.currentPath or self.logic.storePath()
            params = TrainParameters(target, Path(store), out, init=self.selectedModel() if target == "segmenter" else None)
            self.logic.startTraining(params, self.onProgress, self.onTrainingFinished)
            self.ui.cancelButton.enabled = True

    def onTrainingFinished(self, process) -> None:
        self.ui.cancelButton.enabled = False
        if process.state is ProcessState.FINISHED:
            self.ui.progressLabel.text = "Training finished: the new model is in ~/.iacseg/models"
        else:
            self.onFinished(process)
