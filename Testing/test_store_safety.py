"""Corrections store under crashes and concurrency: SIGKILLed saves lose nothing saved before, two writers
at once lose nothing and never share a version, the lock times out, the ledger chain shows any tampering."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from store_fixtures import small_case, small_labels, small_landmarks

from iacseg.core.errors import InputError
from iacseg.store import CorrectionStore
from iacseg.store.deid import scrub_text
from iacseg.store.ledger import read_ledger
from iacseg.core.files import write_text_atomic
from iacseg.store.safety import store_lock

# Saves corrections in a loop (or COUNT times; after GO_FILE exists if given) and prints one JSON line
# [case, reader, version] after each.
WORKER = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from iacseg.store import CorrectionStore
    from iacseg.outputs.result_folder import read_label_map
    from iacseg.outputs.markups import read_landmarks

    root, reader, cases, count = sys.argv[1], sys.argv[2], sys.argv[3].split(","), int(sys.argv[4])
    store = CorrectionStore.open(root)
    data = {c: (read_label_map(store.labels_path(c))[0], read_landmarks(store.landmarks_path(c))) for c in cases}
    print("ready", flush=True)
    while len(sys.argv) > 5 and not Path(sys.argv[5]).exists():  # a start line for concurrent writers
        time.sleep(0.005)
    n = 0
    while count < 0 or n < count:
        case = cases[n % len(cases)]
        labels, landmarks = data[case]
        labels = labels.copy()
        labels.flat[n % labels.size] = n % 8 + 1
        edit = {"kind": "landmark_moved", "name": "L_petrolingual", "from_z_mm": 9.0, "to_z_mm": 9.0 + n}
        version = store.add_correction(case, reader, labels, landmarks, [edit], note=f"{os.getpid()} save {n}")
        print(json.dumps([case, reader, version]), flush=True)
        n += 1
        if len(sys.argv) > 5:  # concurrent writers: leave the other one a moment to take the lock between saves
            time.sleep(0.1)
""")


@pytest.fixture
def two_case_store(tmp_path) -> CorrectionStore:
    store = CorrectionStore.init(tmp_path / "store")
    for n in range(2):
        store.add_case(*small_case(tmp_path / f"in{n}", seed=n), case_id=f"case{n}")
    return store


