"""Serving settings from the environment."""

from __future__ import annotations

from dhat_serve.config import ServeConfig


def test_keep_alive_outlasts_a_load_balancers_idle_timeout_and_is_configurable(monkeypatch):
    monkeypatch.delenv("DHAT_KEEP_ALIVE_S", raising=False)
    assert ServeConfig.from_env().keep_alive_s == 75 > 60  # AWS ALB's default idle timeout
    monkeypatch.setenv("DHAT_KEEP_ALIVE_S", "120")
    assert ServeConfig.from_env().keep_alive_s == 120


def test_access_log_and_tracing_are_off_unless_asked(monkeypatch):
    for name in ("DHAT_ACCESS_LOG", "DHAT_TRACING"):
        monkeypatch.delenv(name, raising=False)
    cfg = ServeConfig.from_env()
    assert (cfg.access_log, cfg.tracing) == (False, False)
    monkeypatch.setenv("DHAT_ACCESS_LOG", "1")
    monkeypatch.setenv("DHAT_TRACING", "true")
    cfg = ServeConfig.from_env()
    assert (cfg.access_log, cfg.tracing) == (True, True)
