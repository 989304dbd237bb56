"""``make console`` (``mkrich console --with-server``): a working console on a fresh clone.
Publishes a sample model when the store has none (``mkrich run`` on the bundled sample, as
``make run``), runs ``mkrich serve`` on loopback beside the console (stopped with it), makes
sure an administrator exists, then serves the console (:func:`make_us_rich.console.cli.run_with_server`).
These helpers import nothing of the console's command line, which calls them."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from make_us_rich.errors import MakeUsRichError
from make_us_rich.http import ready


def port_or_free(preferred: int) -> int:
    """``preferred`` when it is free on 127.0.0.1, else one the OS picks."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_model(store: str) -> None:
    from make_us_rich.store import ModelStore

    if ModelStore(store).symbols():
        return
    print(f"the store {store} has no model yet: publishing one from the bundled sample (mkrich run, "
          "a few minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "make_us_rich.cli", "run", "--source", "sample",
                    "--symbols", "BTCEUR", "--store", store], check=True)
    if not ModelStore(store).symbols():
        raise MakeUsRichError(f"mkrich run published no accepted model into {store}; see its output above")


def start_server(store: str, port: int) -> tuple[subprocess.Popen, str]:
    """``mkrich serve`` on 127.0.0.1:port, waited for until ready."""
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "make_us_rich.cli", "serve", "--store", store,
                             "--host", "127.0.0.1", "--port", str(port)])
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise MakeUsRichError(f"mkrich serve exited with {proc.returncode}; see its output above")
        if ready(f"{url}/v2/health/ready"):
            return proc, url
        time.sleep(0.3)
    proc.terminate()
    raise MakeUsRichError("mkrich serve did not become ready within 120 s")
