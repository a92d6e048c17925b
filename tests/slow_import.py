"""A module that takes a moment to import, like the training stack (tests/test_workers.py)."""
import time

time.sleep(1.0)


def noop() -> None:
    pass
