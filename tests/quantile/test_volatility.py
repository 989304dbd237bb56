"""Causal volatility features (issue 11) on the bundled sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from make_us_rich.errors import DataValidationError
from make_us_rich.preprocessing.features import FEATURE_COLUMNS, extract_features_from_dataset
from make_us_rich.preprocessing.volatility import (
    MIN_NORM_VOL,
    VOLATILITY_FEATURES,
    add_volatility_features,
    volatility_features,
)


@pytest.fixture(scope="module")
def klines(sample_btcusdt):
    return sample_btcusdt.iloc[:2000].reset_index(drop=True)


@pytest.fixture(scope="module")
def vol(klines):
    return volatility_features(klines)


def test_columns_declared_once_and_appended_to_features(klines, vol):
    assert list(vol.columns) == list(VOLATILITY_FEATURES)
    feats = add_volatility_features(extract_features_from_dataset(klines), klines)
    assert list(feats.columns) == list(FEATURE_COLUMNS) + list(VOLATILITY_FEATURES)
    assert feats.index.equals(vol.index)
    # after the warm-up every feature is defined
    assert vol.iloc[720:].notna().all().all()


@pytest.mark.parametrize("cut", [100, 800, 1500])
def test_changing_future_rows_never_changes_a_past_feature(klines, vol, cut):
    rng = np.random.default_rng(cut)
    future = klines.copy()
    n = len(future) - cut
    factor = np.exp(rng.normal(0, 0.05, n))
    for col in ("open", "high", "low", "close"):
        future.loc[cut:, col] = future.loc[cut:, col].to_numpy() * factor
    future.loc[cut:, "high"] = future.loc[cut:, "high"] * 1.02
    future.loc[cut:, "volume"] = future.loc[cut:, "volume"] * rng.uniform(0, 5, n)
    future.loc[cut:, "trades"] = future.loc[cut:, "trades"] * 3
    changed = volatility_features(future)
    pd.testing.assert_frame_equal(changed.iloc[:cut], vol.iloc[:cut])
    assert not changed.iloc[cut:].equals(vol.iloc[cut:])  # the perturbation did reach the future
    truncated = volatility_features(klines.iloc[:cut])
    pd.testing.assert_frame_equal(truncated, vol.iloc[:cut])


def test_values_match_their_definitions(klines, vol):
    t = 1000
    close, high, low = (klines[c].to_numpy(np.float64) for c in ("close", "high", "low"))
    rows = vol.iloc[t]
    r = np.log(close[1:] / close[:-1])
    assert rows["log_return"] == pytest.approx(np.log(close[t] / close[t - 1]))
    hl2 = np.log(high / low) ** 2
    for name, hours in (("range_vol_6h", 6), ("range_vol_24h", 24), ("range_vol_7d", 168), ("range_vol_30d", 720)):
        expected = np.sqrt(hl2[t - hours + 1 : t + 1].mean() / (4 * np.log(2)))
        assert rows[name] == pytest.approx(expected, rel=1e-9), name
    assert rows["bar_range"] == pytest.approx(np.log(high[t] / low[t]))
    # the next candle's hour of day, on the 30 previous days: rows t + 1 - 24 k
    hour = np.mean([abs(r[t + 1 - 24 * k - 1]) for k in range(1, 31)])
    assert rows["hour_vol"] == pytest.approx(hour, rel=1e-9)
    assert rows["return_24h"] == pytest.approx(np.log(close[t] / close[t - 24]))
    volume = klines["volume"].to_numpy(np.float64)
    assert rows["volume_ratio"] == pytest.approx(volume[t] / volume[t - 719 : t + 1].mean(), rel=1e-9)
    norm = np.sqrt(np.mean(r[t - 720 : t] ** 2))
    assert rows["norm_vol"] == pytest.approx(max(norm, MIN_NORM_VOL), rel=1e-9)


def test_a_missing_candle_is_a_gap_not_a_return(klines):
    gapped = klines.drop(index=500).reset_index(drop=True)
    vol = volatility_features(gapped)
    assert np.isnan(vol["log_return"].iloc[500])  # the candle after the gap
    assert np.isfinite(vol["log_return"].iloc[499])
    # time windows stay time windows: 24 h before the row after the gap holds 23 candles
    assert np.isfinite(vol["range_vol_24h"].iloc[500])


def test_bad_input_names_the_problem(klines):
    with pytest.raises(DataValidationError, match="trades"):
        volatility_features(klines.drop(columns="trades"))
    some_trades = klines.assign(trades=klines["trades"].astype("Int64").mask(klines.index == 3))
    with pytest.raises(DataValidationError, match="trade count"):
        volatility_features(some_trades)
    feats = extract_features_from_dataset(klines)
    with pytest.raises(DataValidationError, match="same klines"):
        add_volatility_features(feats.iloc[1:], klines)
    with pytest.raises(DataValidationError, match="already"):
        add_volatility_features(add_volatility_features(feats, klines), klines)
