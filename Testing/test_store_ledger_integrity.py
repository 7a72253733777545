"""Corrections store ledger integrity: a damaged ledger is never appended to, the chain is anchored in
``store.json`` (a rewritten or shortened ledger fails ``verify``), older stores without an anchor still work,
crash-left ``.partial`` folders of the store are cleaned (and nothing else), and ``store add --allow-gaps``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from store_fixtures import small_case, small_labels, small_landmarks, write_engine_output

from iacseg.cli.main import main
from iacseg.core.errors import InputError
from iacseg.io import read_ct
from iacseg.io.dicom_write import write_ct_series
from iacseg.store import CorrectionStore
from iacseg.store.anchor import ANCHOR_KEY, store_file_text
from iacseg.store.ledger import canonical_text, entry_hash, read_ledger
from iacseg.store.safety import host_tag
from iacseg.core.files import sha256_bytes, sha256_of

EDIT = {"kind": "landmark_moved", "name": "L_petrolingual", "from_z_mm": 9.0, "to_z_mm": 11.0}


@pytest.fixture
def store(tmp_path) -> CorrectionStore:
    """A store with case c1 and one correction of Dr A (ledger: created, added, saved, edit)."""
    store = CorrectionStore.init(tmp_path / "store")
    store.add_case(*small_case(tmp_path / "in0"), case_id="c1")
    store.add_correction("c1", "Dr A", small_labels(), small_landmarks(), [EDIT])
    return store


def _ledger(store: CorrectionStore) -> Path:
    return store.root / "ledger.jsonl"


def _refused(args: list, capsys) -> str:
    """Run ``iacseg ARGS``; it must exit 2 with one line naming the damaged ledger and ``store verify``."""
    capsys.readouterr()
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "damaged" in err and "iacseg store verify" in err, err
    return err


def _without_anchor(store: CorrectionStore) -> None:
    """Make ``store.json`` what an IACSeg before anchors wrote."""
    info = json.loads((store.root / "store.json").read_text())
    del info[ANCHOR_KEY]
    (store.root / "store.json").write_text(store_file_text(info))


def _rechain(lines: list[bytes], start: int) -> list[bytes]:
    """Recompute ``prev`` and ``hash`` of every line from ``start`` on (what a careful forger does)."""
    out = list(lines)
    for n in range(start, len(out)):
        entry = json.loads(out[n])
        entry["prev"] = sha256_bytes(out[n - 1])
        entry["hash"] = entry_hash(entry)
        out[n] = canonical_text(entry).encode("ascii")
    return out


def _write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


@pytest.mark.parametrize("anchored", [True, False], ids=["anchored", "older-store"])
@pytest.mark.parametrize("damage", ["edited", "not-json", "removed"])
def test_a_damaged_middle_line_refuses_every_write_and_appends_nothing(store, tmp_path, capsys, damage, anchored):
    if not anchored:
        _without_anchor(store)
    ledger = _ledger(store)
    lines = ledger.read_bytes().splitlines()
    if damage == "edited":  # still JSON, chain left as it was
        lines[1] = lines[1].replace(b'"case_id":"c1"', b'"case_id":"c9"')
    elif damage == "not-json":
        lines[1] = lines[1][:40] + b"#" + lines[1][41:]
    else:
        del lines[1]
    _write_lines(ledger, lines)
    before, cases_before = ledger.read_bytes(), sorted((store.root / "cases").iterdir())

    ct, out = small_case(tmp_path / "in1", seed=1)
    _refused(["store", "add", store.root, "--image", ct, "--engine-output", out, "--case-id", "c2"], capsys)
    _refused(["store", "status", store.root, "c1", "in_review", "--reader", "Chief"], capsys)
    with pytest.raises(InputError, match="damaged"):
        CorrectionStore.open(store.root).add_correction("c1", "Dr A", small_labels(), small_landmarks(), [])
    assert ledger.read_bytes() == before  # nothing appended
    assert sorted((store.root / "cases").iterdir()) == cases_before  # no case published
    assert not list((store.root / "cases/c1/corrections/dr_a").glob("v002"))
    assert main(["store", "verify", str(store.root)]) == 1


def test_a_rewritten_chain_passes_the_chain_check_but_not_the_anchor(store, capsys):
    ledger = _ledger(store)
    landmarks = store.landmarks_path("c1", ("Dr A", 1))
    doc = json.loads(landmarks.read_text())
    doc["markups"][0]["controlPoints"][0]["position"][2] += 5.0  # a reader's landmark moved after the fact
    landmarks.write_text(json.dumps(doc, indent=2))
    lines = ledger.read_bytes().splitlines()
    saved = json.loads(lines[2])
    saved["files"][landmarks.relative_to(store.root).as_posix()] = sha256_of(landmarks)
    lines[2] = canonical_text(saved).encode("ascii")
    _write_lines(ledger, _rechain(lines, 2))
    assert read_ledger(ledger).problems == []  # the chain alone no longer shows it

    report = store.verify()
    assert not report.ok and not any(p.startswith("changed:") for p in report.problems)
    assert any("do not match the anchor in store.json" in p for p in report.problems), report.problems
    capsys.readouterr()
    assert main(["store", "verify", str(store.root)]) == 1
    assert "DAMAGED" in capsys.readouterr().out
    _refused(["store", "status", store.root, "c1", "in_review", "--reader", "Chief"], capsys)


def test_a_ledger_cut_short_by_whole_lines_fails_verify(store, capsys):
    ledger = _ledger(store)
    lines = ledger.read_bytes().splitlines()
    _write_lines(ledger, lines[:2])  # the correction's two entries gone, the rest of the chain intact
    assert read_ledger(ledger).problems == []
    report = store.verify()
    assert not report.ok
    assert any(p.startswith("the ledger has 2 entries") and "but store.json anchors 4" in p
               and p.endswith("entries were removed") for p in report.problems), report.problems
    before = ledger.read_bytes()
    _refused(["store", "status", store.root, "c1", "in_review", "--reader", "Chief"], capsys)
    assert ledger.read_bytes() == before


def test_an_older_store_without_anchor_opens_verifies_and_is_anchored_by_the_next_save(store, capsys):
    _without_anchor(store)
    report = store.verify()
    assert report.ok, report.problems  # store.json still matches its recorded sha256
    assert report.warnings == ["no ledger anchor recorded in store.json (an older store); the next save anchors it"]
    assert report.anchored_entries is None
    older = CorrectionStore.open(store.root)
    assert older.add_correction("c1", "Dr A", small_labels(1), small_landmarks(), []) == 2
    anchor = json.loads((store.root / "store.json").read_text())[ANCHOR_KEY]
    assert anchor["entries"] == len(older.ledger()) == 5 and anchor["bytes"] == _ledger(store).stat().st_size
    report = store.verify()
    assert report.ok and report.warnings == [] and report.anchored_entries == 5
    capsys.readouterr()
    assert main(["store", "verify", str(store.root)]) == 0
    assert "(5 entries, 5 anchored, 0 warnings)" in capsys.readouterr().out


def test_a_save_interrupted_before_its_anchor_is_no_damage_and_the_next_save_anchors_it(store):
    store_json = store.root / "store.json"
    old_info = store_json.read_bytes()
    store.set_status("c1", "in_review", "Chief")
    store_json.write_bytes(old_info)  # as if killed between the ledger line and store.json
    report = store.verify()
    assert report.ok and report.warnings == [] and (report.entries, report.anchored_entries) == (5, 4)
    store.set_status("c1", "approved", "Chief")
    report = store.verify()
    assert report.ok and (report.entries, report.anchored_entries) == (6, 6)
    assert store.case("c1").status == "approved"


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def _folder(path: Path, files: dict[str, str], age_s: float = 0.0) -> Path:
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
    when = time.time() - age_s
    for p in [*path.iterdir(), path]:
        os.utime(p, (when, when))
    return path


def test_stale_partial_folders_of_the_store_are_removed_and_named_and_nothing_else(store, capsys):
    cases, reader = store.root / "cases", store.root / "cases/c1/corrections/dr_a"
    host, dead, hour = host_tag(), _dead_pid(), 3600.0
    removed = [
        _folder(cases / f".partial-{dead}-{host}-0123abcd", {"image.nii.gz": "half", "case.json": "{"}),
        _folder(reader / f".partial-{dead}-{host}-4567cdef", {"edits.jsonl": "", ".correction.x1.tmp": ""}),
        _folder(cases / ".partial-ab_12cde", {"case.json": "{"}, age_s=2 * hour),  # an older IACSeg's name
    ]
    kept = [
        _folder(cases / f".partial-{os.getpid()}-{host}-89abcdef", {"image.nii.gz": "in progress"}),  # running
        _folder(cases / ".partial-notes", {"notes.txt": "mine"}, age_s=2 * hour),  # a user's folder
        _folder(cases / ".partial-keepme12", {"notes.txt": "mine"}, age_s=2 * hour),  # store-like name, user's file
    ]
    listed = [w for w in store.verify().warnings if w.startswith("leftover temporary folder")]
    assert len(listed) == 6

    capsys.readouterr()
    assert main(["store", "status", str(store.root), "c1", "in_review", "--reader", "Chief"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("iacseg: warning: removed 3 leftover temporary folder(s)")
    assert all(p.relative_to(store.root).as_posix() in err for p in removed)
    assert not any(p.exists() for p in removed)
    assert all(p.is_dir() and any(p.iterdir()) for p in kept)
    assert not any(p.name in err for p in kept)
    assert store.verify().ok


def _gap_series(folder: Path) -> list[Path]:
    """A small axial DICOM series whose slice at 8 mm is missing."""
    z = np.array([0, 2, 4, 6, 10, 12, 14, 16, 18], float)
    hu = np.full((len(z), 24, 24), -1000.0, np.float32)
    hu[:, 4:20, 4:20] = 40.0
    positions = np.column_stack([np.zeros(len(z)), np.zeros(len(z)), z])
    return write_ct_series(folder, hu, positions, (1, 0, 0), (0, 1, 0), (0.5, 0.5), slice_thickness_mm=2.0)


def test_store_add_reads_a_series_with_a_missing_slice_only_with_allow_gaps(store, tmp_path, capsys):
    _gap_series(tmp_path / "dicom")
    grid = read_ct(tmp_path / "dicom", allow_gaps=True).grid
    labels = np.zeros(grid.shape, np.uint8)
    labels[2, 10, 10] = 2
    out = write_engine_output(tmp_path / "out", labels, grid, small_landmarks())
    args = ["store", "add", str(store.root), "--image", str(tmp_path / "dicom"), "--engine-output", str(out),
            "--case-id", "gap"]
    before = _ledger(store).read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing slices" in err and "--allow-gaps" in err, err
    assert _ledger(store).read_bytes() == before and not (store.root / "cases/gap").exists()

    assert main([*args, "--allow-gaps"]) == 0
    assert capsys.readouterr().out.strip() == "gap"
    assert store.grid("gap").shape == grid.shape and grid.shape[0] == 10  # the gap filled by interpolation
    assert store.verify().ok
