"""`ProcessLauncher` for the Slicer GUI: ``slicer.util.launchConsoleProcess(blocking=False)`` (Slicer only).

Slicer reads the output in a thread and calls back on the Qt main thread through a timer, so the GUI never
runs a processEvents loop. The child starts in Slicer's startup environment plus ``env_update``; Slicer's own
``os.environ`` is not touched. Cancel ends the tree with psutil (``kill.kill_process_tree``), because
PythonSlicer is a launcher whose child is the real Python.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import slicer


class SlicerLauncher:
    own_session = False

    def launch(self, args: Sequence[str], env_update: Mapping[str, str] | None,
               on_line: Callable[[str], None], on_exit: Callable[[int], None]):
        return slicer.util.launchConsoleProcess(list(args), useStartupEnvironment=True,
                                                updateEnvironment=dict(env_update or {}), blocking=False,
                                                logCallback=on_line, completedCallback=on_exit)


def startup_environment() -> dict[str, str]:
    """Slicer's environment at startup (what a child process should get), for the blocking launcher."""
    return dict(slicer.util.startupEnvironment())
