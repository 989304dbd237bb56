"""Test doubles that speak real protocols on loopback (used by the test suite, benchmarks and
offline demos). Nothing here is imported by the production code paths."""

from __future__ import annotations

import os

from make_us_rich.ports import free_port, stop_process

__all__ = ["free_port", "missing_tool", "stop_process", "wait_until"]


def missing_tool(message: str):
    """A real tool a test needs is not there: a skip on a workstation, a failure in CI
    (``CI=true``), where ``.ci/run`` installs every tool and a skip would hide a missing step."""
    import pytest

    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def wait_until(condition, timeout: float = 30.0, interval: float = 0.1, *, what: str = "the condition"):
    """Poll ``condition()`` until it returns something truthy and return that; after ``timeout``
    seconds fail with ``TimeoutError`` naming ``what`` (and the last exception the condition
    raised, if it raised). For tests that wait on a server, a thread or a file."""
    import time

    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = condition()
        except Exception as exc:  # a server not up yet, a file half-written...
            last_error, result = exc, None
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"{what} did not happen within {timeout:g} s{detail}")
        time.sleep(interval)
