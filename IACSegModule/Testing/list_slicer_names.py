"""List every Slicer-side name the module uses and compare with ``verified_slicer_names.json``.

Names are found by an AST scan of ``IACSegModule/*.py`` and ``IACSegModule/IACSegLib/*.py``:
dotted names rooted at ``slicer``, ``qt``, ``vtk``, ``ctk`` (and the PyTorch extension's ``PyTorchUtils``),
names imported from those modules, and — in the files that talk to Slicer — the CamelCase methods called
on MRML/VTK/Qt objects (``node.SetReferenceImageGeometryParameterFromVolumeNode(...)`` → ``method:...``).

    python IACSegModule/Testing/list_slicer_names.py          # prints names; exit 1 if any is unverified
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parents[1]
VERIFIED_FILE = Path(__file__).resolve().with_name("verified_slicer_names.json")
ROOTS = ("slicer", "qt", "vtk", "ctk", "PyTorchUtils")
SLICER_FACING = ("IACSeg.py", "batch.py", "IACSegLib/scene.py", "IACSegLib/widget.py", "IACSegLib/slicer_launcher.py")
_CAMEL = re.compile(r"^[A-Z][a-z]+[A-Za-z0-9]*$")


def module_files() -> list[Path]:
    return sorted(MODULE_DIR.glob("*.py")) + sorted((MODULE_DIR / "IACSegLib").glob("*.py"))


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Call):  # slicer.modules.markups.logic().JumpSlicesToLocation → keep the call
        inner = _dotted(node.func)
        return None if inner is None else ".".join([inner + "()"] + parts[::-1])
    if isinstance(node, ast.Name):
        return ".".join([node.id] + parts[::-1])
    return None


def names_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ROOTS:
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Attribute):
            name = _dotted(node)
            if name and name.split(".")[0] in ROOTS:
                if name.startswith("slicer.util.") and "()." in name:  # a returned array's attribute, not Slicer's
                    name = name.split("().", 1)[0]
                found.add(name)
        if path.relative_to(MODULE_DIR).as_posix() in SLICER_FACING and isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if _CAMEL.match(node.func.attr) and (_dotted(node.func) or "").split(".")[0] not in ROOTS:
                found.add(f"method:{node.func.attr}")
    # keep only the longest chains: slicer.util.loadUI implies slicer.util and slicer
    return {n for n in found if not any(o != n and o.startswith(n + ".") for o in found)}


def used_names() -> dict[str, list[str]]:
    """``{name: [files using it]}`` over the module's Python files."""
    used: dict[str, list[str]] = {}
    for path in module_files():
        for name in names_in(path):
            used.setdefault(name, []).append(str(path.relative_to(MODULE_DIR)))
    return dict(sorted(used.items()))


def load_verified() -> dict[str, dict]:
    return json.loads(VERIFIED_FILE.read_text())["names"]


def unverified(used: dict[str, list[str]], verified: dict[str, dict]) -> list[str]:
    return [n for n in used if not verified.get(n, {}).get("verified")]


def main() -> int:
    used, verified = used_names(), load_verified()
    for name, files in used.items():
        record = verified.get(name, {})
        mark = "ok " if record.get("verified") else "?? "
        print(f"{mark}{name:70s} {record.get('where', '')}  ({', '.join(files)})")
    missing = unverified(used, verified)
    print(f"{len(used)} names, {len(used) - len(missing)} verified, {len(missing)} not verified")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
