"""Errors with messages meant for users: one sentence on what was wrong with their input and what to do.

The library names its own parameters (``threshold``, ``device``, ``output folder``), never command-line flags;
``parameter`` says which one an error is about, so a front end (the CLI, the Slicer module) can point at its own
control for it (`iacseg.cli.flags`).
"""

from __future__ import annotations


class IACSegError(Exception):
    """Base class of every error the engine raises on purpose."""

    def __init__(self, *args: object, parameter: str | None = None) -> None:
        super().__init__(*args)
        #: The library parameter the error is about (e.g. ``"threshold"``, ``"device"``, ``"output"``), or None.
        self.parameter = parameter

    def __reduce__(self):  # keep ``parameter`` when the error crosses a process boundary (batch readers)
        return (self.__class__, self.args, {"parameter": self.parameter})


class InputError(IACSegError):
    """The user's input (file, folder, series, option) cannot be used; the message says why and what to do."""


class ModelError(IACSegError):
    """A model folder is missing, incomplete, unsafe (not safetensors) or incompatible."""
