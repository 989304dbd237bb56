"""Scores of quantile forecasts (issue 11)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from make_us_rich.errors import ConfigError
from make_us_rich.scoring import (
    QUANTILE_COLUMNS,
    QUANTILES,
    coverage,
    crps,
    pinball,
    pinball_ratio_ci,
    reliability,
    score,
)


def test_pinball_by_hand():
    y = np.array([1.0, -1.0])
    q = np.zeros((2, 5))
    # y above every quantile: tau * 1; y below: (1 - tau) * 1
    expected = (np.array(QUANTILES) + (1 - np.array(QUANTILES))) / 2
    np.testing.assert_allclose(pinball(y, q), expected)
    q[0] = [0.5, 0.8, 1.0, 1.2, 2.0]
    assert pinball(y[:1], q[:1])[2] == 0.0
    assert pinball(y[:1], q[:1])[0] == pytest.approx(0.05 * 0.5)
    assert pinball(y[:1], q[:1])[4] == pytest.approx(0.05 * 1.0)


def test_crps_of_a_point_forecast_is_its_mae():
    rng = np.random.default_rng(0)
    y, point = rng.normal(size=500), rng.normal(size=500)
    q = np.repeat(point[:, None], 5, axis=1)
    assert crps(y, q) == pytest.approx(np.mean(np.abs(y - point)))


def test_true_quantiles_are_calibrated_and_beat_wrong_ones():
    rng = np.random.default_rng(1)
    y = rng.standard_normal(40_000)
    true = np.tile(stats.norm.ppf(QUANTILES), (len(y), 1))
    cov = coverage(y, true)
    assert cov["90"]["coverage"] == pytest.approx(0.90, abs=0.01)
    assert cov["50"]["coverage"] == pytest.approx(0.50, abs=0.01)
    assert cov["90"]["width"] == pytest.approx(2 * 1.6449, rel=1e-3)
    table = reliability(y, true)
    np.testing.assert_allclose(table["observed"], QUANTILES, atol=0.01)
    assert list(table.index) == list(QUANTILE_COLUMNS)
    for wrong in (true * 1.5, true * 0.6, true + 0.3):
        assert pinball(y, wrong).mean() > pinball(y, true).mean()


def test_score_is_json_ready_and_accepts_frames_with_nan_rows():
    rng = np.random.default_rng(2)
    y = rng.standard_normal(100)
    frame = pd.DataFrame(np.tile(stats.norm.ppf(QUANTILES), (100, 1)), columns=list(QUANTILE_COLUMNS))
    frame.iloc[0] = np.nan
    s = score(y, frame)
    assert s["n"] == 99
    assert set(s["pinball"]) == set(QUANTILE_COLUMNS)
    assert s["crps"] == pytest.approx(2 * s["mean_pinball"])
    assert s["median"]["mae"] == pytest.approx(np.mean(np.abs(y[1:])))
    assert set(s["intervals"]) == {"90", "50"}


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ConfigError, match="one column per quantile"):
        pinball(np.zeros(3), np.zeros((3, 4)))


def test_bootstrap_ratio_interval():
    rng = np.random.default_rng(3)
    y = rng.standard_normal(5000)
    good = np.tile(stats.norm.ppf(QUANTILES), (len(y), 1))
    same = pinball_ratio_ci(y, good, good, n_boot=100)
    assert same["ratio"] == same["low"] == same["high"] == 1.0
    ci = pinball_ratio_ci(y, good, good * 2.0, n_boot=200)
    assert ci["low"] <= ci["ratio"] <= ci["high"] < 1.0
    with pytest.raises(ConfigError, match="block"):
        pinball_ratio_ci(y[:100], good[:100], good[:100])
