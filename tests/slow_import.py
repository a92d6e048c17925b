"""A module that takes a moment to import, like the training stack (tests/test_worker_warm_up.py)."""
import time

time.sleep(1.0)


def noop() -> None:
    pass
