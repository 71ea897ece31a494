"""Errors a user can act on. The CLI prints their message as one line, never a traceback."""


class InterpError(Exception):
    """Base class: the message alone tells the user what is wrong."""


class ConfigError(InterpError, ValueError):
    """An invalid config value; the message names the field."""


class CheckpointError(InterpError):
    """A file that cannot be loaded as a checkpoint; the message names the file and why."""


class RunDirError(InterpError):
    """A run directory that cannot be written, resumed or read."""
