"""The command line's contract: a user's mistake costs one line on stderr and exit code 2.

Hydra prints composition errors over several lines with a hint about HYDRA_FULL_ERROR, and
errors raised by the task with a traceback. ``run_cli`` asks Hydra to re-raise instead
(HYDRA_FULL_ERROR=1) and turns every user-fixable error into one line. Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from typing import Callable

from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from vae.config import TrainConfig, expects
from vae.errors import ConfigError, UserError
from vae.preflight import check_values, preflight

EXIT_USER_ERROR = 2


def is_multirun() -> bool:
    # mode is None when a config was composed with hydra.compose (tests), not by the CLI
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


class AbortRun(BaseException):
    """Carries a UserError past Hydra, which would otherwise catch it.

    Hydra turns exceptions raised in callbacks into warnings, and reports a failed single run
    with an extra "Error executing job" line; a BaseException passes through both untouched.
    """

    def __init__(self, error: UserError):
        super().__init__(str(error))
        self.error = error


class ValidateConfig(Callback):
    """Check a single run's values before Hydra creates its output folder, and a multirun's shared
    values before its sweeper starts."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        try:
            if (config.get("seeds") or 1) > 1:
                raise ConfigError(f"seeds={config.seeds} runs each configuration with that many seeds in a multirun; "
                                  f"add -m (python train.py -m seeds={config.seeds} ...), or give one seed=N")
            preflight(config)
        except UserError as exc:
            raise AbortRun(exc) from exc

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        # The values every job shares, the objective's name among them: a sweeper that checks no
        # job itself (hydra/sweeper=optuna without a preset) would only find a misnamed objective
        # after every trial had run. Swept keys keep their defaults here; sweepers check those.
        try:
            check_values(config)
        except UserError as exc:
            raise AbortRun(exc) from exc


def run_task(task: Callable[[DictConfig], object], cfg: DictConfig) -> object:
    """Run the task; in a single run a user error ends it at once, in one line.

    In a multirun the error stays an ordinary exception, so Hydra records that job as failed
    and the sweep goes on with the others.
    """
    try:
        return task(cfg)
    except UserError as exc:
        if is_multirun():
            raise
        raise AbortRun(exc) from exc


def top_level_keys() -> list[str]:
    return list(TrainConfig.__dataclass_fields__)


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def describe(exc: BaseException) -> str | None:
    """One line for a user-fixable error, or None if it is not one."""
    cause = _user_error_in_chain(exc)
    if cause is not None:
        return str(cause)
    if isinstance(exc, MissingConfigException):
        return _missing_option(exc)
    if isinstance(exc, OverrideParseException):
        return f"cannot parse override: {_first_line(exc)}"
    if isinstance(exc, ConfigCompositionException):
        cause = exc.__cause__
        override = re.search(r"override (\S+)", str(exc))
        if isinstance(cause, ValidationError):
            key = cause.full_key or (override.group(1).split("=")[0] if override else "?")
            wanted = expects(key) or _first_line(cause.msg)
            shown = override.group(1) if override else key
            return f"{shown} is invalid; {key} must be {wanted}"
        if isinstance(cause, ConfigKeyError) or "Could not override" in str(exc):
            return _unknown_key(str(exc))
        return _first_line(exc) + (f" ({_first_line(cause)})" if cause else "")
    if isinstance(exc, OmegaConfBaseException):
        return _first_line(exc)
    return None


def _user_error_in_chain(exc: BaseException) -> UserError | None:
    """Hydra wraps errors raised while it builds plugins (e.g. the sweeper) in its own."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, UserError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _missing_option(exc: MissingConfigException) -> str:
    text = str(exc)
    found = re.search(r"Could not find '([^']+)/([^'/]+)'", text) or re.search(r"Could not load '([^']+)/([^'/]+)'", text)
    options = exc.options or re.findall(r"^\t(\S+)$", text, flags=re.M)
    if found:
        group, name = found.groups()
        # Of the close matches, the one nearest in length: "mpl" is a typo of "mlp", not "simple".
        close = difflib.get_close_matches(name, options or [], n=3)
        hint = sorted(close, key=lambda option: abs(len(option) - len(name)))[:1]
        suggestion = f" (did you mean {group}={hint[0]}?)" if hint else ""
        return f"{group}={name} is not an option{suggestion}; {group} must be one of: {', '.join(options or [])}"
    return _first_line(text)


def _unknown_key(text: str) -> str:
    found = re.search(r"Could not override '([^']+)'", text) or re.search(r"Key '([^']+)'", text)
    key = found.group(1) if found else "?"
    parent, _, leaf = key.rpartition(".")
    siblings = top_level_keys() if not parent else []
    hint = difflib.get_close_matches(leaf, siblings, n=1)
    suggestion = f"; did you mean {hint[0]}?" if hint else ""
    return f"unknown config key '{key}'{suggestion} (to add a new key on purpose, write +{key}=...)"


def run_cli(main: Callable[[], object]) -> None:
    # Hydra re-raises instead of printing its own multi-line report; we print one line.
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    try:
        main()
    except AbortRun as abort:
        print(f"error: {abort.error}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except Exception as exc:  # noqa: BLE001 - sorted into user errors and bugs just below
        line = describe(exc)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
