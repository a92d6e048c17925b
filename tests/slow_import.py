"""A module that takes a moment to import, like the training stack (tests/test_workers.py)."""
import time

time.sleep(1.0)


def noop() -> None:
    pass


def check(checks: list) -> None:
    """A warm-up target that checks its share of the jobs: "bad" is a mistake."""
    from vae.errors import ConfigError

    if "bad" in checks:
        raise ConfigError("job 'bad' is wrong; fix it")
