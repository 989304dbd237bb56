"""The browser tests' own setup: where chromium is missing they skip on a workstation and fail
in CI, both with the command that installs it."""

from __future__ import annotations

import pytest

from .helpers import chromium, screenshot_dir


def test_missing_chromium_fails_in_ci_and_skips_elsewhere(monkeypatch, tmp_path):
    monkeypatch.setenv("MKRICH_CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="make browser-tools"):
        chromium()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="make browser-tools"):
        chromium()


def test_screenshots_go_where_they_are_asked(monkeypatch, tmp_path):
    monkeypatch.setenv("MKRICH_SCREENSHOTS", str(tmp_path / "shots"))
    assert screenshot_dir() == tmp_path / "shots" and (tmp_path / "shots").is_dir()
