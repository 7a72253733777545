"""``iacseg`` command line: one sub-command per user task (see ``iacseg --help``)."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Callable, Sequence

from .. import __version__
from ..core.errors import IACSegError

COMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {}


def _register_all(sub: argparse._SubParsersAction) -> None:
    from . import commands_evaluate, commands_models, commands_phantom, commands_segment, commands_store

    for module in (commands_segment, commands_phantom, commands_evaluate, commands_models, commands_store):
        module.register(sub)
    from . import commands_calibrate

    commands_calibrate.register(sub)
    from . import commands_pretrain

    commands_pretrain.register(sub)
    from . import commands_nnunet

    commands_nnunet.register(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iacseg",
        description="Intracranial ICA calcification on non-contrast head CT: segment, map to ICA segments, measure.",
    )
    parser.add_argument("--version", action="version", version=f"iacseg {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _register_all(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 2 bad input, 1 internal error, 130 cancelled)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or bool(os.environ.get("IACSEG_DEBUG"))
    try:
        from .validate import check_numbers

        check_numbers(args)
        code = args.func(args)
        return int(code or 0)
    except IACSegError as exc:
        if debug:
            traceback.print_exc()
        from .flags import command_of, error_line

        print(error_line(str(exc), command_of(args), exc.parameter), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("iacseg: cancelled", file=sys.stderr)
        return 130
    except MemoryError:
        print("iacseg: error: not enough memory for this input; try a smaller volume or a machine with more RAM",
              file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 — one clear line for users, traceback with --debug
        if debug:
            traceback.print_exc()
        print(f"iacseg: internal error: {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
