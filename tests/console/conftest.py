"""The console on a real database (SQLite file, and a real PostgreSQL server started here), served
by uvicorn on a free loopback port in a thread, spoken to over HTTP."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from make_us_rich.console import migrate
from make_us_rich.console.app import create_app
from make_us_rich.console.auth import create_user
from make_us_rich.console.db import make_engine, session_factory
from make_us_rich.console.settings import Settings
from make_us_rich.testing.postgres import PostgresServer, PostgresUnavailable

SECRET = "console-tests-" + "k" * 40
ADMIN = ("admin@example.com", "admin-password-123")
MEMBER = ("member@example.com", "member-password-123")
OTHER = ("other@example.com", "other-password-1234")


def missing(message: str):
    """A tool that is not there: a skip on a workstation, a failure in CI (``CI=true``)."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres():
    try:
        server = PostgresServer().start()
    except PostgresUnavailable as exc:
        missing(str(exc))
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/console.db"
    return request.getfixturevalue("postgres").create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    migrate.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def users(engine) -> dict[str, int]:
    """An admin and two members; their ids."""
    with session_factory(engine)() as db:
        ids = {
            "admin": create_user(db, *ADMIN, role="admin").id,
            "member": create_user(db, *MEMBER, monthly_quota=5).id,
            "other": create_user(db, *OTHER).id,
        }
        db.commit()
    return ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Console:
    """``create_app(settings)`` under uvicorn on 127.0.0.1 in a thread."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        self.settings = settings
        self.app = create_app(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("the console did not start")
            time.sleep(0.02)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=60)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def settings_for(db_url: str, store: Path | str, **changes) -> Settings:
    return Settings(db_url=db_url, secret=SECRET, store=str(store), **changes)


@pytest.fixture
def make_console(engine, db_url, tmp_path):
    """``make_console(**settings)`` -> a running :class:`Console` on the test's database."""
    started: list[Console] = []

    def make(**changes) -> Console:
        changes.setdefault("store", tmp_path / "empty-store")
        console = Console(settings_for(db_url, **changes))
        started.append(console)
        return console

    yield make
    for console in started:
        console.stop()


def csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert match, html[:500]
    return match.group(1)


def login(client: httpx.Client, email: str, password: str) -> httpx.Response:
    page = client.get("/login")
    assert page.status_code == 200
    return client.post("/login", data={"email": email, "password": password, "csrf": csrf(page.text)})


def signed_in(console: Console, who: tuple[str, str]) -> httpx.Client:
    client = console.client()
    response = login(client, *who)
    assert response.status_code == 303, response.text
    return client


def page_csrf(client: httpx.Client, path: str = "/tokens") -> str:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return csrf(response.text)


def create_token(client: httpx.Client, name: str = "script") -> str:
    response = client.post("/tokens", data={"name": name, "expires_days": "30", "csrf": page_csrf(client)})
    assert response.status_code == 201, response.text
    match = re.search(r'<code id="new-token">(mkr_[A-Za-z0-9_-]+)</code>', response.text)
    assert match
    return match.group(1)