def _worker(tmp_path: Path, store: CorrectionStore, reader: str, cases: str, count: int,
            go: Path | None = None) -> subprocess.Popen:
    script = tmp_path / "worker.py"
    if not script.exists():
        script.write_text(WORKER)
    return subprocess.Popen([sys.executable, str(script), str(store.root), reader, cases, str(count),
                             *([str(go)] if go else [])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _saves(stdout: str) -> list[tuple[str, str, int]]:
    """Saves a worker reported as returned (complete lines after 'ready')."""
    return [tuple(json.loads(line)) for line in stdout.splitlines() if line.startswith("[")]


def _check_reported_saves_present(store: CorrectionStore, saves: list[tuple[str, str, int]]) -> None:
    for case_id, reader, version in saves:
        assert version in store.case(case_id).corrections.get(reader, []), (case_id, reader, version)
        folder = store.labels_path(case_id, (reader, version)).parent
        assert json.loads((folder / "correction.json").read_text())["version"] == version


@pytest.mark.slow
def test_sigkill_during_saves_loses_nothing_saved_before(tmp_path, two_case_store):
    store, rng = two_case_store, random.Random(5)
    reported: list[tuple[str, str, int]] = []
    kills, started = 0, time.monotonic()
    while kills < 30 and time.monotonic() - started < 35:
        proc = _worker(tmp_path, store, "Dr A", rng.choice(["case0,case1", "case1,case0"]), -1)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        reported += _saves(out)
        kills += 1
    assert kills >= 20 and len(reported) >= kills  # the kills fell among many saves

    report = store.verify()
    assert report.ok, report.problems
    harmless = ("not in the ledger", "leftover temporary", "the ledger's last line")
    assert all(w.startswith(harmless) for w in report.warnings)
    _check_reported_saves_present(store, reported)
    for case_id in ("case0", "case1"):
        versions = store.case(case_id).corrections["Dr A"]
        assert versions == sorted(set(versions))  # never a version twice

    proc = _worker(tmp_path, store, "Dr A", "case0,case1", 4)  # saving still works afterwards
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert len(_saves(out)) == 4
    final = store.verify()
    assert final.ok and not any("last line" in w for w in final.warnings)


def test_two_writers_at_once_lose_nothing_and_never_share_a_version(tmp_path, two_case_store):
    store = two_case_store
    go = tmp_path / "go"
    writers = [_worker(tmp_path, store, "Dr A", "case0,case1", 6, go), _worker(tmp_path, store, "Dr A", "case0", 6, go)]
    assert [w.stdout.readline().strip() for w in writers] == ["ready", "ready"]
    go.touch()
    outputs = [w.communicate(timeout=120) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], [err for _, err in outputs]
    saves = [s for out, _ in outputs for s in _saves(out)]
    assert len(saves) == 12
    case0 = [v for case, _, v in saves if case == "case0"]
    assert sorted(case0) == list(range(1, 10))  # 3 + 6 saves on case0, each its own version
    assert store.case("case0").corrections == {"Dr A": list(range(1, 10))}
    assert store.case("case1").corrections == {"Dr A": [1, 2, 3]}
    report = store.verify()
    assert report.ok and report.warnings == []
    assert [e["seq"] for e in store.ledger()] == list(range(len(store.ledger())))
    writer_order = [e["details"]["note"].split()[0] for e in store.ledger() if e["kind"] == "correction_saved"]
    assert sum(a != b for a, b in zip(writer_order, writer_order[1:])) >= 2  # the saves really interleaved


def test_the_lock_times_out_with_a_clear_message(tmp_path):
    store = CorrectionStore.init(tmp_path / "store")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store_lock(store.root):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        held.wait(5)
        with pytest.raises(InputError, match="another process"):
            with store_lock(store.root, timeout_s=0.2):
                pass
    finally:
        release.set()
        thread.join()
    with store_lock(store.root, timeout_s=0.2):  # free again
        pass


def test_a_torn_last_ledger_line_is_a_warning_and_the_next_save_repairs_it(two_case_store):
    store = two_case_store
    ledger = store.root / "ledger.jsonl"
    entries_before = len(store.ledger())
    with open(ledger, "ab") as f:
        f.write(b'{"seq": 3, "kind": "correction_sa')  # a crash in the middle of an append
    report = store.verify()
    assert report.ok and any("last line is torn" in w for w in report.warnings)
    assert len(store.ledger()) == entries_before
    store.add_correction("case0", "Dr A", small_labels(), small_landmarks(), [])
    assert store.verify().ok and store.verify().warnings == []
    assert [e["seq"] for e in store.ledger()] == list(range(entries_before + 1))


def test_editing_or_removing_a_ledger_line_breaks_the_chain(two_case_store):
    store = two_case_store
    store.add_correction("case0", "Dr A", small_labels(), small_landmarks(), [])
    ledger = store.root / "ledger.jsonl"
    lines = ledger.read_text().splitlines(keepends=True)
    ledger.write_text("".join(lines[:1] + lines[2:]))  # a case silently dropped
    assert any("does not chain" in p for p in store.verify().problems)
    entry = json.loads(lines[1])
    entry["details"]["subject"] = "0" * 16  # moving a case to another subject / split
    ledger.write_text("".join(lines[:1] + [json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"]
                              + lines[2:]))
    problems = store.verify().problems
    assert any("line 2 was modified" in p for p in problems)
    assert read_ledger(ledger).entries[1]["details"]["subject"] == "0" * 16


def test_atomic_write_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a" / "note.json"
    write_text_atomic(target, "first")
    write_text_atomic(target, "second")
    assert target.read_text() == "second" and os.listdir(target.parent) == ["note.json"]


def test_scrub_text_cuts_uids_paths_and_names():
    text = "series 1.2.840.113619.2.55.3 from /data/Doe_J/ct/IM1.dcm of Doe^John, 2.5 mm, v0.1.0"
    assert scrub_text(text, ["Doe^John"]) == "series <uid> from <path> of <removed>, 2.5 mm, v0.1.0"
