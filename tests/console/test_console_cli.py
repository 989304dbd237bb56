"""``mkrich console``, ``migrate``, ``create-admin`` and ``--with-server`` (what ``make console``
runs) as subprocesses, as a person runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from console_helpers import SECRET, create_token, login
from sqlalchemy import select

from make_us_rich.console import migrate
from make_us_rich.console.auth import verify_password
from make_us_rich.console.db import User, make_engine, session_factory
from make_us_rich.testing import free_port, wait_until

MKRICH = [sys.executable, "-m", "make_us_rich.cli"]


def run(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MKRICH_CONSOLE_")}
    return subprocess.run([*MKRICH, *args], capture_output=True, text=True, timeout=120,
                          env={**clean, **(env or {})}, stdin=subprocess.DEVNULL, **kw)


def test_migrate_and_create_admin(db_url):
    done = run("console", "migrate", "--db", db_url)
    assert done.returncode == 0, done.stderr
    assert f"database at revision {migrate.head()} (head)" in done.stdout
    password = "a-long-admin-password"
    created = run("console", "create-admin", "--email", "Root@Example.com", "--db", db_url,
                  env={"MKRICH_CONSOLE_ADMIN_PASSWORD": password})
    assert created.returncode == 0, created.stderr
    assert password not in created.stdout + created.stderr
    engine = make_engine(db_url)
    with session_factory(engine)() as db:
        admin = db.scalar(select(User).where(User.email == "root@example.com"))
        assert admin.role == "admin" and admin.password_hash.startswith("$argon2id$")
        assert verify_password(admin.password_hash, password)
    engine.dispose()
    if db_url.startswith("sqlite"):
        assert (Path(db_url.removeprefix("sqlite:///")).stat().st_mode & 0o777) == 0o600
    again = run("console", "create-admin", "--email", "root@example.com", "--db", db_url,
                env={"MKRICH_CONSOLE_ADMIN_PASSWORD": password})
    assert again.returncode == 2 and "exists already" in again.stderr


def test_create_admin_never_takes_the_password_as_an_argument(tmp_path):
    db = f"sqlite:///{tmp_path}/c.db"
    no_password = run("console", "create-admin", "--email", "a@example.com", "--db", db)
    assert no_password.returncode == 2 and "MKRICH_CONSOLE_ADMIN_PASSWORD" in no_password.stderr
    flag = run("console", "create-admin", "--email", "a@example.com", "--password", "x" * 20, "--db", db)
    assert flag.returncode == 2 and "unrecognized arguments" in flag.stderr
    short = run("console", "create-admin", "--email", "a@example.com", "--db", db,
                env={"MKRICH_CONSOLE_ADMIN_PASSWORD": "short"})
    assert short.returncode == 2 and "12 to 1024 characters" in short.stderr


def test_bad_database_url_is_one_clear_line(tmp_path):
    done = run("console", "migrate", "--db", "mysql://x@localhost/db")
    assert done.returncode == 2 and "not supported" in done.stderr and "Traceback" not in done.stderr


def test_make_console_script(tmp_path, console_store):
    """``mkrich console --with-server`` (make console) on a store with a model: the admin is
    created from the environment, mkrich serve starts beside the console, the API answers
    through it, and Ctrl-C stops both."""
    port, serve_port = free_port(), free_port()
    env = {"MKRICH_CONSOLE_DB": f"sqlite:///{tmp_path}/console.db", "MKRICH_CONSOLE_SECRET": SECRET,
           "MKRICH_CONSOLE_ADMIN_EMAIL": "boss@example.com", "MKRICH_CONSOLE_ADMIN_PASSWORD": "boss-password-123",
           "MKRICH_CONSOLE_INFERENCE_URL": f"http://127.0.0.1:{serve_port}"}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MKRICH_CONSOLE_")}
    log = tmp_path / "console.log"
    proc = subprocess.Popen([*MKRICH, "console", "--with-server", "--store", str(console_store), "--port", str(port)],
                            env={**clean, **env}, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:

        def announced() -> bool:
            assert proc.poll() is None, log.read_text()
            return f"open {url}/" in log.read_text()

        wait_until(announced, 120, 0.2, what=lambda: f"the console's announcement:\n{log.read_text()}")
        wait_until(lambda: httpx.get(f"{url}/readyz").status_code == 200, 5, 0.1,
                   what="/readyz answers 200", ignoring=(httpx.TransportError,))
        assert "created administrator boss@example.com" in log.read_text()
        with httpx.Client(base_url=url) as c:
            assert login(c, "boss@example.com", "boss-password-123").status_code == 303
            token = create_token(c)
            answer = c.get("/api/v1/forecast/BTCEUR", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200, answer.text
        assert httpx.get(f"http://127.0.0.1:{serve_port}/v2/health/ready").status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{serve_port}/v2/health/ready", timeout=2)
    output = log.read_text()
    assert token not in output and token[4:20] not in output  # tokens are never logged
    assert "boss-password-123" not in output


def test_the_console_loads_no_tensorflow_nor_kserve(tmp_path):
    """The console image has neither: the app, its routes and the gateway import without them."""
    probe = (
        "import sys\n"
        "from make_us_rich.console.app import create_app\n"
        "from make_us_rich.console.settings import Settings\n"
        f"create_app(Settings(db_url='sqlite:///{tmp_path}/c.db', secret='s' * 40, store='{tmp_path}/store'))\n"
        "print([m for m in ('tensorflow', 'keras', 'tf2onnx', 'kfp', 'kserve', 'onnxruntime') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_make_console_publishes_a_sample_model_into_an_empty_store(tmp_path, monkeypatch):
    """On a fresh clone the store is empty: ``make console`` first runs the pipeline on the
    bundled sample (as ``make run``), so the console has a model to show."""
    pytest.importorskip("tensorflow")
    from make_us_rich.console.dev import ensure_model
    from make_us_rich.store import ModelStore

    monkeypatch.chdir(tmp_path)  # mkrich run's pipeline root (runs/pipeline) lands here
    store = tmp_path / "runs" / "store"
    ensure_model(str(store))
    assert ModelStore(store).symbols() == ["BTCEUR"]
    published = ModelStore(store).versions("BTCEUR")
    ensure_model(str(store))  # a store with a model is left alone
    assert ModelStore(store).versions("BTCEUR") == published


def test_a_port_in_use_names_the_consoles_own_make_variable(tmp_path):
    """Issue 23 #9: the hint named ``make serve PORT=N`` (the inference server's)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run("console", "--port", str(port), "--db", f"sqlite:///{tmp_path}/c.db",
                   env={"MKRICH_CONSOLE_SECRET": SECRET})
    assert done.returncode == 2, done.stderr
    assert f"port {port} is in use" in done.stderr and "make console CONSOLE_PORT=N" in done.stderr
    assert "PORT=N (make serve" not in done.stderr and "Traceback" not in done.stderr


