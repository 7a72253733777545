"""Fill ``verified_slicer_names.json`` by looking each used name up in a git snapshot of Slicer's source.

Developer tool (not run by the tests): the snapshot here came from the search tools' ``fetch`` of
``github:Slicer/Slicer``. For every name of `list_slicer_names.used_names` it searches the definition
(a ``def``/``class`` in Slicer's Python, a method/property/event in a C++ header, or for qt/ctk/vtk a use
in Slicer's own Python) and records ``verified`` and ``where`` (file in Slicer/Slicer at the commit).

    python IACSegModule/Testing/verify_slicer_names.py /work/.mirror/Slicer+Slicer/repo
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import list_slicer_names as L

EXTERNAL = {  # names from other extensions, checked with the search tools by hand
    "PyTorchUtils.PyTorchUtilsLogic": "fepegar/SlicerPyTorch PyTorchUtils/PyTorchUtils.py (class PyTorchUtilsLogic)",
    "PyTorchUtils.PyTorchUtilsLogic().installTorch":
        "fepegar/SlicerPyTorch PyTorchUtils/PyTorchUtils.py (def installTorch(self, askConfirmation=False, "
        "forceComputationBackend=None, torchVersionRequirement=None, ...))",
}


def grep(repo: str, pattern: str, *paths: str) -> str | None:
    """First ``path:line`` in the snapshot's HEAD matching the extended regex, outside Testing folders."""
    out = subprocess.run(["git", "-C", repo, "grep", "-n", "-E", pattern, "HEAD", "--", *paths],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        path = line.split(":", 2)[1]
        if "/Testing/" not in path:
            return path + ":" + line.split(":", 3)[2]
    return None


def rules(name: str) -> list[tuple[str, tuple[str, ...]]]:
    """(regex, paths) tried in order for a name."""
    last = re.sub(r"\(\)", "", name).split(".")[-1]
    if name.startswith("method:"):
        m = name.split(":", 1)[1]
        prop = re.sub(r"^(Set|Get)", "", m)
        core = ("Libs/MRML/Core/*.h", "Libs/vtkSegmentationCore/*.h")
        return [(rf"\b{m}\s*\(", core), (rf"Macro\(\s*{prop}\s*,", core), (rf"\b{m}\s*\(", ("*.h",)),
                (rf"def {m}\b", ("*.py",))]
    if name.startswith(("qt.", "ctk.", "vtk.")):
        root, cls = name.split(".")[:2]
        rest = name.split(".")[2:]
        found = [(rf"\b{root}\.{re.escape(cls)}\b", ("*.py",))]
        if rest and rest[-1] != "":
            found.append((rf"\b{re.escape(cls)}\(\)\.{re.escape(rest[-1].rstrip('()'))}\b|\.{last}\b", ("*.py",)))
        return found
    if name.startswith("slicer.util."):
        return [(rf"^(def|class) {last}\b", ("Base/Python/slicer/util.py",))]
    if name.startswith("slicer.packaging."):
        return [(rf"^def {last}\b", ("Base/Python/slicer/packaging.py",))]
    if name.startswith("slicer.parameterNodeWrapper."):
        return [(rf"^(def|class) {last}\b", ("Base/Python/slicer/parameterNodeWrapper/*.py",))]
    if name.startswith("slicer.ScriptedLoadableModule."):
        return [(rf"^class {last}\b", ("Base/Python/slicer/ScriptedLoadableModule.py",))]
    if name.startswith("slicer.app."):
        return [(rf"Q_PROPERTY\(.*\b{last}\b|\b{last}\s*\(", ("Base/QTCore/qSlicerCoreApplication.h",
                                                              "Base/QTGUI/qSlicerApplication.h",
                                                              "Base/QTGUI/qSlicerCommandOptions.h"))]
    if name.startswith("slicer.mrmlScene."):
        return [(rf"\b{last}\b", ("Libs/MRML/Core/vtkMRMLScene.h",))]
    if name.startswith("slicer.modules.markups.logic"):
        return [(rf"\b{last}\s*\(", ("Modules/Loadable/Markups/Logic/vtkSlicerMarkupsLogic.h",)),
                (r"logic\(\)", ("Base/QTCore/qSlicerAbstractCoreModule.h",))]
    if name.startswith("slicer.vtkMRML"):
        cls = name.split(".")[1]
        return [(rf"\b{last}\b", (f"Libs/MRML/Core/{cls}.h", f"Modules/Loadable/*/MRML/{cls}.h"))]
    return []


def verify(repo: str) -> dict:
    commit = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    names = {}
    for name in L.used_names():
        if name in EXTERNAL:
            names[name] = {"verified": True, "where": EXTERNAL[name]}
            continue
        where = None
        for pattern, paths in rules(name):
            where = grep(repo, pattern, *paths)
            if where:
                break
        names[name] = {"verified": bool(where), "where": f"Slicer/Slicer {where}" if where else "not found"}
    return {"source": f"Slicer/Slicer at {commit} (git snapshot from the search tools' fetch)",
            "how": "IACSegModule/Testing/verify_slicer_names.py", "names": names}


if __name__ == "__main__":
    result = verify(sys.argv[1])
    L.VERIFIED_FILE.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    bad = [n for n, r in result["names"].items() if not r["verified"]]
    print(f"{len(result['names'])} names, {len(bad)} not found: {bad}")
