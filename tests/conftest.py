"""Shared fixtures: real klines (bundled sample and tests/fixtures) and a fake Binance API."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from make_us_rich.data import load_klines, read_klines_csv, validate_klines
from make_us_rich.testing.fake_binance import FakeBinance

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture(scope="session")
def sample_btceur() -> pd.DataFrame:
    return load_klines("sample", "BTCEUR")[0]


@pytest.fixture(scope="session")
def sample_btcusdt() -> pd.DataFrame:
    return load_klines("sample", "BTCUSDT")[0]


@pytest.fixture(scope="session")
def btcusdt_2018h1_raw() -> pd.DataFrame:
    """Real BTCUSDT 1h klines of 2018 H1 as read (typed, not validated): Binance outages
    (87 missing hours in 4 gaps, the largest 75) and 2 irregular close times."""
    return read_klines_csv(FIXTURES / "BTCUSDT_1h_2018H1.csv.gz")


@pytest.fixture(scope="session")
def btcusdt_2023(sample_btcusdt) -> pd.DataFrame:
    """One real year (2023) of validated BTCUSDT klines, all 12 columns (8759 candles):
    the H1 fixture followed by the bundled H2 sample."""
    first_half = read_klines_csv(FIXTURES / "BTCUSDT_1h_2023H1.csv.gz")
    return validate_klines(pd.concat([first_half, sample_btcusdt], ignore_index=True))[0]


@pytest.fixture
def fake_binance(btcusdt_2023, sample_btceur):
    with FakeBinance({"BTCUSDT": btcusdt_2023, "BTCEUR": sample_btceur}) as fake:
        yield fake


# --------------------------------------------------------------------------- trained models
TINY_SEQ = 12
#: days of the sample a tiny model trains on: the volatility features need ~30 days of warm-up
TINY_DAYS = 75


@pytest.fixture(scope="session")
def tiny_config():
    from make_us_rich.training import preset

    return preset("tiny")


def shared_once(tmp_path_factory, name: str, make) -> Path:
    """``make(folder)`` once per test session, also under pytest-xdist: the first worker that
    needs it builds it under a lock in the folder the workers share, the others wait and reuse
    it (a trained model costs seconds of CPU that two workers would otherwise spend twice)."""
    import fcntl
    import os
    import shutil

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    target, done = root / name, root / f"{name}.done"
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(target, ignore_errors=True)
            make(target)
            done.touch()
    return target


@pytest.fixture(scope="session")
def trained_artifacts(tmp_path_factory, tiny_config):
    """A real quantile model trained on 75 days of the BTCEUR sample (gate: accepted)."""
    pytest.importorskip("tensorflow")
    from make_us_rich.workflow import train_symbol

    def train(out: Path) -> None:
        run = train_symbol("sample", "BTCEUR", out, tiny_config, days=TINY_DAYS)
        assert run.passed_gate, run.metrics["gate"]

    return shared_once(tmp_path_factory, "trained-btceur", train)


@pytest.fixture(scope="session")
def rejected_artifacts(tmp_path_factory, tiny_config):
    """A real model that fails the gate: its 90 % interval cannot cover within a band of
    0.99-1.0 (and the gate tolerates nothing)."""
    pytest.importorskip("tensorflow")
    from make_us_rich.workflow import train_symbol

    def train(out: Path) -> None:
        run = train_symbol("sample", "BTCEUR", out, tiny_config, days=TINY_DAYS, gate_tolerance=0.0,
                           coverage_min=0.99, coverage_max=1.0)
        assert not run.passed_gate, run.metrics["gate"]

    return shared_once(tmp_path_factory, "trained-btceur-rejected", train)


# --------------------------------------------------------------------------- S3 (moto server)
@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server in-process on a free loopback port: the real S3 wire protocol."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """AWS environment pointing boto3 at the moto server, and a fresh bucket."""
    import uuid

    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    bucket = f"models-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
    """A real one-symbol kfp.local run (``mkrich run``, tiny settings, the sample): its pipeline
    root and run id, for the runs pages."""
    import subprocess
    import sys

    pytest.importorskip("tensorflow")
    base = tmp_path_factory.mktemp("pipeline")
    done = subprocess.run(
        [sys.executable, "-m", "make_us_rich.cli", "run", "--symbols", "BTCEUR", "--store", str(base / "store"),
         "--pipeline-root", str(base / "root"), "--lookback-days", "75", "--sequence-length", "12",
         "--units", "8", "--epochs", "2", "--patience", "2", "--batch-size", "64"],
        capture_output=True, text=True, timeout=1800)
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: the gate rejected the model
    (run,) = (base / "root").glob("hourly-training-*")
    return base / "root", run.name


# --------------------------------------------------------------------------- universal models
UNIVERSAL_SYMBOLS = ("BTCEUR", "BTCUSDT", "ETHUSDT")


@pytest.fixture(scope="session")
def universal_models(tmp_path_factory, sample_btceur, sample_btcusdt):
    """Two real tiny universal models (issue 21) of BTCEUR, BTCUSDT and ETHUSDT (BTCUSDT's
    candles under another name), trained on the sample's first 2,000 hours, the second with one
    epoch less: ``{"market": the run's data folder, "a": model folder, "b": model folder,
    "csv": the klines (source csv:DIR)}``;
    each model folder holds ``symbols/<SYMBOL>/``, one publishable artifact folder per symbol."""
    pytest.importorskip("tensorflow")
    from make_us_rich.data import write_klines_csv
    from make_us_rich.params import RunSpec
    from make_us_rich.stages import run_universal
    from make_us_rich.training.config import TrainConfig

    tiny = dict(sequence_length=12, lstm_units=8, batch_size=64, patience=1)

    def train(out: Path) -> None:
        csv = out / "csv"
        csv.mkdir(parents=True)
        write_klines_csv(sample_btceur.iloc[:2000], csv / "BTCEUR_1h.csv")
        write_klines_csv(sample_btcusdt.iloc[:2000], csv / "BTCUSDT_1h.csv")
        write_klines_csv(sample_btcusdt.iloc[:2000], csv / "ETHUSDT_1h.csv")
        for name, epochs in (("a", 2), ("b", 1)):
            run_universal(f"csv:{csv}", list(UNIVERSAL_SYMBOLS), out / name, RunSpec(train=TrainConfig(**tiny, max_epochs=epochs)),
                          work_dir=out / "market")

    root = shared_once(tmp_path_factory, "universal-models", train)
    return {"market": root / "market", "a": root / "a", "b": root / "b", "csv": root / "csv"}


#: the horizons of the tiny horizon model below (issue 22)
HORIZONS = (1, 4, 24)


@pytest.fixture(scope="session")
def horizons_btceur(tmp_path_factory, sample_btceur, sample_btcusdt):
    """A real tiny universal model of the 1, 4 and 24 hour horizons (issue 22), trained on the
    sample's first 3,000 hours of BTCEUR and BTCUSDT (its last 20 % the test period), and
    BTCEUR's publishable folder evaluated with a gate every horizon passes (tolerance 100 %,
    coverage 0-1), so all three are served: ``{"model": the shared model folder, "BTCEUR": the
    symbol's folder}`` (publish with ``shared_model=model``)."""
    pytest.importorskip("tensorflow")
    import json

    from make_us_rich.data import write_klines_csv
    from make_us_rich.params import RunSpec
    from make_us_rich.stages import market_evaluate_stage, run_universal
    from make_us_rich.training.config import TrainConfig

    def train(out: Path) -> None:
        csv = out / "csv"
        csv.mkdir(parents=True)
        write_klines_csv(sample_btceur.iloc[:3000], csv / "BTCEUR_1h.csv")
        write_klines_csv(sample_btcusdt.iloc[:3000], csv / "BTCUSDT_1h.csv")
        config = TrainConfig(sequence_length=12, lstm_units=8, batch_size=64, patience=1, max_epochs=2, test_size=0.2,
                             horizons=HORIZONS)
        run_universal(f"csv:{csv}", ["BTCEUR", "BTCUSDT"], out / "model", RunSpec(train=config), work_dir=out / "market")
        row = market_evaluate_stage(out / "model", out / "market", "BTCEUR", out / "BTCEUR",
                                    gate_tolerance=1.0, coverage_min=0.0, coverage_max=1.0)
        assert "error" not in row, row
        gate = json.loads((out / "BTCEUR" / "metrics.json").read_text())["gate"]
        assert gate["passed"] and gate["served_horizons"] == list(HORIZONS), gate

    root = shared_once(tmp_path_factory, "horizons-btceur", train)
    return {"model": root / "model", "BTCEUR": root / "BTCEUR"}


#: tiny training settings of the universal runs below (the sample's 75 days, seconds per run)
UNIVERSAL_RUN_FLAGS = ["--lookback-days", "75", "--sequence-length", "12", "--units", "8", "--epochs", "2",
                       "--patience", "2", "--batch-size", "64", "--seed", "7", "--eval-batch", "2"]


@pytest.fixture(scope="session")
def universal_runs(tmp_path_factory):
    """Two real ``mkrich run --universal`` runs (kfp.local, tiny settings, the sample) into one
    pipeline root and store, for the run history: BTCEUR, BTCUSDT and ETHUSDT (no sample: left
    out and named), the first trained in full and accepted, the second warm-started from it with
    a time budget and rejected by a gate no model can pass (coverage 0.99-1.0), so each symbol
    keeps the first run's universal model. Returns ``(root, store, [first id, second id])``."""
    import subprocess
    import sys

    pytest.importorskip("tensorflow")

    def run(base: Path) -> None:
        common = ["--universal", "--symbols", "BTCEUR,BTCUSDT,ETHUSDT", "--store", str(base / "store"),
                  "--pipeline-root", str(base / "root"), *UNIVERSAL_RUN_FLAGS]
        for extra in ([], ["--time-budget", "300", "--gate-tolerance", "0", "--coverage-min", "0.99",
                           "--coverage-max", "1.0"]):
            done = subprocess.run([sys.executable, "-m", "make_us_rich.cli", "run", *common, *extra],
                                  capture_output=True, text=True, timeout=1800)
            assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: a symbol was rejected

    base = shared_once(tmp_path_factory, "universal-runs", run)
    ids = sorted(p.name for p in (base / "root").glob("universal-training-*"))
    assert len(ids) == 2, ids
    return base / "root", base / "store", ids
