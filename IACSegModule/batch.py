"""Headless IACSeg batch: segment every CT in a folder with the same code path as the Segment button.

    Slicer --no-main-window --python-script <path>/batch.py -- --input CASES --output RESULTS [--model M]
           [--landmark-model M] [--device auto|cpu|cuda] [--threshold auto|X] [--overwrite] [--no-slicer-files]
           [--read-workers N] [--prefetch N] [--write-workers N]

One engine process (``iacseg batch``: models loaded once, CTs read ahead, results written behind) segments every
case; each case gets RESULTS/<case>/ with the engine's contract files, plus slicer_calcifications.seg.nrrd and
slicer_landmarks.mrk.json saved by Slicer as soon as the engine has finished it, and RESULTS/summary.csv is the
engine's table of all cases. Progress is printed, each case with its QC status (ok, review, unusable) and the
batch's status (cases done, CT/s, time left, failures), and a summary line counts them; the exit code is 0 when every case succeeded, 1 when a case failed
(or the run stopped on an unexpected error, printed), 2 for unusable arguments or inputs. Slicer always exits at the
end: ``--python-script`` alone would leave it running after an uncaught error.
"""

import sys
from pathlib import Path

import slicer

MODULE_DIR = Path(__file__).resolve().parent
for candidate in (MODULE_DIR, MODULE_DIR.parent):  # source tree: beside IACSeg.py; installed: Scripts/..
    if (candidate / "IACSegLib").is_dir():
        sys.path.insert(0, str(candidate))
        break


def main(argv) -> int:
    from IACSeg import MODULE_DIR as IACSEG_DIR
    from IACSeg import IACSegLogic
    from IACSegLib import engine

    if not engine.make_engine_importable(IACSEG_DIR):  # the bundled engine is not on sys.path until asked
        print("batch.py: error: the iacseg engine is not installed; reinstall the IACSeg extension", file=sys.stderr)
        return 1
    from IACSegLib import headless_batch, scene
    from IACSegLib.parameters import ParameterError
    from IACSegLib.process import EngineProcess, SubprocessLauncher
    from IACSegLib.slicer_launcher import startup_environment

    try:
        options = headless_batch.parse_batch_args(argv)
    except ParameterError as exc:
        print(f"batch.py: error: {exc}", file=sys.stderr)
        return 2
    logic = IACSegLogic()
    logic.ensureDependencies(interactive=False)

    def on_loaded(case, result) -> None:
        """Show the case as the GUI does, save Slicer's own files, then clear the scene for the next case."""
        if not options.slicer_files:
            return
        try:
            # The label map is on the grid the engine used (a DICOM folder or tilted series is resampled).
            volume = slicer.util.loadVolume(str(case.input if case.input.is_file() else result.labels_file))
            logic.showResult(result.folder, volume)
            scene.save_slicer_files(logic.segmentationNode, logic.markupsNode, result.folder)
        finally:  # also after a failed case: the next one starts from an empty scene
            slicer.mrmlScene.Clear()

    environment = startup_environment()
    try:
        outcomes = headless_batch.run_batch(options, lambda: EngineProcess(SubprocessLauncher(environment)),
                                   engine.python_executable(), engine.child_environment(IACSEG_DIR), on_loaded,
                                   log=lambda line: print(line, flush=True))
    except ParameterError as exc:  # the input changed since it was checked, or the output cannot be made
        print(f"batch.py: error: {exc}", file=sys.stderr)
        return 2
    print(headless_batch.summary_text(outcomes), flush=True)
    return headless_batch.exit_code(outcomes)


def exit_code_of(main, argv) -> int:
    """``main(argv)``'s exit code whatever happens: `SystemExit` gives its code (argparse: 2 for a usage error, 0 for
    ``--help``); any other error is printed with its traceback and gives 1. Slicer's ``--python-script`` does not exit
    by itself (an uncaught error is printed and Slicer keeps running), so the script must always reach
    ``slicer.util.exit``. Needs nothing but the standard library (the engine may not be importable)."""
    import traceback

    try:
        return int(main(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except BaseException:  # noqa: BLE001 — anything else still ends the run
        traceback.print_exc()
        print("batch.py: error: the batch stopped on the unexpected error above", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":  # Slicer's --python-script runs this file in __main__; never on a module scan
    slicer.util.exit(exit_code_of(main, sys.argv[1:]))  # always: Slicer would keep running otherwise
