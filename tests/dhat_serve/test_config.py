"""Serving settings from the environment."""

from __future__ import annotations

from dhat_serve.config import ServeConfig


def test_keep_alive_outlasts_a_load_balancers_idle_timeout_and_is_configurable(monkeypatch):
    monkeypatch.delenv("DHAT_KEEP_ALIVE_S", raising=False)
    assert ServeConfig.from_env().keep_alive_s == 75 > 60  # AWS ALB's default idle timeout
    monkeypatch.setenv("DHAT_KEEP_ALIVE_S", "120")
    assert ServeConfig.from_env().keep_alive_s == 120
