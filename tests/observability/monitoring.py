"""The monitoring binaries (Debian's prometheus, prometheus-pushgateway, prometheus-alertmanager:
`make monitoring-tools` installs them), run on free loopback ports."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from make_us_rich.testing import free_port, missing_tool, stop_process

REPO = Path(__file__).resolve().parents[2]
ALERTING = REPO / "manifests" / "components" / "alerting"


def binary(name: str) -> str:
    """The path of ``name``; missing: a skip on a workstation, a failure in CI (``CI=true``)."""
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} not found; run `make monitoring-tools` (apt-installs prometheus, prometheus-pushgateway, prometheus-alertmanager)"
    missing_tool(message)


class Daemon:
    """A monitoring binary on a free loopback port, stopped at the end; output in ``self.log``."""

    def __init__(self, name: str, *args: str, ready_path: str = "/-/ready") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkdtemp(prefix=f"mkrich-{name}-")) / "out.log"
        cmd = [binary(name), f"--web.listen-address=127.0.0.1:{self.port}", *args]
        self.proc = subprocess.Popen(cmd, stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url + ready_path, timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{name} not ready in time:\n{self.log.read_text()}")

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return r.read().decode()

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)
