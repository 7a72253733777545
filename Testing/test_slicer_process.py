"""The engine process runner: states, JSON-lines progress, errors, and cancel killing the whole tree."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "IACSegModule"))

from IACSegLib import process as proc_mod  # noqa: E402
from IACSegLib.kill import _alive, kill_process_tree  # noqa: E402
from IACSegLib.process import (EngineError, EngineProcess, ProcessState, ProgressParser,  # noqa: E402
                               SubprocessLauncher)


class FakeHandle:
    pid = 424242

    def poll(self) -> None:
        return None


class FakeLauncher:
    """Records the command; the test plays the process's output and exit."""

    own_session = True

    def __init__(self) -> None:
        self.args: list[str] | None = None
        self.on_line: Callable[[str], None] | None = None
        self.on_exit: Callable[[int], None] | None = None

    def launch(self, args, env_update, on_line, on_exit):
        self.args, self.env, self.on_line, self.on_exit = list(args), env_update, on_line, on_exit
        return FakeHandle()


def line(stage: str, fraction: float, elapsed: float, message: str = "") -> str:
    return json.dumps({"stage": stage, "fraction": fraction, "message": message, "elapsed_s": elapsed})


def test_states_and_progress_with_a_fake_runner() -> None:
    launcher, states, updates = FakeLauncher(), [], []
    run = EngineProcess(launcher, on_progress=updates.append, on_state=states.append)
    assert run.state is ProcessState.IDLE
    run.start(["python", "-m", "iacseg", "segment"], {"PYTHONPATH": "/engine"})
    assert run.state is ProcessState.RUNNING and launcher.env == {"PYTHONPATH": "/engine"}
    with pytest.raises(RuntimeError, match="already in progress"):
        run.start(["again"])
    launcher.on_line("loading torch…")
    launcher.on_line(line("segment", 0.5, 20.0, "patch 4/8"))
    assert len(updates) == 1
    # read+preprocess+landmarks = 0.30 of the run, segment 0.50 → half of it done = 0.55
    assert updates[0].overall == pytest.approx(0.55)
    assert updates[0].remaining_s == pytest.approx(20.0 * 0.45 / 0.55)
    launcher.on_exit(0)
    assert states == [ProcessState.RUNNING, ProcessState.FINISHED]
    assert run.log[0] == "loading torch…"


def test_cancel_goes_through_cancelling_to_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    killed = []
    monkeypatch.setattr(proc_mod, "kill_process_tree", lambda pid, own_session, grace_s: killed.append(pid))
    launcher = FakeLauncher()
    run = EngineProcess(launcher)
    run.start(["x"])
    run.cancel()
    assert run.state is ProcessState.CANCELLING and killed == [FakeHandle.pid]
    launcher.on_exit(-15)
    assert run.state is ProcessState.CANCELLED


def test_progress_parser_ignores_other_lines_and_never_goes_back() -> None:
    parser = ProgressParser({"a": 1.0, "b": 3.0})
    assert parser.parse("not json") is None and parser.parse('{"no": "stage"}') is None
    assert parser.parse(line("b", 0.0, 1.0)).overall == pytest.approx(0.25)
    assert parser.parse(line("a", 0.5, 2.0)).overall == pytest.approx(0.25)  # a late line from an earlier stage
    done = parser.parse(line("done", 1.0, 9.0))
    assert done.overall == 1.0 and done.remaining_s == 0.0
    assert "left" in parser.parse(line("b", 1.0, 9.0)).label()


def python_run(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_real_process_progress_and_success() -> None:
    updates = []
    run = EngineProcess(SubprocessLauncher(), on_progress=updates.append)
    code = f"""
        import json
        print("starting", flush=True)
        print(json.dumps({{"stage": "read", "fraction": 0.0, "message": "reading", "elapsed_s": 0.1}}), flush=True)
        print(json.dumps({{"stage": "done", "fraction": 1.0, "message": "wrote", "elapsed_s": 0.2}}), flush=True)
    """
    log = run.run(python_run(code), timeout=30)
    assert run.state is ProcessState.FINISHED and log[0] == "starting"
    assert [u.stage for u in updates] == ["read", "done"] and updates[-1].overall == 1.0


def test_exit_code_2_gives_the_engines_one_line_error() -> None:
    run = EngineProcess(SubprocessLauncher())
    code = """
        import sys
        print("iacseg: error: input.nii is not a CT; choose a CT volume", file=sys.stderr)
        sys.exit(2)
    """
    with pytest.raises(EngineError) as info:
        run.run(python_run(code), timeout=30)
    assert str(info.value) == "input.nii is not a CT; choose a CT volume"
    assert info.value.exit_code == 2 and run.state is ProcessState.FAILED


def test_internal_error_and_unknown_failure_messages() -> None:
    assert proc_mod.failure_message(1, ["iacseg: internal error: ValueError: x"]) == \
        "internal error in the engine: ValueError: x"
    assert proc_mod.failure_message(3, ["{}", "Segmentation fault"]) == \
        "the engine stopped with exit code 3: Segmentation fault"


GRANDPARENT = """
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    print("GRANDCHILD", child.pid, flush=True)
    time.sleep(120)
"""


def _start_tree(launcher: SubprocessLauncher) -> tuple[EngineProcess, int, int]:
    run = EngineProcess(launcher, kill_grace_s=1.0)
    run.start(python_run(GRANDPARENT))
    deadline = time.monotonic() + 20
    while not any(l.startswith("GRANDCHILD") for l in run.log):
        assert time.monotonic() < deadline, "the test process did not start its child"
        time.sleep(0.05)
    grandchild = int(next(l for l in run.log if l.startswith("GRANDCHILD")).split()[1])
    return run, run._handle.pid, grandchild


def test_cancel_kills_the_process_and_its_child() -> None:
    run, pid, grandchild = _start_tree(SubprocessLauncher())
    run.cancel()
    assert run.wait(timeout=20) is ProcessState.CANCELLED
    deadline = time.monotonic() + 5
    while (_alive(pid) or _alive(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid) and not _alive(grandchild)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="the fallback tree walk reads /proc")
def test_tree_kill_without_own_session_finds_descendants(monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = SubprocessLauncher()
    run, pid, grandchild = _start_tree(launcher)
    monkeypatch.setitem(sys.modules, "psutil", None)  # force the /proc walk even where psutil exists
    kill_process_tree(pid, own_session=False, grace_s=1.0)
    run.wait(timeout=20)
    deadline = time.monotonic() + 5
    while (_alive(pid) or _alive(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid) and not _alive(grandchild)
