"""The engine in a background process: an explicit state machine, JSON-lines progress, cancel of the whole tree.

The spawning itself is injected (`ProcessLauncher`): in Slicer it is ``slicer.util.launchConsoleProcess``
(see ``slicer_launcher``), in scripts and tests the plain `SubprocessLauncher` below. Either way the
launcher merges stderr into stdout and calls ``on_line`` for every output line and ``on_exit`` once with
the exit code. The engine prints ``{"stage", "fraction", "message", "elapsed_s"}`` JSON lines; anything else
is log text, and ``iacseg: error: …`` is the one-sentence error of a bad input (exit code 2).
"""

from __future__ import annotations

import enum
import json
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence

from .kill import kill_process_tree

#: Share of the whole run taken by each engine stage of ``iacseg segment`` (fractions are per stage).
SEGMENT_STAGE_WEIGHTS: dict[str, float] = {"read": 0.05, "preprocess": 0.10, "landmarks": 0.15, "segment": 0.50,
                                           "mapping": 0.05, "measure": 0.05, "write": 0.10}
#: Same for ``iacseg train``: preparing cases, then epochs.
TRAIN_STAGE_WEIGHTS: dict[str, float] = {"prepare": 0.10, "train": 0.90}
ERROR_PREFIX = "iacseg: error: "
#: A refusal's line: ``iacseg: error: MESSAGE``, or ``iacseg: error (--flag): MESSAGE`` when the engine's error is
#: about one of its parameters (`iacseg.cli.flags`); the module shows MESSAGE as it is.
ERROR_LINE = re.compile(r"^iacseg: error(?: \([^)]*\))?: (.*)$")
INTERNAL_ERROR_PREFIX = "iacseg: internal error: "
EXIT_BAD_INPUT = 2


