"""Errors a user can fix. The command line prints them as one line, without a traceback.

Anything else that goes wrong is a bug and keeps its full traceback.
"""


class UserError(Exception):
    """A mistake in the input (config, files, environment) that the user can fix."""


class ConfigError(UserError):
    """A config value is out of range, of the wrong type, or unknown."""


class DataError(UserError):
    """The dataset is missing, corrupt, or cannot be written where the config says."""


class DivergedError(UserError):
    """Training produced a non-finite loss; the run stopped itself."""
