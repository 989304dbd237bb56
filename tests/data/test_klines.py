"""Data tests: the klines schema, symbols, intervals, validation policy and CSV I/O."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from make_us_rich.data import (
    KLINE_COLUMNS,
    interval_ms,
    normalize_symbol,
    read_klines_csv,
    validate_klines,
    write_klines_csv,
)
from make_us_rich.data.klines import KLINE_DTYPES, coerce_klines, klines_from_binance
from make_us_rich.errors import ConfigError, DataValidationError


@pytest.mark.parametrize(
    "given, expected",
    [("BTCEUR", "BTCEUR"), ("btc/eur", "BTCEUR"), ("BTC-USDT", "BTCUSDT"), (" eth_btc ", "ETHBTC")],
)
def test_normalize_symbol(given, expected):
    assert normalize_symbol(given) == expected


def test_normalize_symbol_from_parts():
    assert normalize_symbol("btc", "eur") == "BTCEUR"


@pytest.mark.parametrize("bad", ["", "BTC", "../etc/passwd", "BTC/EUR/USD", "BTC EUR!", "B/EUR"])
def test_normalize_symbol_rejects(bad):
    with pytest.raises(ConfigError, match="symbol|pair"):
        normalize_symbol(bad)


def test_interval_ms():
    assert interval_ms("1h") == 3_600_000
    assert interval_ms("15m") == 900_000
    with pytest.raises(ConfigError, match="unknown kline interval '1x'"):
        interval_ms("1x")


def test_sample_is_typed_with_the_12_columns(sample_btcusdt):
    assert tuple(sample_btcusdt.columns) == KLINE_COLUMNS
    for col, dtype in KLINE_DTYPES.items():
        assert str(sample_btcusdt[col].dtype) == str(dtype), col
    assert sample_btcusdt["timestamp"].is_monotonic_increasing
    assert (sample_btcusdt["close_time"] - sample_btcusdt["timestamp"]).eq(
        pd.Timedelta(milliseconds=3_599_999)
    ).all()


def test_klines_from_binance_payload():
    rows = [
        [1672531200000, "16541.77", "16545.70", "16508.39", "16529.67", "4364.8357", 1672534799999,
         "72146405.9", 96935, "2164.09", "35768236.2", "0"],
    ]
    df = klines_from_binance(rows)
    assert tuple(df.columns) == KLINE_COLUMNS
    assert df.loc[0, "timestamp"] == pd.Timestamp("2023-01-01", tz="UTC")
    assert df.loc[0, "close"] == pytest.approx(16529.67)
    assert df.loc[0, "trades"] == 96935
    assert klines_from_binance([]).empty


def test_validate_clean_real_data_changes_nothing(sample_btcusdt):
    out, report = validate_klines(sample_btcusdt)
    pd.testing.assert_frame_equal(out, sample_btcusdt)
    assert report.repairs == [] and report.missing_candles == 0
    assert report.rows_in == report.rows_out == len(sample_btcusdt)


def test_real_outage_gaps_are_counted_not_filled(btcusdt_2018h1_raw):
    out, report = validate_klines(btcusdt_2018h1_raw, max_missing_fraction=0.05)
    # 2018 H1: outages of 1 h (01-04), 75 h (02-08..11), 10 h (06-26) and 1 h (06-27).
    assert (report.missing_candles, report.gaps, report.largest_gap_candles) == (87, 4, 75)
    assert len(out) == len(btcusdt_2018h1_raw)
    assert report.irregular_close_time == 2


def test_too_many_missing_candles_is_an_error(btcusdt_2018h1_raw):
    y2018 = btcusdt_2018h1_raw[btcusdt_2018h1_raw["timestamp"] < pd.Timestamp("2018-03-01", tz="UTC")]
    with pytest.raises(DataValidationError, match=r"candles are missing .* over the limit of 1\.00%"):
        validate_klines(y2018)
    # ... and accepted when the caller explicitly tolerates more.
    _, report = validate_klines(y2018, max_missing_fraction=0.2)
    assert report.missing_candles > 0


def test_exact_duplicates_are_dropped_and_counted(sample_btcusdt):
    raw = pd.concat([sample_btcusdt, sample_btcusdt.iloc[[5, 9]]], ignore_index=True)
    out, report = validate_klines(raw)
    pd.testing.assert_frame_equal(out, sample_btcusdt)
    assert report.duplicates_dropped == 2
    assert any("duplicate" in r for r in report.repairs)


def test_conflicting_duplicates_are_an_error(sample_btcusdt):
    twin = sample_btcusdt.iloc[[7]].copy()
    twin["volume"] *= 1.01
    with pytest.raises(DataValidationError, match="share an open time .* differ in values"):
        validate_klines(pd.concat([sample_btcusdt, twin], ignore_index=True))


def test_unsorted_rows_are_sorted_and_input_untouched(sample_btcusdt):
    shuffled = sample_btcusdt.sample(frac=1.0, random_state=0)
    before = shuffled.copy()
    out, report = validate_klines(shuffled)
    pd.testing.assert_frame_equal(out, sample_btcusdt)
    assert report.sorted_rows > 0
    pd.testing.assert_frame_equal(shuffled, before)


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("close", np.nan, "missing, infinite or non-positive"),
        ("open", 0.0, "missing, infinite or non-positive"),
        ("low", -1.0, "missing, infinite or non-positive"),
        ("high", np.inf, "missing, infinite or non-positive"),
        ("high", 1.0, "high below max"),
        ("volume", -5.0, "negative volume"),
    ],
)
def test_broken_values_are_errors(sample_btcusdt, column, value, message):
    broken = sample_btcusdt.copy()
    broken.loc[100, column] = value
    with pytest.raises(DataValidationError, match=message) as err:
        validate_klines(broken)
    assert "2023-07-05T04:00:00+00:00" in str(err.value)  # names the offending candle


def test_off_grid_times_are_errors(sample_btcusdt):
    broken = sample_btcusdt.copy()
    broken.loc[10, "timestamp"] += pd.Timedelta(minutes=30)
    with pytest.raises(DataValidationError, match="off the 1h grid"):
        validate_klines(broken)


def test_missing_required_column_is_an_error(sample_btcusdt):
    with pytest.raises(DataValidationError, match=r"lack required column\(s\) \['close'\]"):
        validate_klines(sample_btcusdt.drop(columns="close"))


def test_missing_close_time_is_filled_and_counted(sample_btcusdt):
    raw = sample_btcusdt.drop(columns=["close_time", "tb_base_av", "tb_quote_av", "ignore"])
    out, report = validate_klines(raw)
    assert report.close_time_filled == len(raw)
    pd.testing.assert_series_equal(out["close_time"], sample_btcusdt["close_time"])
    assert out["tb_base_av"].isna().all()


def test_csv_round_trip(tmp_path, sample_btcusdt):
    for name in ("k.csv", "k.csv.gz"):
        path = write_klines_csv(sample_btcusdt, tmp_path / name)
        pd.testing.assert_frame_equal(read_klines_csv(path), sample_btcusdt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.csv", "k.csv.gz"]  # no temp files


def test_csv_with_iso_times_and_text_errors(tmp_path):
    good = tmp_path / "iso.csv"
    good.write_text("timestamp,open,high,low,close,volume\n2023-01-01T00:00:00Z,1,2,0.5,1.5,10\n")
    df = coerce_klines(pd.read_csv(good, dtype=str))
    assert df.loc[0, "timestamp"] == pd.Timestamp("2023-01-01", tz="UTC")
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n1672531200000,1,2,x,1.5,10\n")
    with pytest.raises(DataValidationError, match="column 'low'.*not numbers.*'x'"):
        read_klines_csv(bad)
    with pytest.raises(ConfigError, match="no klines CSV"):
        read_klines_csv(tmp_path / "nope.csv")
