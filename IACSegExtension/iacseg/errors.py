"""Errors with messages meant for users: one sentence on what was wrong with their input and what to do."""


class IACSegError(Exception):
    """Base class of every error the engine raises on purpose."""


class InputError(IACSegError):
    """The user's input (file, folder, series, option) cannot be used; the message says why and what to do."""


class ModelError(IACSegError):
    """A model folder is missing, incomplete, unsafe (not safetensors) or incompatible."""
