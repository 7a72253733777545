"""Stand-ins for Slicer's ``qt`` and ``slicer`` modules and the panel's widgets, so that
`IACSegLib.review_panel.ReviewPanel` runs under pytest (Slicer cannot run here).

Only what the panel touches is imitated: widget properties are plain attributes (``label.text``,
``label.styleSheet``…), a table keeps its cell texts, ``slicer.util`` records error dialogs. The widgets are
the ones the module's ``.ui`` file declares: a name missing there is an `AttributeError`, as in Slicer.

    panel_module = install(monkeypatch)              # imports IACSegLib.review_panel against the stand-ins
    panel = panel_module.ReviewPanel(FakeUI(), FakeLogic(load_case_result(folder), hu), None)
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

UI_FILE = Path(__file__).resolve().parents[1] / "Resources" / "UI" / "IACSeg.ui"


class FakeWidget:
    """Any widget of the panel: properties as attributes, connected slots by signal, table cells by (row, col)."""

    def __init__(self, name: str) -> None:
        self.name, self.text, self.toolTip, self.styleSheet = name, "", "", ""
        self.value, self.maximum, self.currentIndex, self.currentText, self.enabled = 0, 99, 0, "", True
        self.slots: dict = {}
        self.items: list[str] = []
        self.cells: dict[tuple[int, int], str] = {}
        self.headers: list[str] = []
        self.rows = 0

    def connect(self, signal: str, slot) -> None:
        self.slots[signal] = slot

    def addItem(self, text: str) -> None:
        self.items.append(text)

    def addItems(self, texts) -> None:
        self.items.extend(texts)

    def blockSignals(self, block: bool) -> None:
        pass

    def clear(self) -> None:
        self.cells = {}

    def setColumnCount(self, n: int) -> None:
        pass

    def setHorizontalHeaderLabels(self, labels) -> None:
        self.headers = list(labels)

    def setRowCount(self, n: int) -> None:
        self.rows = n

    def setItem(self, row: int, column: int, item) -> None:
        self.cells[row, column] = item.text() if callable(item.text) else item.text  # Qt's item or the stand-in

    def currentRow(self) -> int:
        return -1

    def row_cells(self) -> dict[str, list[str]]:
        """A table's rows by their first cell."""
        rows = [[self.cells.get((r, c), "") for c in range(len(self.headers))] for r in range(self.rows)]
        return {row[0]: row[1:] for row in rows}


class FakeUI:
    """``slicer.util.childWidgetVariables`` of the module's .ui file: one `FakeWidget` per declared widget."""

    def __init__(self, ui_file: Path = UI_FILE) -> None:
        for element in ET.parse(ui_file).iter("widget"):
            setattr(self, element.get("name"), FakeWidget(element.get("name")))


class FakeTableWidgetItem:
    def __init__(self, text: str = "") -> None:
        self.text = text


class FakeSettings:
    values: dict = {}

    def setValue(self, key: str, value) -> None:
        FakeSettings.values[key] = value


def _slicer_module(errors: list[str]) -> types.ModuleType:
    slicer = types.ModuleType("slicer")

    @contextlib.contextmanager
    def try_with_error_display(message, **kwargs):
        try:
            yield
        except Exception as exc:  # noqa: BLE001 — Slicer shows any error in a dialog
            errors.append(f"{message} {exc}")

    slicer.util = types.SimpleNamespace(
        settingsValue=lambda key, default=None, **kw: FakeSettings.values.get(key, default),
        errorDisplay=lambda message, **kw: errors.append(str(message)),
        arrayFromVolume=lambda node: node.array,
        tryWithErrorDisplay=try_with_error_display)
    slicer.vtkMRMLMarkupsNode = types.SimpleNamespace(PointStartInteractionEvent="PointStartInteractionEvent",
                                                      PointEndInteractionEvent="PointEndInteractionEvent",
                                                      PointModifiedEvent="PointModifiedEvent")
    slicer.modules = types.SimpleNamespace(markups=types.SimpleNamespace(
        logic=lambda: types.SimpleNamespace(JumpSlicesToLocation=lambda *a: None)))
    slicer.errors = errors  # what the error dialogs said (not a Slicer name: for the tests)
    return slicer


def install(monkeypatch) -> types.ModuleType:
    """Put the stand-ins in ``sys.modules`` (undone after the test) and import `IACSegLib.review_panel` against them."""
    qt = types.ModuleType("qt")
    qt.QTableWidgetItem, qt.QSettings = FakeTableWidgetItem, FakeSettings
    monkeypatch.setitem(sys.modules, "qt", qt)
    monkeypatch.setitem(sys.modules, "slicer", _slicer_module([]))
    for name in ("IACSegLib.review_panel", "IACSegLib.scene"):  # imported afresh here, forgotten after the test
        monkeypatch.setitem(sys.modules, name, None)
        del sys.modules[name]
    return importlib.import_module("IACSegLib.review_panel")


class FakeNode:
    def __init__(self, array: np.ndarray | None = None) -> None:
        self.array, self.observers = array, []

    def AddObserver(self, event, callback) -> int:
        self.observers.append((event, callback))
        return len(self.observers)

    def RemoveObserver(self, tag: int) -> None:
        self.observers[tag - 1] = (None, None)

    def GetNumberOfControlPoints(self) -> int:  # as a markups node: none (the panel tests' nodes hold no points)
        return 0

    def GetName(self) -> str:
        return "fake node"


class FakeLogic:
    """What the panel uses of ``IACSegLogic`` after Segment: the loaded result, its review session, the nodes."""

    def __init__(self, result, hu: np.ndarray) -> None:
        from IACSegLib.review import ReviewSession

        self.result, self.volumeNode, self.markupsNode, self.process = result, FakeNode(hu), FakeNode(), None
        self.session = ReviewSession(result.labels, result.grid, result.plane, result.landmarks, reader="Dr A")

    def applyCorrection(self, correct) -> int:
        return correct(self.session).changed_voxels
