"""Shared fixtures: real klines (bundled sample and ../shared/data) and a fake Binance API."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from make_us_rich.data import load_klines, read_klines_csv, validate_klines
from make_us_rich.testing.fake_binance import FakeBinance

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The real klines of ../shared/data (override with MKRICH_SHARED_DATA)."""
    env = os.environ.get("MKRICH_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def sample_btceur() -> pd.DataFrame:
    return load_klines("sample", "BTCEUR")[0]


@pytest.fixture(scope="session")
def sample_btcusdt() -> pd.DataFrame:
    return load_klines("sample", "BTCUSDT")[0]


@pytest.fixture(scope="session")
def btcusdt_all_raw() -> pd.DataFrame:
    """BTCUSDT 1h 2018-2023 as read from ../shared/data (typed, not validated)."""
    path = shared_data_dir() / "BTCUSDT_1h_until_2023.csv.gz"
    if not path.is_file():
        pytest.fail(f"real klines not found at {path}; set MKRICH_SHARED_DATA to their folder")
    return read_klines_csv(path)


@pytest.fixture(scope="session")
def btcusdt_2023(btcusdt_all_raw) -> pd.DataFrame:
    """One real year (2023) of validated BTCUSDT klines, all 12 columns (8759 candles)."""
    year = btcusdt_all_raw[btcusdt_all_raw["timestamp"] >= pd.Timestamp("2023-01-01", tz="UTC")]
    return validate_klines(year)[0]


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


@pytest.fixture(scope="session")
def trained_artifacts(tmp_path_factory, tiny_config):
    """A real quantile model trained on 75 days of the BTCEUR sample (gate: accepted)."""
    pytest.importorskip("tensorflow")
    from make_us_rich.training.workflow import train_symbol

    out = tmp_path_factory.mktemp("artifacts") / "btceur"
    run = train_symbol("sample", "BTCEUR", out, tiny_config, days=TINY_DAYS)
    assert run.passed_gate, run.metrics["gate"]
    return out


@pytest.fixture(scope="session")
def rejected_artifacts(tmp_path_factory, tiny_config):
    """A real model that fails the gate: its 90 % interval cannot cover within a band of
    0.99-1.0 (and the gate tolerates nothing)."""
    pytest.importorskip("tensorflow")
    from make_us_rich.training.workflow import train_symbol

    out = tmp_path_factory.mktemp("artifacts") / "btceur-rejected"
    run = train_symbol("sample", "BTCEUR", out, tiny_config, days=TINY_DAYS, gate_tolerance=0.0,
                       coverage_band=(0.99, 1.0))
    assert not run.passed_gate, run.metrics["gate"]
    return out


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
