"""Ending a whole process tree: the launcher (PythonSlicer is itself a launcher), the engine, and its workers.

Killing only the top process would leave the engine running on the GPU. With ``psutil`` (installed with the
module's requirements) every descendant is found and terminated, then killed after a grace period. Without
it, a child that leads its own session is ended with ``os.killpg``; otherwise descendants are found in
``/proc`` (Linux) before the parent is killed.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def _proc_children() -> dict[int, list[int]]:
    """``{ppid: [pid, ...]}`` from ``/proc`` (Linux); empty elsewhere."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (children first, then theirs), without psutil; Linux only."""
    tree = _proc_children()
    found, todo = [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie still answers kill(0); it is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_process_tree(pid: int, own_session: bool = False, grace_s: float = 3.0) -> None:
    """Terminate ``pid`` and all its descendants; whatever is still alive after ``grace_s`` s is killed."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            root = psutil.Process(pid)
            procs = root.children(recursive=True) + [root]
        except psutil.NoSuchProcess:
            return
        for p in procs:
            try:
                p.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=grace_s)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        return
    if os.name != "posix":
        os.kill(pid, signal.SIGTERM)  # Windows without psutil: the best available
        return
    if own_session:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        pids = [pid]
    else:
        pids = descendants(pid) + [pid]
        _signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    if own_session:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    else:
        _signal_all([p for p in pids if _alive(p)], signal.SIGKILL)
