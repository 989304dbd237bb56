"""The console's settings (pydantic-settings): the environment, flags winning over it, and a
value that cannot work refused in one line."""

from __future__ import annotations

import pytest

from make_us_rich.console.settings import Settings
from make_us_rich.errors import ConfigError

SECRET = "s" * 40


def test_every_setting_comes_from_the_environment_and_flags_win(monkeypatch, tmp_path):
    monkeypatch.setenv("MKRICH_CONSOLE_DB", f"sqlite:///{tmp_path}/env.db")
    monkeypatch.setenv("MKRICH_CONSOLE_SECRET", SECRET)
    monkeypatch.setenv("MKRICH_STORE", "s3://models/mkrich")
    monkeypatch.setenv("MKRICH_CONSOLE_SECURE_COOKIES", "1")
    monkeypatch.setenv("MKRICH_CONSOLE_MAX_FAILURES", "7")
    monkeypatch.setenv("MKRICH_CONSOLE_TRUSTED_PROXIES", "10.0.0.0/8")
    monkeypatch.setenv("MKRICH_CONSOLE_RECORD_MINUTES", "0")
    monkeypatch.setenv("MKRICH_CONSOLE_RUNS_DIR", "off")
    monkeypatch.setenv("MKRICH_CONSOLE_ADMIN_EMAIL", "not-a-setting@example.com")  # create-admin's
    settings = Settings.from_env(store=None, source="binance")
    assert settings.db_url == f"sqlite:///{tmp_path}/env.db" and settings.store == "s3://models/mkrich"
    assert settings.secure_cookies and settings.max_failures == 7 and settings.source == "binance"
    assert settings.trusted_proxies == "10.0.0.0/8"
    assert settings.record_minutes == 0 and settings.runs_dir == "off"
    assert Settings.from_env(store="runs/other").store == "runs/other"
    assert SECRET not in repr(settings)


@pytest.mark.parametrize("env, message", [
    ({"MKRICH_CONSOLE_SECRET": "short"}, "at least 32 characters"),
    ({"MKRICH_CONSOLE_SECURE_COOKIES": "maybe"}, "MKRICH_CONSOLE_SECURE_COOKIES"),
    ({"MKRICH_CONSOLE_SOURCE": "ftp"}, "use sample, binance or csv:PATH"),
    ({"MKRICH_CONSOLE_MAX_FAILURES": "0"}, "MKRICH_CONSOLE_MAX_FAILURES"),
    ({"MKRICH_CONSOLE_RECORD_MINUTES": "-5"}, "MKRICH_CONSOLE_RECORD_MINUTES"),
])
def test_a_setting_that_cannot_work_is_one_clear_error(monkeypatch, env, message):
    monkeypatch.setenv("MKRICH_CONSOLE_SECRET", SECRET)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        Settings.from_env()
