"""The console on a real database (SQLite file, and a real PostgreSQL server started here), served
by uvicorn on a free loopback port in a thread, spoken to over HTTP."""

from __future__ import annotations

import uuid

import pytest
from console_helpers import ADMIN, MEMBER, OTHER, Console, settings_for

from make_us_rich.console import migrate
from make_us_rich.console.auth import create_user
from make_us_rich.console.db import make_engine, session_factory
from make_us_rich.console.dev import start_server
from make_us_rich.store import ModelStore
from make_us_rich.testing import free_port
from make_us_rich.testing.postgres import started_or_missing


@pytest.fixture(scope="session")
def postgres():
    with started_or_missing() as server:
        yield server


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


@pytest.fixture(scope="session")
def console_store(tmp_path_factory, trained_artifacts, rejected_artifacts):
    """A store with a rejected and then an accepted (serving) BTCEUR model."""
    path = tmp_path_factory.mktemp("console") / "store"
    store = ModelStore(path)
    store.publish(rejected_artifacts, "BTCEUR")
    store.publish(trained_artifacts, "BTCEUR")
    return path


@pytest.fixture(scope="session")
def model_server(console_store):
    """The real `mkrich serve` on a free loopback port (what `make console` starts)."""
    pytest.importorskip("kserve")
    proc, url = start_server(str(console_store), free_port())
    yield url
    proc.terminate()
    proc.wait(timeout=30)



@pytest.fixture(scope="session")
def horizon_store(tmp_path_factory, horizons_btceur):
    """A store whose BTCEUR is served by the tiny universal model of the 1, 4 and 24 hour
    horizons (every horizon passed its gate)."""
    path = tmp_path_factory.mktemp("console-horizons") / "store"
    ModelStore(path).publish(horizons_btceur["BTCEUR"], "BTCEUR", shared_model=horizons_btceur["model"])
    return path


@pytest.fixture(scope="session")
def horizon_server(horizon_store):
    """The real `mkrich serve` of :func:`horizon_store` on a free loopback port."""
    pytest.importorskip("kserve")
    proc, url = start_server(str(horizon_store), free_port())
    yield url
    proc.terminate()
    proc.wait(timeout=30)