class ProcessState(enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    CANCELLING = "cancelling"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_active(self) -> bool:
        return self in (ProcessState.RUNNING, ProcessState.CANCELLING)


class ProcessHandle(Protocol):
    """What the runner needs of a started process (``subprocess.Popen`` satisfies it)."""

    pid: int

    def poll(self) -> int | None: ...


class ProcessLauncher(Protocol):
    """Starts ``args`` and reports every output line (stdout + stderr) and, once, the exit code."""

    own_session: bool  # True when the child leads its own process group (os.killpg can end the tree)

    def launch(self, args: Sequence[str], env_update: Mapping[str, str] | None,
               on_line: Callable[[str], None], on_exit: Callable[[int], None]) -> ProcessHandle: ...


@dataclass(frozen=True)
class ProgressUpdate:
    """One progress line: engine ``stage``, its own ``fraction`` (0..1), the whole run's ``overall`` (0..1),
    ``elapsed_s`` (s since start) and ``remaining_s`` (estimated s left, None until it can be estimated)."""

    stage: str
    fraction: float
    message: str
    overall: float
    elapsed_s: float
    remaining_s: float | None

    def label(self) -> str:
        """Short text for a progress label, e.g. ``segment: patch 3/8 — about 1 min 20 s left``."""
        text = f"{self.stage}: {self.message}" if self.message else self.stage
        return text if self.remaining_s is None else f"{text} — {format_duration(self.remaining_s)} left"


def format_duration(seconds: float) -> str:
    """``75`` → ``about 1 min 15 s``; ``8`` → ``about 8 s``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"about {seconds} s"
    minutes, sec = divmod(seconds, 60)
    return f"about {minutes} min {sec} s" if minutes < 60 else f"about {minutes // 60} h {minutes % 60} min"


class ProgressParser:
    """Turns engine JSON lines into `ProgressUpdate`s with the whole run's fraction and the time left.

    ``weights`` maps stage → share of the run; stages are assumed to come in the dict's order. Unknown
    stages keep the overall fraction where it is. Time left = elapsed × (1 − overall) / overall, once at
    least ``min_overall`` of the run is done.
    """

    def __init__(self, weights: Mapping[str, float] | None = None, min_overall: float = 0.05) -> None:
        self.weights = dict(SEGMENT_STAGE_WEIGHTS if weights is None else weights)
        total = sum(self.weights.values()) or 1.0
        self._start: dict[str, float] = {}
        acc = 0.0
        for stage, w in self.weights.items():
            self._start[stage] = acc / total
            acc += w
        self._share = {stage: w / total for stage, w in self.weights.items()}
        self.min_overall = min_overall
        self.overall = 0.0

    def parse(self, line: str) -> ProgressUpdate | None:
        """A `ProgressUpdate` for a progress line, None for any other line."""
        line = line.strip()
        if not (line.startswith("{") and line.endswith("}")):
            return None
        try:
            record = json.loads(line)
            stage = str(record["stage"])
            fraction = min(max(float(record.get("fraction", 0.0)), 0.0), 1.0)
            elapsed = float(record.get("elapsed_s", 0.0))
        except (ValueError, KeyError, TypeError):
            return None
        if stage == "done":
            self.overall = 1.0
        elif stage in self._start:
            self.overall = max(self.overall, self._start[stage] + self._share[stage] * fraction)
        remaining = None
        if self.overall >= 1.0:
            remaining = 0.0
        elif self.overall >= self.min_overall and elapsed > 0:
            remaining = elapsed * (1.0 - self.overall) / self.overall
        return ProgressUpdate(stage, fraction, str(record.get("message", "")), self.overall, elapsed, remaining)


class EngineError(RuntimeError):
    """The engine process failed; ``str()`` is the one message to show, ``log`` the full output."""

    def __init__(self, message: str, exit_code: int | None, log: Sequence[str]) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.log = list(log)


def failure_message(exit_code: int, log: Sequence[str]) -> str:
    """One clear sentence for a failed run from its exit code and output lines."""
    for line in reversed(log):
        match = ERROR_LINE.match(line)
        if match:
            return match.group(1).strip()
    for line in reversed(log):
        if line.startswith(INTERNAL_ERROR_PREFIX):
            return f"internal error in the engine: {line[len(INTERNAL_ERROR_PREFIX):].strip()}"
    if exit_code < 0:
        return f"the engine process was stopped by signal {-exit_code}"
    tail = next((line for line in reversed(log) if line.strip() and not line.lstrip().startswith("{")), "")
    return f"the engine stopped with exit code {exit_code}" + (f": {tail.strip()}" if tail else "")


class EngineProcess:
    """One engine run in a background process, with states Idle → Running → (Cancelling →) Finished/Failed/Cancelled.

    ``on_progress(update)`` and ``on_state(state)`` are called from whatever thread the launcher delivers
    lines on (the Qt main thread for the Slicer launcher). `wait` blocks until the run ended (scripts).
    """

    def __init__(self, launcher: ProcessLauncher, weights: Mapping[str, float] | None = None,
                 on_progress: Callable[[ProgressUpdate], None] | None = None,
                 on_state: Callable[[ProcessState], None] | None = None,
                 kill_grace_s: float = 3.0) -> None:
        self.launcher = launcher
        self.weights = weights
        self.on_progress = on_progress
        self.on_state = on_state
        self.kill_grace_s = kill_grace_s
        self.state = ProcessState.IDLE
        self.log: list[str] = []
        self.progress: ProgressUpdate | None = None
        self.exit_code: int | None = None
        self.error_message: str | None = None
        self.started_at: float | None = None
        self._handle: ProcessHandle | None = None
        self._ended = threading.Event()
        self._lock = threading.Lock()

    # -- state machine ------------------------------------------------------------------------------------
    def _set_state(self, state: ProcessState) -> None:
        self.state = state
        if self.on_state:
            self.on_state(state)

    def start(self, args: Sequence[str], env_update: Mapping[str, str] | None = None) -> None:
        """Start ``args`` (a full command line) in the background; refused unless Idle or ended."""
        if self.state.is_active:
            raise RuntimeError("an engine run is already in progress; cancel it or wait for it to end")
        self.log, self.progress, self.exit_code, self.error_message = [], None, None, None
        self._parser = ProgressParser(self.weights)
        self._ended.clear()
        self.started_at = time.monotonic()
        self._set_state(ProcessState.RUNNING)
        try:
            self._handle = self.launcher.launch(list(args), env_update, self._on_line, self._on_exit)
        except OSError as exc:
            self.log.append(str(exc))
            self._finish(ProcessState.FAILED, None, f"the engine could not be started: {exc}")

    def _on_line(self, line: str) -> None:
        line = line.rstrip("\r\n")
        update = self._parser.parse(line)
        with self._lock:
            self.log.append(line)
            if update is not None:
                self.progress = update
        if update is not None and self.on_progress and self.state is ProcessState.RUNNING:
            self.on_progress(update)

    def _on_exit(self, exit_code: int) -> None:
        if self.state is ProcessState.CANCELLING:
            self._finish(ProcessState.CANCELLED, exit_code, "cancelled")
        elif exit_code == 0:
            self._finish(ProcessState.FINISHED, 0, None)
        else:
            self._finish(ProcessState.FAILED, exit_code, failure_message(exit_code, self.log))

    def _finish(self, state: ProcessState, exit_code: int | None, message: str | None) -> None:
        self.exit_code, self.error_message = exit_code, message
        self._set_state(state)
        self._ended.set()

    def cancel(self) -> None:
        """Kill the whole process tree (the launcher, the engine and any worker it started); no-op unless running."""
        if self.state is not ProcessState.RUNNING or self._handle is None:
            return
        self._set_state(ProcessState.CANCELLING)
        kill_process_tree(self._handle.pid, own_session=getattr(self.launcher, "own_session", False),
                          grace_s=self.kill_grace_s)

    # -- blocking use (scripts, self-test, batch) ---------------------------------------------------------
    def wait(self, timeout: float | None = None) -> ProcessState:
        """Block until the run has ended (only with a launcher that calls back from another thread)."""
        if not self._ended.wait(timeout):
            raise TimeoutError(f"the engine did not finish within {timeout} s")
        return self.state

    def run(self, args: Sequence[str], env_update: Mapping[str, str] | None = None,
            timeout: float | None = None) -> list[str]:
        """Start, wait, and raise `EngineError` unless the run finished; returns the output lines."""
        self.start(args, env_update)
        try:
            state = self.wait(timeout)
        except TimeoutError:
            self.cancel()
            self.wait(30)
            raise EngineError(f"the engine did not finish within {timeout} s and was stopped", None, self.log)
        if state is not ProcessState.FINISHED:
            raise EngineError(self.error_message or state.value, self.exit_code, self.log)
        return self.log


class SubprocessLauncher:
    """`ProcessLauncher` with ``subprocess.Popen`` in a new session and a reader thread (no Qt needed).

    ``base_env``: the child's environment (default: this process's, copied — never modified); ``env_update``
    entries are added on top for the child only.
    """

    own_session = os.name == "posix"

    def __init__(self, base_env: Mapping[str, str] | None = None, cwd: str | Path | None = None) -> None:
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.cwd = cwd

    def launch(self, args: Sequence[str], env_update: Mapping[str, str] | None,
               on_line: Callable[[str], None], on_exit: Callable[[int], None]) -> subprocess.Popen:
        env = {**self.base_env, **dict(env_update or {})}
        extra = {"start_new_session": True} if self.own_session else \
            {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}
        proc = subprocess.Popen(list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                text=True, encoding="utf-8", errors="replace", bufsize=1, env=env, cwd=self.cwd,
                                **extra)

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                on_line(line)
            on_exit(proc.wait())

        threading.Thread(target=read, name="iacseg-engine-reader", daemon=True).start()
        return proc


__all__ = ["EngineError", "EngineProcess", "ProcessLauncher", "ProcessState", "ProgressParser", "ProgressUpdate",
           "SEGMENT_STAGE_WEIGHTS", "SubprocessLauncher", "TRAIN_STAGE_WEIGHTS", "failure_message"]
