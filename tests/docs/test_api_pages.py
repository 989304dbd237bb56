"""The API reference renders the docstrings' Sphinx roles as plain code, not as ``:class:``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", REPO / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sphinx_roles_become_plain_code():
    strip = _hooks().strip_roles
    html = ("a :class:<code>~make_us_rich.errors.FetchError</code> from :func:<code>run_stages</code>"
            " and :data:<code>make_us_rich.data.KLINE_COLUMNS</code>; keep a:b <code>x</code>")
    assert strip(html) == ("a <code>FetchError</code> from <code>run_stages</code> and "
                           "<code>make_us_rich.data.KLINE_COLUMNS</code>; keep a:b <code>x</code>")
