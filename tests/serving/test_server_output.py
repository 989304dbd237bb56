"""What `mkrich serve` prints: its one line, the requests' logs, and no third-party deprecation
warning the user can do nothing about (kserve's use of fastapi's ORJSONResponse)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

from make_us_rich import contract
from make_us_rich.testing import free_port, stop_process


def test_no_fastapi_deprecation_warning_at_start_or_first_request(store_dir, windows, tmp_path):
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "make_us_rich.serving", "--store", str(store_dir),
                                 "--symbols", "BTCEUR", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        name = contract.model_name("BTCEUR")
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).close()
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, log.read_text()
                time.sleep(0.2)
        for path, body in ((f"/v1/models/{name}:predict", {"instances": windows.tolist()}),
                           (f"/v2/models/{name}", None)):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}", method="POST" if body else "GET",
                data=json.dumps(body).encode() if body else None,
                headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert answer.status == 200
    finally:
        stop_process(proc)
    printed = log.read_text()
    assert f"serving {name}" in printed
    assert "DeprecationWarning" not in printed and "ORJSONResponse" not in printed, printed