def test_the_console_cuts_off_slow_clients(tmp_path):
    """The guard it shares with the predictor (make_us_rich.asgi): a connection that sends no
    headers and a form whose body stops arriving are each answered 408 and closed, where
    uvicorn alone would hold them open."""
    import socket
    import time

    from make_us_rich.asgi import DEFAULT_HEADER_TIMEOUT
    from make_us_rich.console.web import BODY_TIMEOUT

    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MKRICH_CONSOLE_")}
    log = tmp_path / "console.log"
    proc = subprocess.Popen([*MKRICH, "console", "--port", str(port), "--db", f"sqlite:///{tmp_path}/c.db"],
                            env={**clean, "MKRICH_CONSOLE_SECRET": SECRET}, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200, 120, 0.2,
                   what=lambda: f"the console answers:\n{log.read_text()}", ignoring=(httpx.TransportError,))
        silent, slow = socket.create_connection(("127.0.0.1", port)), socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 100\r\n\r\nemail=a")
        started = time.monotonic()
        answers = []
        for sock in (silent, slow):
            sock.settimeout(max(DEFAULT_HEADER_TIMEOUT, BODY_TIMEOUT) + 20)
            data = b""
            while chunk := sock.recv(4096):  # the console answers and closes the connection
                data += chunk
            sock.close()
            answers.append(data)
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers
        assert b"request headers not received" in answers[0] and b"request body not received" in answers[1]
        assert time.monotonic() - started < max(DEFAULT_HEADER_TIMEOUT, BODY_TIMEOUT) + 20
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
