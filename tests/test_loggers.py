"""W&B mode selection: offline without a key, online with one, WANDB_MODE respected."""

import logging

import pytest

from vae import loggers


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))  # no ~/.netrc login either
    monkeypatch.setenv("HOME", str(tmp_path))


def test_auto_is_offline_without_a_key_and_online_with_one(no_credentials, monkeypatch):
    assert loggers.wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert loggers.wandb_mode("auto") == "online"


def test_wandb_mode_env_wins_over_the_config(no_credentials, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert loggers.wandb_mode("online") == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert loggers.wandb_mode("auto") == "disabled"


def test_online_without_a_key_falls_back_to_offline_with_a_warning(no_credentials, caplog):
    with caplog.at_level(logging.WARNING):
        assert loggers.wandb_mode("online") == "offline"
    assert "needs an API key" in caplog.text and "wandb sync" in caplog.text
