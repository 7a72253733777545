"""The engine's imports follow the documented flow: the layers listed in docs/DESIGN.md ("Import layers") are read,
every ``import`` in ``iacseg`` (module level and inside functions) is resolved, and a module importing a later layer,
a sibling layer, or taking part in an import cycle fails the test. The torch-free parts stay torch-free."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "IACSegExtension" / "iacseg"
DESIGN = ROOT / "docs" / "DESIGN.md"


def documented_layers(text: str) -> dict[str, int]:
    """``{top-level name under iacseg: layer number}`` from the numbered list between the import-layers markers."""
    block = re.search(r"<!-- import-layers -->(.*?)<!-- /import-layers -->", text, re.S)
    assert block, "docs/DESIGN.md has no import-layers list"
    layers: dict[str, int] = {}
    for line in block.group(1).strip().splitlines():
        number = re.match(r"\s*(\d+)\.", line)
        assert number, f"not a numbered layer line: {line!r}"
        head = line.split("(")[0]  # words in parentheses explain, they do not name layers
        for name in re.findall(r"`([A-Za-z_]+)`", head):
            layers[name] = int(number.group(1))
    return layers


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def engine_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Engine modules ``name`` imports, each with the packages Python runs on the way (their ``__init__``)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in modules else origin for a in node.names]
        else:
            continue
        for target in found:
            if target != "iacseg" and not target.startswith("iacseg."):
                continue
            parts = target.split(".")
            targets.update(".".join(parts[:n]) for n in range(2, len(parts) + 1) if ".".join(parts[:n]) in modules)
    # the packages holding ``name`` itself are loaded before it, not by it
    own = {".".join(name.split(".")[:n]) for n in range(1, len(name.split(".")) + 1)}
    return targets - own


def top(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "core"  # the package root holds only the version


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = engine_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_every_part_of_the_engine_is_in_a_documented_layer() -> None:
    layers = documented_layers(DESIGN.read_text(encoding="utf-8"))
    missing = sorted({top(n) for n in engine_modules()} - set(layers))
    assert not missing, f"not in docs/DESIGN.md's import layers: {missing}"


def test_no_module_imports_a_later_or_sibling_layer(graph) -> None:
    layers = documented_layers(DESIGN.read_text(encoding="utf-8"))
    wrong = [f"{a} → {b} (layer {layers[top(a)]} imports layer {layers[top(b)]})"
             for a, targets in sorted(graph.items()) for b in sorted(targets)
             if top(a) != top(b) and layers[top(b)] >= layers[top(a)]]
    assert not wrong, "imports against the documented flow:\n" + "\n".join(wrong)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_there_are_no_import_cycles(graph) -> None:
    assert cycles(graph) == []


def test_the_checks_catch_what_they_are_for() -> None:
    """A later layer imported, a sibling imported and a cycle are each found (the test can fail)."""
    layers = documented_layers("<!-- import-layers -->\n1. `core`\n2. `io`\n3. `evaluate`, `train`\n"
                               "<!-- /import-layers -->")
    assert layers == {"core": 1, "io": 2, "evaluate": 3, "train": 3}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    modules = {"iacseg.io.read": Path(), "iacseg.io": Path(), "iacseg.core.files": Path(), "iacseg.core": Path()}
    source = ROOT / "Testing" / "_import_probe.py"
    try:
        source.write_text("def f():\n    from ..core.files import write_text_atomic\n", encoding="utf-8")
        hidden = imports_of("iacseg.io.read", source, modules)
    finally:
        source.unlink()
    assert hidden == {"iacseg.core", "iacseg.core.files"}  # a function-level import counts, with its package


def test_the_torch_free_parts_load_without_torch() -> None:
    """The bottom layer, model folders, the output-folder readers and the Slicer module's engine-facing files."""
    code = ("import sys\nsys.path.insert(0, %r)\n"
            "sys.modules.update(dict.fromkeys(['slicer', 'qt', 'vtk', 'ctk']))\n"
            "import iacseg.core.contracts, iacseg.core.errors, iacseg.core.progress, iacseg.core.locations, "
            "iacseg.core.anatomy, iacseg.core.landmarks, iacseg.core.plane, iacseg.core.grid, iacseg.core.files, "
            "iacseg.core.device, iacseg.core.threshold, iacseg.core.folder_guard\n"
            "import iacseg.models.folders, iacseg.models.defaults, iacseg.models.output_folder\n"
            "import iacseg.outputs.result_folder, iacseg.outputs.truth_folder, iacseg.outputs.nnunet_dataset\n"
            "import IACSegLib.model_list, IACSegLib.results, IACSegLib.parameters\n"
            "print('torch' in sys.modules)\n") % str(ROOT / "IACSegModule")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"
