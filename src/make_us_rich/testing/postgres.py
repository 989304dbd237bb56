"""A real PostgreSQL server for tests: Debian's binaries (``/usr/lib/postgresql/<v>/bin``, from
``make db-tools``) on a temporary data directory and a free loopback port, run as a non-root user
(PostgreSQL refuses root: as root the server runs as ``nobody``). Password authentication
(SCRAM) on TCP only; fsync off (throw-away data)."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from make_us_rich.testing import free_port, missing_tool

INSTALL_HINT = "run `make db-tools` (apt-installs postgresql)"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries on this machine."""


def bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<v>/bin`` (or where ``pg_ctl`` is on PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    if on_path:
        return Path(on_path).resolve().parent
    raise PostgresUnavailable(f"PostgreSQL is not installed: {INSTALL_HINT}")


class PostgresServer:
    """``with PostgresServer() as pg: url = pg.create_database("t1")``."""

    def __init__(self, user: str = "nobody") -> None:
        self.bin = bin_dir()
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self._run_as = pwd.getpwnam(user) if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="mkrich-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.proc: subprocess.Popen | None = None

    def _kw(self) -> dict:
        if self._run_as is None:
            return {}
        return {"user": self._run_as.pw_uid, "group": self._run_as.pw_gid, "extra_groups": [],
                "env": {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(self.root)}}

    def start(self) -> PostgresServer:
        if self._run_as is not None:
            os.chown(self.root, self._run_as.pw_uid, self._run_as.pw_gid)
        self.root.chmod(0o700)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password)
        if self._run_as is not None:
            os.chown(pwfile, self._run_as.pw_uid, self._run_as.pw_gid)
        init = subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8",
             "--no-locale", "--auth=scram-sha-256", f"--pwfile={pwfile}", "--no-sync"],
            capture_output=True, text=True, cwd=self.root, **self._kw())
        pwfile.unlink()
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=100"],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT, cwd=self.root, **self._kw())
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited:\n{self.log.read_text()}")
            if self._accepts():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"postgres not ready in 60 s:\n{self.log.read_text()}")

    def _accepts(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        """SQLAlchemy URL of ``database``."""
        return f"postgresql+psycopg://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT: fast shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def started_or_missing() -> Iterator[PostgresServer]:
    """A running server for a test fixture, or the suite's missing-tool outcome (a skip, a
    failure under ``CI=true``) where PostgreSQL is not installed."""
    try:
        server = PostgresServer().start()
    except PostgresUnavailable as exc:
        missing_tool(str(exc))
    try:
        yield server
    finally:
        server.stop()
