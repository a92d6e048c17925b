"""Errors a user can fix. The command line prints them as one line, without a traceback.

Anything else that goes wrong is a bug and keeps its full traceback. Shared by the library and the
sweepers (neither imports the other): a sweeper raises these for its own settings too.
"""


class UserError(Exception):
    """A mistake in the input (config, files, environment) that the user can fix."""


class ConfigError(UserError):
    """A config value is out of range, of the wrong type, or unknown."""
