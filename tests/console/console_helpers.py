"""Helpers of the console tests: the console under uvicorn in a thread, signing in, CSRF tokens."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import httpx

from make_us_rich.console.app import create_app
from make_us_rich.console.settings import Settings
from make_us_rich.testing import free_port, wait_until

SECRET = "console-tests-" + "k" * 40
ADMIN = ("admin@example.com", "admin-password-123")
MEMBER = ("member@example.com", "member-password-123")
OTHER = ("other@example.com", "other-password-1234")


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

        def started() -> bool:
            if not self.server.started and not self.thread.is_alive():
                raise RuntimeError("the console did not start")
            return self.server.started

        wait_until(started, 20, 0.02, what="the console started")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=60)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.app.state.engine.dispose()


def settings_for(db_url: str, store: Path | str, **changes) -> Settings:
    """The periodic forecast recorder is off unless a test turns it on (``record_minutes``)."""
    changes.setdefault("record_minutes", 0)
    return Settings(db_url=db_url, secret=SECRET, store=str(store), **changes)


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
