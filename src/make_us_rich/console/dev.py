"""``make console`` (``mkrich console --with-server``): a working console on a fresh clone.
Publishes a sample model when the store has none (``mkrich run`` on the bundled sample, as
``make run``), runs ``mkrich serve`` on loopback beside the console (stopped with it), makes
sure an administrator exists, then serves the console."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from make_us_rich.console.settings import Settings
from make_us_rich.errors import ConfigError, MakeUsRichError
from make_us_rich.testing import stop_process


def _free_port(preferred: int) -> int:
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
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    proc.terminate()
    raise MakeUsRichError("mkrich serve did not become ready within 120 s")


def ensure_admin(db_url: str) -> None:
    from sqlalchemy import select

    from make_us_rich.console.cli import _migrated_engine, admin_password, create_admin
    from make_us_rich.console.db import User, session_factory

    engine = _migrated_engine(db_url)
    with session_factory(engine)() as db:
        if db.scalar(select(User.id).where(User.role == "admin", User.disabled.is_(False))) is not None:
            return
    email = os.environ.get("MKRICH_CONSOLE_ADMIN_EMAIL")
    if not email:
        if not sys.stdin.isatty():
            raise ConfigError("no administrator yet: set MKRICH_CONSOLE_ADMIN_EMAIL and "
                              "MKRICH_CONSOLE_ADMIN_PASSWORD, or run make console in a terminal")
        email = input("no administrator yet; e-mail of the first one: ")
    create_admin(engine, email, admin_password())
    print(f"created administrator {email.strip().lower()}", flush=True)


def run_with_server(settings: Settings, host: str, port: int) -> int:
    from make_us_rich.console.cli import serve

    ensure_model(settings.store)
    ensure_admin(settings.db_url)
    wanted = urlsplit(settings.inference_url)
    server_port = _free_port(wanted.port if wanted.hostname == "127.0.0.1" and wanted.port else 8080)
    proc, url = start_server(settings.store, server_port)
    try:
        serve(settings.with_(inference_url=url), host, port,
              on_ready=lambda: print(f"open http://{host}:{port}/ and sign in (mkrich serve on {url}; "
                                     "Ctrl-C stops both)", flush=True))
    finally:
        stop_process(proc)
    return 0
