"""Every Slicer/Qt/VTK/CTK name the Slicer module uses was verified against Slicer's source code.

Slicer cannot run here, so ``IACSegModule/Testing/verified_slicer_names.json`` records, for each name, where
it was found in a snapshot of Slicer/Slicer (filled by ``verify_slicer_names.py``). A new name in the module
fails this test until it is verified and recorded.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "IACSegModule" / "Testing"))

import list_slicer_names as names  # noqa: E402


def test_the_scan_finds_the_modules_slicer_calls() -> None:
    used = names.used_names()
    for expected in ("slicer.util.launchConsoleProcess", "slicer.packaging.pip_ensure",
                     "slicer.modules.markups.logic().JumpSlicesToLocation", "slicer.parameterNodeWrapper.Choice",
                     "method:SetReferenceImageGeometryParameterFromVolumeNode"):
        assert expected in used
    assert not any(n.startswith("iacseg") for n in used)


def test_every_used_name_is_verified_with_a_source_location() -> None:
    used, verified = names.used_names(), names.load_verified()
    assert names.unverified(used, verified) == []
    for name in used:
        assert verified[name]["where"].startswith(("Slicer/Slicer ", "fepegar/SlicerPyTorch ")), name


def test_a_made_up_name_would_be_reported() -> None:
    assert names.unverified({"slicer.util.noSuchFunction": ["IACSeg.py"]}, names.load_verified()) == \
        ["slicer.util.noSuchFunction"]


def test_library_logic_imports_no_slicer() -> None:
    pure = ["parameters.py", "process.py", "kill.py", "results.py", "review.py", "corrections.py", "batch.py",
            "engine.py", "models.py"]
    lib = Path(names.MODULE_DIR) / "IACSegLib"
    for file in pure:
        assert not any(n.split(".")[0] in names.ROOTS for n in names.names_in(lib / file)), file
