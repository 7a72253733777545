"""Stand-ins for Slicer's PythonQt ``qt`` and ``ctk`` under slicer-core (see `slicercore_env`): in-memory
``QSettings``, ``QTimer`` run by ``slicer.app.processEvents``, ``Qt`` constants, ``QTableWidgetItem``, and
``QFile``/``QUiLoader`` building generic `Widget` stand-ins from a ``.ui`` file. Nothing is drawn."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Callable


def _app():
    import slicer

    return slicer.app



class QSettings:
    """In-memory settings shared by every instance (Slicer's QSettings are one application-wide store)."""

    store: dict[str, Any] = {}

    def __init__(self, *args) -> None:
        pass

    def value(self, key: str, default: Any = None) -> Any:
        return QSettings.store.get(key, default)

    def setValue(self, key: str, value: Any) -> None:
        QSettings.store[key] = value

    def contains(self, key: str) -> bool:
        return key in QSettings.store

    def remove(self, key: str) -> None:
        QSettings.store.pop(key, None)

    def allKeys(self) -> list[str]:
        return list(QSettings.store)

    def sync(self) -> None:
        pass


class _Signal:
    def __init__(self) -> None:
        self.slots: list[Callable] = []

    def connect(self, slot: Callable) -> None:
        self.slots.append(slot)

    def disconnect(self, slot: Callable | None = None) -> None:
        self.slots = [] if slot is None else [s for s in self.slots if s != slot]

    def emit(self, *args) -> None:
        for slot in list(self.slots):
            slot(*args)


class QTimer:
    """Timers run by the event loop (`SlicerApp.processEvents`): ``singleShot(msec, callable)`` and instances with
    ``timeout``, ``start``/``stop``, ``setSingleShot``, ``setInterval``."""

    def __init__(self, *args) -> None:
        self.timeout = _Signal()
        self.interval, self.singleShot_, self._generation = 0, False, 0
        self._active = False

    @staticmethod
    def singleShot(msec: int, callback: Callable, *more) -> None:
        if more or not callable(callback):
            raise NotImplementedError("the qt stand-in supports QTimer.singleShot(msec, callable) only")
        _app().schedule(msec, callback)

    def connect(self, signal: str, slot: Callable) -> None:
        if signal != "timeout()":
            raise NotImplementedError(f"QTimer stand-in has no signal {signal}")
        self.timeout.connect(slot)

    def setSingleShot(self, single: bool) -> None:
        self.singleShot_ = bool(single)

    def setInterval(self, msec: int) -> None:
        self.interval = int(msec)

    def isActive(self) -> bool:
        return self._active

    def start(self, msec: int | None = None) -> None:
        if msec is not None:
            self.interval = int(msec)
        self._generation += 1
        self._active = True
        generation = self._generation

        def fire() -> None:
            if not self._active or generation != self._generation:
                return
            if self.singleShot_:
                self._active = False
            else:
                _app().schedule(self.interval, fire)
            self.timeout.emit()

        _app().schedule(self.interval, fire)

    def stop(self) -> None:
        self._active = False
        self._generation += 1


class QTableWidgetItem:
    def __init__(self, text: str = "") -> None:
        self._text, self._data, self._toolTip = str(text), {}, ""

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:
        self._text = str(text)

    def setData(self, role: int, value: Any) -> None:
        self._data[role] = value

    def data(self, role: int) -> Any:
        return self._data.get(role)

    def setToolTip(self, text: str) -> None:
        self._toolTip = str(text)

    def toolTip(self) -> str:
        return self._toolTip


class Widget:
    """Any widget of a ``.ui`` file (``qt.QUiLoader().load``): Qt properties as attributes (``text``, ``enabled``,
    ``toolTip``, ``value``, ``currentPath``…, initial values from the file), ``connect(signal, slot)``, children,
    and the few methods of its class the module calls (combo boxes, tables, node selectors). ``emit(signal, *args)``
    (not a Qt name) plays a user action: it calls the connected slots."""

    def __init__(self, class_name: str = "QWidget", name: str = "", **properties) -> None:
        self._class, self.name, self.objectName = class_name, name, name
        self.text, self.toolTip, self.styleSheet, self.enabled, self.visible = "", "", "", True, True
        self.value, self.minimum, self.maximum, self.currentPath, self.checked = 0, 0, 99, "", False
        self._children: list[Widget] = []
        self.slots: dict[str, list[Callable]] = {}
        self.items: list[str] = []
        self._index = -1
        self._cells: dict[tuple[int, int], QTableWidgetItem] = {}
        self.headers: list[str] = []
        self._rows = self._columns = 0
        self._current = (-1, -1)
        self.scene = self._node = None
        self.__dict__.update(properties)

    # QObject / QWidget
    def className(self) -> str:
        return self._class

    def children(self) -> list["Widget"]:
        return list(self._children)

    def connect(self, signal: str, slot: Callable) -> bool:
        self.slots.setdefault(signal, []).append(slot)
        return True

    def disconnect(self, signal: str, slot: Callable | None = None) -> None:
        self.slots[signal] = [] if slot is None else [s for s in self.slots.get(signal, []) if s != slot]

    def emit(self, signal: str, *args) -> None:
        for slot in list(self.slots.get(signal, [])):
            slot(*args)

    def blockSignals(self, block: bool) -> bool:
        return False

    def layout(self) -> "Widget":
        return self

    def addWidget(self, widget, *args) -> None:
        self._children.append(widget)

    def addStretch(self, *args) -> None:
        pass

    def setLayout(self, layout) -> None:
        self._children.append(layout)

    def setMRMLScene(self, scene) -> None:
        self.scene = scene

    # combo boxes (currentIndex/currentText stay consistent)
    @property
    def currentIndex(self) -> int:
        return self._index

    @currentIndex.setter
    def currentIndex(self, index: int) -> None:
        self._index = int(index) if 0 <= int(index) < len(self.items) else -1

    @property
    def currentText(self) -> str:
        return self.items[self._index] if 0 <= self._index < len(self.items) else ""

    @currentText.setter
    def currentText(self, text: str) -> None:
        self._index = self.items.index(text) if text in self.items else self._index

    def addItem(self, text: str, *args) -> None:
        self.items.append(str(text))
        if self._index < 0:
            self._index = 0

    def addItems(self, texts) -> None:
        for text in texts:
            self.addItem(text)

    def count(self) -> int:
        return len(self.items)

    def setCurrentIndex(self, index: int) -> None:
        self.currentIndex = index

    def clear(self) -> None:  # a combo box's items, a table's cells
        self.items, self._index, self._cells = [], -1, {}

    # tables
    def setColumnCount(self, n: int) -> None:
        self._columns = int(n)

    def columnCount(self) -> int:
        return self._columns

    def setRowCount(self, n: int) -> None:
        self._rows = int(n)
        self._cells = {k: v for k, v in self._cells.items() if k[0] < self._rows}

    def rowCount(self) -> int:
        return self._rows

    def setHorizontalHeaderLabels(self, labels) -> None:
        self.headers = list(labels)

    def setItem(self, row: int, column: int, item: QTableWidgetItem) -> None:
        self._cells[int(row), int(column)] = item

    def item(self, row: int, column: int) -> QTableWidgetItem | None:
        return self._cells.get((row, column))

    def currentRow(self) -> int:
        return self._current[0]

    def setCurrentCell(self, row: int, column: int) -> None:
        self._current = (int(row), int(column))

    # MRML node selectors
    def currentNode(self):
        return self._node

    def setCurrentNode(self, node) -> None:
        self._node = node
        self.emit("currentNodeChanged(vtkMRMLNode*)", node)


class QFile:
    ReadOnly = 1

    def __init__(self, path) -> None:
        self.path = str(path)

    def exists(self) -> bool:
        return Path(self.path).is_file()

    def open(self, mode) -> bool:
        return self.exists()


_UI_VALUE_TAGS = {"string": str, "bool": lambda t: t == "true", "number": int, "double": float}


class QUiLoader:
    """Builds `Widget` stand-ins from a Qt Designer ``.ui`` file: one per ``<widget>``, with its name, class and the
    simple properties the file sets (layouts are not widgets: their children belong to the enclosing widget)."""

    def load(self, qfile: QFile) -> Widget:
        import xml.etree.ElementTree as ET

        def build(element) -> Widget:
            properties = {}
            for prop in element.findall("property"):
                for child in prop:
                    if child.tag in _UI_VALUE_TAGS:
                        try:
                            properties[prop.get("name")] = _UI_VALUE_TAGS[child.tag](child.text or "")
                        except ValueError:
                            pass
            widget = Widget(element.get("class", "QWidget"), element.get("name", ""), **properties)
            for child in _child_widgets(element):
                widget._children.append(build(child))
            return widget

        def _child_widgets(element):
            for child in element:
                if child.tag == "widget":
                    yield child
                elif child.tag in ("layout", "item"):
                    yield from _child_widgets(child)

        root = ET.parse(qfile.path).getroot().find("widget")
        return build(root)


def qt_module() -> types.ModuleType:
    qt = types.ModuleType("qt")
    qt.__doc__ = "Stand-in for Slicer's PythonQt `qt` (slicercore_env)."
    qt.QSettings, qt.QTimer, qt.QTableWidgetItem = QSettings, QTimer, QTableWidgetItem
    qt.QFile, qt.QUiLoader, qt.QWidget = QFile, QUiLoader, Widget
    qt.QVBoxLayout = qt.QFormLayout = lambda *args: Widget("QVBoxLayout")
    qt.Qt = types.SimpleNamespace(WaitCursor=3, ArrowCursor=0, UserRole=256, DisplayRole=0, ToolTipRole=3,
                                  AlignCenter=0x84, Checked=2, Unchecked=0)
    qt.STAND_IN = True
    return qt


def ctk_module() -> types.ModuleType:
    ctk = types.ModuleType("ctk")
    ctk.__doc__ = "Stand-in for Slicer's PythonQt `ctk` (slicercore_env): empty."
    ctk.STAND_IN = True
    return ctk

