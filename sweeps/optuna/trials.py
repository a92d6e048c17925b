"""Which trials count, for the sweeper's budget and failure rate, and the helpers that judge a
trial's worker: shared by the sweep loop (optuna_sweeper.py) and the results file (results.py)."""

from __future__ import annotations

import os

import optuna
from optuna.trial import TrialState

from protocol import ATTR_INTERRUPTED, ATTR_NO_OBJECTIVE, ATTR_SURPLUS


def is_interrupted(trial: optuna.trial.FrozenTrial) -> bool:
    return trial.state == TrialState.FAIL and bool(trial.user_attrs.get(ATTR_INTERRUPTED))


def counts_toward_budget(trial: optuna.trial.FrozenTrial) -> bool:
    if trial.state == TrialState.WAITING or trial.user_attrs.get(ATTR_SURPLUS):
        return False
    return not is_interrupted(trial)


def is_failure(trial: optuna.trial.FrozenTrial) -> bool:
    """A failed run. A job that ran but returned nothing (``no_objective``, e.g. Hydra's test
    apps, or a task that is not an objective) is FAIL for Optuna but is not a failed run."""
    return (trial.state == TrialState.FAIL and counts_toward_budget(trial)
            and not trial.user_attrs.get(ATTR_NO_OBJECTIVE))


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
