"""Helpers of the console's browser tests (a module of its own: every test folder has a
conftest): Debian's chromium, and the real processes the console needs, each on a free
loopback port with its output in a log file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from make_us_rich.testing import missing_tool, stop_process, wait_until

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
HINT = "run `make browser-tools` (apt-installs Debian's chromium)"


def chromium() -> str:
    """Debian's chromium (``MKRICH_CHROMIUM`` overrides the path)."""
    path = os.environ.get("MKRICH_CHROMIUM") or shutil.which("chromium") or CHROMIUM
    if not Path(path).is_file():
        missing_tool(f"chromium not found at {path}; {HINT}")
    return path


def screenshot_dir() -> Path:
    """Where the tests write their screenshots (``MKRICH_SCREENSHOTS``, default
    runs/screenshots/console): CI keeps them as artifacts, ``make docs-assets`` copies them."""
    folder = Path(os.environ.get("MKRICH_SCREENSHOTS") or REPO / "runs" / "screenshots" / "console")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def http(method: str, url: str, headers: dict | None = None, data: bytes | None = None):
    """(status, headers, JSON or text body) of one real HTTP request."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, head, body = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, head, body = exc.code, dict(exc.headers), exc.read()
    try:
        return status, head, json.loads(body)
    except ValueError:
        return status, head, body.decode(errors="replace")


class Process:
    """A command of ours in a subprocess, up once ``ready_url`` answers 200; stopped by ``stop``."""

    def __init__(self, name: str, args: list[str], ready_url: str, env: dict | None = None,
                 timeout: float = 120) -> None:
        self.log = Path(tempfile.mkdtemp(prefix=f"mkrich-{name}-")) / "out.log"
        self.proc = subprocess.Popen([sys.executable, "-m", *args], stdout=self.log.open("w"),
                                     stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{name} exited with {self.proc.returncode}:\n{self.log.read_text()}")
            return http("GET", ready_url)[0] == 200

        try:
            wait_until(ready, timeout, 0.2, what=f"{name} ready",
                       ignoring=(urllib.error.URLError, ConnectionError, TimeoutError))
        except TimeoutError:
            self.stop()
            raise AssertionError(f"{name} not ready in {timeout} s:\n{self.log.read_text()}") from None

    def stop(self) -> None:
        stop_process(self.proc)
