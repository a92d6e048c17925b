"""No secret is written anywhere a run writes, even when a config interpolates one."""

import pytest

from conftest import run_cli
from vae.secrets import REDACTED, redact

SECRETS = {
    "WANDB_API_KEY": "local-fakekey0123456789abcdef0123456789abcdef01",
    "MY_SERVICE_TOKEN": "tok-planted-9f8e7d6c5b4a",
    "DB_PASSWORD": "pw-planted-correct-horse",
}


def test_redact_replaces_secret_values_and_secret_named_keys():
    config = {"notes": f"token is {SECRETS['MY_SERVICE_TOKEN']}", "nested": [{"api_key": "abc123xyz"}],
              "beta": 1.0, "short": "1"}
    cleaned = redact(config, [SECRETS["MY_SERVICE_TOKEN"]])
    assert cleaned == {"notes": f"token is {REDACTED}", "nested": [{"api_key": REDACTED}], "beta": 1.0, "short": "1"}


@pytest.mark.slow
def test_planted_secrets_appear_in_no_file_a_run_writes(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("debug=smoke", "logger=wandb", f"hydra.run.dir={run_dir}",
                     "+notes=${oc.env:DB_PASSWORD}", "logger.tags=[${oc.env:MY_SERVICE_TOKEN}]",
                     env={**SECRETS, "WANDB_MODE": "offline"})
    assert result.returncode == 0, result.stderr[-2000:]
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files) and (run_dir / "metrics.json").exists()
    leaks = [f"{name} in {path.relative_to(run_dir)}" for path in files for name, value in SECRETS.items()
             if value.encode() in path.read_bytes()]
    assert leaks == []
    for stream in (result.stdout, result.stderr):
        assert not any(value in stream for value in SECRETS.values())
