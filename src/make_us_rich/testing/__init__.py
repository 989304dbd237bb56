"""Test doubles that speak real protocols on loopback, and :func:`wait_until`, for the test suite,
the benchmarks and the offline demo ``mkrich fake-binance`` (the one production command that
imports this package; ``tests/code/test_layers.py`` checks that). Ports and processes live in
:mod:`make_us_rich.ports`, which production code uses; they are re-exported here."""

from __future__ import annotations

import os
from collections.abc import Callable

from make_us_rich.ports import free_port, stop_process

__all__ = ["free_port", "missing_tool", "stop_process", "wait_until"]


def missing_tool(message: str):
    """A real tool a test needs is not there: a skip on a workstation, a failure in CI
    (``CI=true``), where ``.ci/run`` installs every tool and a skip would hide a missing step."""
    import pytest

    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def wait_until(condition, timeout: float = 30.0, interval: float = 0.1, *,
               what: str | Callable[[], str] = "the condition",
               ignoring: tuple[type[BaseException], ...] = ()):
    """Poll ``condition()`` until it returns something truthy, and return that. An exception of a
    type in ``ignoring`` (a server not listening yet) counts as "not yet"; any other propagates at
    once (a process that exited fails the wait without waiting it out). After ``timeout`` seconds:
    ``TimeoutError`` naming ``what`` (a callable is asked then: a server's log). For tests that wait on a server, a thread or a file."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
        except ignoring:
            result = None
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what() if callable(what) else what}: not within {timeout:g} s")
        time.sleep(interval)
