"""The console image as the cluster runs it: ``migrate`` in a container of its own (the init
container), then ``mkrich console`` serving, both restricted on a read-only root with the SQLite
file on a writable volume; the schema the image writes is the one this checkout's migrations
write."""

from __future__ import annotations

import secrets
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

from make_us_rich.testing import free_port

from .image_helpers import REPO, RESTRICTED, run


def _schema(path) -> tuple[set[str], list[str]]:
    """(tables, Alembic revisions) of a SQLite file."""
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        revisions = [r[0] for r in db.execute("SELECT version_num FROM alembic_version")]
    return tables, revisions


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def volume(tmp_path):
    """A host folder the container's uid 10001 can write, mounted on /data."""
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)
    return data


def test_console_image_migrates_a_sqlite_volume(engine, images, volume, tmp_path):
    env = ("--env", "MKRICH_CONSOLE_DB=sqlite:////data/console.db",
           "--env", f"MKRICH_CONSOLE_SECRET={secrets.token_urlsafe(32)}")
    out = run(engine, images["console"], "migrate", options=(*env, "--volume", f"{volume}:/data"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert (volume / "console.db").stat().st_uid == 10001
    # the same migrations as this checkout's, applied by its CLI to an empty file
    reference = tmp_path / "reference.db"
    here = subprocess.run([str(REPO / ".venv" / "bin" / "mkrich"), "console", "migrate",
                           "--db", f"sqlite:///{reference}"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, timeout=120)
    assert here.returncode == 0, here.stdout + here.stderr
    tables, revisions = _schema(volume / "console.db")
    assert (tables, revisions) == _schema(reference)
    assert len(revisions) == 1 and {"alembic_version", "users"} <= tables, tables
    # a second migrate is a no-op
    again = run(engine, images["console"], "migrate", options=(*env, "--volume", f"{volume}:/data"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert _schema(volume / "console.db") == (tables, revisions)


def test_console_image_serves_the_probes(engine, images, volume):
    port = free_port()
    name = f"mkrich-console-{uuid.uuid4().hex[:8]}"
    started = subprocess.run(
        [engine, "run", "--detach", "--name", name, *RESTRICTED, "--network", "host",
         "--volume", f"{volume}:/data", "--env", "MKRICH_CONSOLE_DB=sqlite:////data/console.db",
         "--env", f"MKRICH_CONSOLE_SECRET={secrets.token_urlsafe(32)}",
         images["console"], "--host", "127.0.0.1", "--port", str(port)],
        capture_output=True, text=True,
    )
    assert started.returncode == 0, started.stderr
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if _get(f"{base}/healthz")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            state = subprocess.run([engine, "inspect", "--format", "{{.State.Running}}", name],
                                   capture_output=True, text=True).stdout.strip()
            if state != "true" or time.time() > deadline:
                logs = subprocess.run([engine, "logs", name], capture_output=True, text=True)
                pytest.fail(f"the console container did not come up (running: {state}):\n{logs.stdout}{logs.stderr}")
            time.sleep(0.5)
        assert _get(f"{base}/healthz") == (200, "ok")
        status, body = _get(f"{base}/readyz")
        assert status == 200, body  # migrated on start: the schema is at head
        assert (volume / "console.db").is_file()
        status, body = _get(f"{base}/login")
        assert status == 200 and 'name="password"' in body
    finally:
        subprocess.run([engine, "rm", "--force", name], capture_output=True)


def test_console_image_requires_the_session_secret(engine, images, volume):
    """No generated key in a container: without MKRICH_CONSOLE_SECRET it says what to set."""
    out = run(engine, images["console"], "--host", "127.0.0.1", "--port", str(free_port()),
              options=("--env", "MKRICH_CONSOLE_DB=sqlite:////data/console.db",
                       "--volume", f"{volume}:/data"), timeout=120)
    assert out.returncode != 0
    assert "MKRICH_CONSOLE_SECRET is required" in out.stdout + out.stderr, out.stdout + out.stderr
    assert not (volume / "console.db").exists()  # refused before touching the database
