"""Test doubles that speak real protocols on loopback (used by the test suite, benchmarks and
offline demos). Nothing here is imported by the production code paths."""

from __future__ import annotations

import os
import socket


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing_tool(message: str):
    """A real tool a test needs is not there: a skip on a workstation, a failure in CI
    (``CI=true``), where ``.ci/run`` installs every tool and a skip would hide a missing step."""
    import pytest

    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def stop_process(proc, timeout: float = 20.0) -> None:
    """Stop a server started as a subprocess: SIGTERM, and SIGKILL if it has not exited after
    ``timeout`` seconds."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
