"""The server image's entry point (``python -m make_us_rich.serving``): its parser extends
KServe's, ``--http_port`` is the port, the KServe flags the server does not honour are refused
by name."""

from __future__ import annotations

import subprocess
import sys

import pytest

from make_us_rich.testing import free_port

pytest.importorskip("kserve")

ENTRY = [sys.executable, "-m", "make_us_rich.serving"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*ENTRY, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_help_lists_kserve_and_server_flags():
    done = run("--help")
    assert done.returncode == 0, done.stderr
    assert "--http_port" in done.stdout and "--reload-interval" in done.stdout and "--store" in done.stdout


@pytest.mark.parametrize("flags, named", [
    (["--workers", "2"], "--workers"),
    (["--enable_grpc", "false", "--grpc_port", "9001"], "--grpc_port"),
    (["--ssl_certfile", "/tmp/cert.pem"], "--ssl_certfile"),
    (["--timeout-keep-alive", "5"], "--timeout-keep-alive"),
])
def test_kserve_flags_it_does_not_honour_are_refused_by_name(store_dir, flags, named):
    done = run("--store", str(store_dir), *flags)
    assert done.returncode == 2, done.stderr
    assert named in done.stderr and "does not support" in done.stderr and "Traceback" not in done.stderr


def test_http_port_and_port_must_agree(store_dir):
    done = run("--store", str(store_dir), "--http_port", "9101", "--port", "9102")
    assert done.returncode == 2 and "disagree" in done.stderr, done.stderr


def test_http_port_is_the_port(store_dir, tmp_path):
    import urllib.request

    from make_us_rich.testing import stop_process, wait_until

    port = free_port()
    log = tmp_path / "server.log"
    # --enable_grpc false and --workers 1 say what the server does anyway: accepted
    proc = subprocess.Popen([*ENTRY, "--store", str(store_dir), "--http_port", str(port), "--reload-interval", "0",
                             "--enable_grpc", "false", "--workers", "1"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        def ready() -> bool:
            assert proc.poll() is None, log.read_text()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as answer:
                return answer.status == 200

        wait_until(ready, 90, 0.2, what=lambda: f"ready on --http_port {port}:\n{log.read_text()}",
                   ignoring=(OSError,))
        assert f"127.0.0.1:{port}" in log.read_text()
    finally:
        stop_process(proc)
