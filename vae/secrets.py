"""Keep secrets out of everything a run writes.

Hydra saves configs unresolved (``${oc.env:...}`` stays as text), but W&B receives the resolved
config, so a secret interpolated into any value would land in the W&B run. Before a config
leaves the process, values of environment variables named like secrets, and values under keys
named like secrets, are replaced.
"""

from __future__ import annotations

import os
import re
from typing import Any

SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSW(OR)?D|CREDENTIAL|AUTH)", re.IGNORECASE)
REDACTED = "<redacted>"
MIN_SECRET_LENGTH = 6  # shorter values ("1", "true") would redact ordinary config values


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    environ = os.environ if environ is None else environ
    return sorted({v for k, v in environ.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH},
                  key=len, reverse=True)


def redact(obj: Any, secrets: list[str] | None = None) -> Any:
    """A copy of a plain container (dicts, lists, scalars) with every secret replaced."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(obj, dict):
        return {k: (REDACTED if isinstance(k, str) and SECRET_NAME.search(k) and v not in (None, "")
                    else redact(v, secrets)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact(v, secrets) for v in obj)
    if isinstance(obj, str):
        for secret in secrets:
            obj = obj.replace(secret, REDACTED)
    return obj
