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
