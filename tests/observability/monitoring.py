"""The monitoring binaries (Debian's prometheus, prometheus-pushgateway, prometheus-alertmanager:
`make monitoring-tools` installs them), run on free loopback ports."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from make_us_rich.testing import free_port, missing_tool, stop_process, wait_until

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

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{self.log.read_text()}")
            with urllib.request.urlopen(self.url + ready_path, timeout=2) as r:
                return r.status == 200

        try:
            wait_until(ready, 30, 0.1, what=f"{name} ready", ignoring=(urllib.error.URLError, ConnectionError))
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"{name} not ready in time:\n{self.log.read_text()}") from None

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return r.read().decode()

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)
