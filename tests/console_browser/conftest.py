"""Real headless Chromium (Debian's, driven by Playwright through ``executable_path``) against a
real console (``mkrich console`` in a subprocess, SQLite in a temporary folder) that calls a real
``mkrich serve`` (KServe ModelServer) serving a tiny model trained on the bundled sample."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass

import pytest

from make_us_rich.store import ModelStore
from make_us_rich.testing import free_port, missing_tool

from .helpers import Process, chromium

SYMBOL = "BTCEUR"
ADMIN = ("admin@example.com", "an admin password 1")


@pytest.fixture(scope="session")
def browser():
    path = chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_tool("playwright is not installed: `make install` (the dev extra)")
    with sync_playwright() as playwright:
        # as root (CI) Chromium's sandbox cannot start: no user namespaces for root
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        launched = playwright.chromium.launch(executable_path=path, args=args)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def model_server(tmp_path_factory, trained_artifacts, horizons_btceur):
    """``mkrich serve`` of a local store where BTCEUR had a tiny per-symbol model and is now
    served by the tiny universal model of the 1, 4 and 24 hour horizons (issue 22)."""
    store = tmp_path_factory.mktemp("console-store") / "store"
    ModelStore(store).publish(trained_artifacts, SYMBOL)
    ModelStore(store).publish(horizons_btceur[SYMBOL], SYMBOL, shared_model=horizons_btceur["model"])
    port = free_port()
    server = Process("serve", ["make_us_rich.cli", "serve", "--store", str(store), "--symbols", SYMBOL,
                               "--host", "127.0.0.1", "--port", str(port)],
                     ready_url=f"http://127.0.0.1:{port}/v2/health/ready")
    server.url, server.store = f"http://127.0.0.1:{port}", store
    yield server
    server.stop()


@dataclass
class Console:
    url: str
    db: str
    store: str
    inference_url: str
    admin: tuple[str, str]
    process: Process
    run_id: str
    recorded: int
    universal_run_id: str


#: hours of the sample before its last candle whose forecasts are recorded before the console starts
RECORDED_HOURS = 36


def record_past_forecasts(db: str, store, inference_url: str) -> int:
    """Real forecasts of the served model for the sample's last hours (windows ending earlier),
    recorded as the console records what it fetches: the history the symbol page compares
    with the closes."""
    from datetime import UTC, datetime, timedelta

    from make_us_rich.console import forecasts, gateway
    from make_us_rich.console.db import make_engine, session_factory
    from make_us_rich.console.settings import Settings

    last = datetime(2023, 12, 31, 23, tzinfo=UTC)
    engine = make_engine(db)
    with session_factory(engine)() as session:
        for back in range(RECORDED_HOURS, 0, -1):
            settings = Settings(db_url=db, secret="x" * 40, store=str(store), inference_url=inference_url,
                                end=(last - timedelta(hours=back)).isoformat())
            forecasts.record(session, gateway.forecast(settings, ModelStore(store), SYMBOL))
    engine.dispose()
    return RECORDED_HOURS


@pytest.fixture(scope="session")
def console(tmp_path_factory, model_server, pipeline_run, universal_runs):
    """``mkrich console`` on the sample, with a first admin made by ``create-admin``, the
    forecasts of the sample's last hours recorded, and a runs folder holding real runs of both
    pipelines (links to the fixtures' run folders): a per-symbol run and two universal ones."""
    db = f"sqlite:///{tmp_path_factory.mktemp('console-db') / 'console.db'}"
    env = {"MKRICH_CONSOLE_SECRET": secrets.token_urlsafe(48)}
    made = subprocess.run([sys.executable, "-m", "make_us_rich.cli", "console", "create-admin",
                           "--email", ADMIN[0], "--db", db], capture_output=True, text=True,
                          env={**os.environ, **env, "MKRICH_CONSOLE_ADMIN_PASSWORD": ADMIN[1]}, timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr
    recorded = record_past_forecasts(db, model_server.store, model_server.url)
    per_symbol_root, run_id = pipeline_run
    universal_root, _, universal_ids = universal_runs
    root = tmp_path_factory.mktemp("console-runs")
    for folder in (per_symbol_root / run_id, *(universal_root / u for u in universal_ids)):
        (root / folder.name).symlink_to(folder, target_is_directory=True)
    env["MKRICH_CONSOLE_RUNS_DIR"] = str(root)
    port = free_port()
    process = Process("console", ["make_us_rich.cli", "console", "--db", db, "--host", "127.0.0.1",
                                  "--port", str(port), "--store", str(model_server.store),
                                  "--source", "sample", "--inference-url", model_server.url],
                      ready_url=f"http://127.0.0.1:{port}/readyz", env=env)
    yield Console(f"http://127.0.0.1:{port}", db, str(model_server.store), model_server.url, ADMIN, process,
                  run_id, recorded, universal_ids[-1])
    process.stop()
