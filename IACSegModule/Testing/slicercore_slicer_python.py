"""Stand-ins for the Qt-bound Python of Slicer that the module imports, under slicer-core (see `slicercore_env`):
``slicer.ScriptedLoadableModule``, ``slicer.parameterNodeWrapper`` (no GUI connection) and ``slicer.packaging``
(records ``pip_ensure`` calls, never installs)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

from slicercore_qt import Widget



def scripted_loadable_module() -> types.ModuleType:
    import unittest

    mod = types.ModuleType("slicer.ScriptedLoadableModule")
    mod.__doc__ = "Stand-in for Slicer's slicer.ScriptedLoadableModule (slicercore_env)."

    class ScriptedLoadableModule:
        def __init__(self, parent) -> None:
            import slicer

            self.parent, self.moduleName = parent, self.__class__.__name__
            parent.title, parent.categories, parent.dependencies = "", [], []
            parent.contributors, parent.helpText, parent.acknowledgementText = [], "", ""
            if not hasattr(slicer, "selfTests"):
                slicer.selfTests = {}
            slicer.selfTests[self.moduleName] = self.runTest

        def resourcePath(self, filename: str) -> str:
            return str(Path(self.parent.path).parent / "Resources" / filename)

        def runTest(self, msec: int = 100, **kwargs) -> None:
            module = sys.modules[self.__class__.__module__]
            case = getattr(module, self.moduleName + "Test")()
            case.messageDelay = msec
            case.runTest(**kwargs)

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None) -> None:
            self.moduleName = self.__class__.__name__.removesuffix("Widget")
            self.parent = parent if parent is not None else Widget("qMRMLWidget", self.moduleName)
            self.layout = self.parent.layout()
            self.developerMode = False

        def resourcePath(self, filename: str) -> str:
            return str(Path(sys.modules[self.__class__.__module__].__file__).parent / "Resources" / filename)

        def setup(self) -> None:
            pass

        def cleanup(self) -> None:
            pass

    class ScriptedLoadableModuleLogic:
        def __init__(self, parent=None) -> None:
            self.moduleName = self.__class__.__name__.removesuffix("Logic")
            self.isSingletonParameterNode = True

        def getParameterNode(self):
            import slicer

            if self.isSingletonParameterNode:
                node = slicer.mrmlScene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
                if node is not None:
                    return node
            node = slicer.vtkMRMLScriptedModuleNode()
            if self.isSingletonParameterNode:
                node.SetSingletonTag(self.moduleName)
            node.SetAttribute("ModuleName", self.moduleName)
            node.SetName(slicer.mrmlScene.GenerateUniqueName(self.moduleName))
            return slicer.mrmlScene.AddNode(node)

    class ScriptedLoadableModuleTest(unittest.TestCase):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)

        def delayDisplay(self, message, requestedDelay=None, msec=None) -> None:
            import slicer

            slicer.util.delayDisplay(message, getattr(self, "messageDelay", msec or requestedDelay or 100))

        def runTest(self) -> None:
            names = [n for n in dir(self) if n.startswith("test") and callable(getattr(self, n))]
            for name in names:
                self.setUp()
                getattr(self, name)()
                self.tearDown()

    for cls in (ScriptedLoadableModule, ScriptedLoadableModuleWidget, ScriptedLoadableModuleLogic,
                ScriptedLoadableModuleTest):
        setattr(mod, cls.__name__, cls)
    return mod


class Choice:
    """``slicer.parameterNodeWrapper.Choice``: the value must be one of ``choices``."""

    def __init__(self, choices) -> None:
        self.choices = list(choices)

    def validate(self, value) -> None:
        if value not in self.choices:
            raise ValueError(f"value {value!r} is not one of {self.choices}")


def parameterNodeWrapper(cls):
    """``slicer.parameterNodeWrapper.parameterNodeWrapper`` without GUI: typed properties stored in a
    vtkMRMLScriptedModuleNode (strings/numbers as parameters, MRML nodes as node references); defaults are written
    when the node lacks them; ``Annotated[..., Choice(...)]`` validates; observers go to the node;
    ``connectGui``/``disconnectGui`` do nothing (no widget is updated from the node or the other way)."""
    import typing

    hints = typing.get_type_hints(cls, globalns=vars(sys.modules[cls.__module__]), include_extras=True)
    fields = {}
    for name, hint in hints.items():
        validators = []
        if typing.get_origin(hint) is typing.Annotated:
            hint, *validators = typing.get_args(hint)
        fields[name] = (hint, [v for v in validators if hasattr(v, "validate")], getattr(cls, name, None))

    def is_node_type(t) -> bool:
        return isinstance(t, type) and hasattr(t, "GetClassName") and hasattr(t, "IsA")

    def read(self, name):
        kind, _, _ = fields[name]
        node = self.parameterNode
        if is_node_type(kind):
            return node.GetNodeReference(name)
        text = node.GetParameter(name)
        if kind is bool:
            return text == "True"
        return kind(text) if kind in (int, float) else text

    def write(self, name, value):
        kind, validators, _ = fields[name]
        for v in validators:
            v.validate(value)
        node = self.parameterNode
        if is_node_type(kind):
            if value is not None and not value.IsA(kind.__name__):
                raise TypeError(f"{name} must be a {kind.__name__}, not {value.GetClassName()}")
            node.SetNodeReferenceID(name, value.GetID() if value is not None else None)
        else:
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise TypeError(f"{name} must be a {kind.__name__}, not {type(value).__name__}")
            node.SetParameter(name, str(value))

    def __init__(self, parameterNode) -> None:
        self.parameterNode = parameterNode
        for name, (kind, _, default) in fields.items():
            if not is_node_type(kind) and not parameterNode.GetParameter(name) and default is not None:
                write(self, name, default)

    members = {"__init__": __init__, "connectGui": lambda self, gui: object(), "disconnectGui": lambda self, tag: None,
               "allParameters": dict.fromkeys(fields), "getValue": read, "setValue": write,
               "StartModify": lambda self: self.parameterNode.StartModify(),
               "EndModify": lambda self, wasModifying: self.parameterNode.EndModify(wasModifying),
               "AddObserver": lambda self, event, callback, priority=0.0:
                   self.parameterNode.AddObserver(event, callback, priority),
               "RemoveObserver": lambda self, tag: self.parameterNode.RemoveObserver(tag),
               "Modified": lambda self: self.parameterNode.Modified()}
    for field in fields:
        members[field] = property(lambda self, n=field: read(self, n), lambda self, v, n=field: write(self, n, v))
    for name, value in members.items():  # the class itself is completed, as Slicer's decorator does
        setattr(cls, name, value)
    return cls


def parameter_node_wrapper_module() -> types.ModuleType:
    mod = types.ModuleType("slicer.parameterNodeWrapper")
    mod.__doc__ = "Stand-in for Slicer's slicer.parameterNodeWrapper without GUI (slicercore_env)."
    mod.parameterNodeWrapper, mod.Choice = parameterNodeWrapper, Choice
    return mod


def packaging_module() -> types.ModuleType:
    mod = types.ModuleType("slicer.packaging")
    mod.__doc__ = ("Stand-in for Slicer's slicer.packaging (slicercore_env): requirements are read, pip_ensure calls "
                   "are recorded in `calls` (requirement names in order, keyword arguments); nothing is installed.")
    mod.calls = []

    def load_requirements(path):
        lines = [line.split("#", 1)[0].strip() for line in Path(path).read_text().splitlines()]
        try:
            from packaging.requirements import Requirement
        except ImportError:  # packaging absent: the requirement texts
            return [line for line in lines if line]
        return [Requirement(line) for line in lines if line]

    def pip_ensure(requirements, constraints=None, skip_packages=None, prompt_install=True, prompt_restart=True,
                   requester=None, skip_in_testing=True, show_progress=True):
        if isinstance(requirements, str):
            requirements = requirements.split()
        elif not isinstance(requirements, (list, tuple)):
            requirements = [requirements]
        names = [getattr(r, "name", None) or re.split(r"[<>=!~\[; ]", str(r), maxsplit=1)[0] for r in requirements]
        mod.calls.append({"requirements": [str(r) for r in requirements], "names": names, "constraints": constraints,
                          "skip_packages": skip_packages, "prompt_install": prompt_install,
                          "prompt_restart": prompt_restart, "requester": requester,
                          "skip_in_testing": skip_in_testing, "show_progress": show_progress})
        return None

    mod.load_requirements, mod.pip_ensure = load_requirements, pip_ensure
    return mod
