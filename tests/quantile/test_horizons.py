"""Forecast horizons (issue 22): h-hour targets, baselines per horizon, purged cuts, scores with
a bootstrap sized for overlapping targets. On the bundled sample and on synthetic returns of a
known distribution."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from make_us_rich import baselines
from make_us_rich import horizons as H
from make_us_rich.errors import ConfigError
from make_us_rich.preprocessing.volatility import volatility_features
from make_us_rich.scoring import score

FIT = pd.Timedelta(days=60)


def test_the_h_hour_target_is_the_log_return_from_the_last_known_close(sample_btcusdt, vol):
    close = pd.Series(sample_btcusdt["close"].to_numpy(), index=vol.index)
    for h in (1, 4, 24):
        r = H.horizon_returns(vol, h)
        i = 500
        expected = np.log(close.iloc[i + h - 1] / close.iloc[i - 1])
        assert r.iloc[i] == pytest.approx(expected, rel=1e-9)
        assert r.iloc[len(r) - h + 1 :].isna().all() and np.isfinite(r.iloc[-h])  # data end before the target
        assert H.target_time(vol.index[i : i + 1], h)[0] == vol.index[i + h - 1]
    # a missing hour makes every target across it unknown, never a shorter sum
    gap = vol.drop(vol.index[1000])
    r24 = H.horizon_returns(gap, 24)
    assert r24.loc[vol.index[977] : vol.index[999]].isna().all()
    assert np.isfinite(r24.loc[vol.index[976]])


def test_at_one_hour_the_baselines_are_todays(vol, start):
    np.testing.assert_array_equal(H.empirical(vol, 1, start), baselines.empirical(vol, start))
    np.testing.assert_allclose(H.har(vol, 1, start, fit_window=FIT), baselines.har(vol, start, fit_window=FIT),
                               rtol=1e-12)
    np.testing.assert_allclose(H.garch_t(vol, 1, start, fit_window=FIT),
                               baselines.garch_t(vol, start, fit_window=FIT), rtol=1e-12)


@pytest.mark.parametrize("h", [4, 24])
def test_no_baseline_reads_a_target_that_is_not_known_at_the_origin(vol, start, h):
    """Change every candle from origin T on: no forecast at or before T moves (the HAR refit of
    T's month, the GARCH recursion and the empirical window see only complete targets)."""
    t = vol.index[vol.index.get_loc(start) + 24 * 20 + 5]
    future = vol.copy()
    after = future.index >= t
    future.loc[after, "log_return"] *= 3.0
    future.loc[after, "bar_range"] *= 3.0
    for name in ("empirical", "har", "garch_t"):
        kw = {} if name == "empirical" else {"fit_window": FIT}
        a = H.BASELINES[name](vol, h, start, t, **kw)
        b = H.BASELINES[name](future, h, start, t, **kw)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        # and the change is seen by the forecasts after it (the test would notice a leak)
        later = vol.index[vol.index.get_loc(t) + 24 * 3]
        assert not np.allclose(H.BASELINES[name](vol, h, later, later, **kw),
                               H.BASELINES[name](future, h, later, later, **kw))


def test_purged_split_keeps_h_hours_between_train_targets_and_each_cut(vol):
    h = 24
    val_start, test_start = vol.index[2000], vol.index[3000]
    train, val, test = H.purged_split(vol.index, h, val_start, test_start)
    ends = H.target_time(vol.index, h) + H.STEP  # when each target is known
    assert ends[train].max() <= val_start and ends[val].max() <= test_start
    assert vol.index[val].min() >= val_start and vol.index[test].min() == test_start
    # the purged origins are exactly the h - 1 before each cut
    assert (~train & (vol.index < val_start)).sum() == h - 1
    assert (~val & (vol.index >= val_start) & (vol.index < test_start)).sum() == h - 1
    with pytest.raises(ConfigError, match="after test start"):
        H.purged_split(vol.index, h, test_start, val_start)


def synthetic_vol(n: int = 6000, sigma: float = 0.01, seed: int = 3) -> pd.DataFrame:
    """Hourly klines whose log returns are i.i.d. normal(0, sigma): every h-hour return is
    normal(0, sigma sqrt(h)), so a calibrated 90 % interval covers 90 %."""
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0, sigma, n)
    close = 100.0 * np.exp(np.cumsum(r))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick = np.abs(rng.normal(0.0, sigma / 2, (2, n)))
    klines = pd.DataFrame({
        "timestamp": pd.date_range("2022-01-01", periods=n, freq="h", tz="UTC"),
        "high": np.maximum(open_, close) * np.exp(wick[0]), "low": np.minimum(open_, close) * np.exp(-wick[1]),
        "close": close, "volume": rng.uniform(50, 150, n), "trades": rng.integers(500, 1500, n),
    })
    return volatility_features(klines)


def test_baselines_are_calibrated_at_every_horizon_on_a_known_distribution():
    vol = synthetic_vol()
    start = vol.index[0] + pd.Timedelta(days=70)
    for h in (4, 24):
        y = H.horizon_returns(vol, h).loc[start:]
        for name, fc in H.all_baselines(vol, h, start, fit_window=FIT).items():
            if name == "persistence":
                continue
            cov = score(y, fc)["intervals"]
            assert 0.86 <= cov["90"]["coverage"] <= 0.94, (h, name, cov)
            assert 0.44 <= cov["50"]["coverage"] <= 0.56, (h, name, cov)
        # GARCH-t's h-hour spread is the i.i.d. sqrt(h) scaling, near the truth
        q = H.garch_t(vol, h, start, fit_window=FIT)
        width = (q["q95"] - q["q05"]).median()
        assert width == pytest.approx(2 * stats.norm.ppf(0.95) * 0.01 * np.sqrt(h), rel=0.06)


def test_scores_per_horizon_with_a_bootstrap_block_longer_than_the_overlap(vol, start):
    assert [H.bootstrap_block(h) for h in (1, 4, 24, 168)] == [168, 168, 168, 336]
    h = 24
    y = H.horizon_returns(vol, h).loc[start:]
    base = H.all_baselines(vol, h, start, fit_window=FIT, names=("persistence", "empirical", "har"))
    out = H.score_horizon(y, base["har"], base, h, n_boot=200)
    assert out["block"] == 168 and out["n"] == y.notna().sum()
    assert out["ratio"]["har"]["ratio"] == pytest.approx(1.0)
    r = out["ratio"]["empirical"]
    assert r["low"] < r["ratio"] < r["high"]
    c = out["coverage_ci"]["90"]
    assert c["low"] <= c["coverage"] <= c["high"] and c["high"] - c["low"] > 0.01
    assert c["coverage"] == out["model"]["intervals"]["90"]["coverage"]
    # overlapping targets: the block bootstrap's interval is wider than an i.i.d. one
    iid = H.coverage_ci(y.to_numpy(), base["har"].to_numpy(), "90", block=1, n_boot=200)
    assert c["high"] - c["low"] > 1.5 * (iid["high"] - iid["low"])


def test_horizons_are_checked():
    assert H.check_horizons([24, 1, 4, 4]) == (1, 4, 24)
    for bad in ([0], [], ["x"], [10_000]):
        with pytest.raises(ConfigError, match="horizons"):
            H.check_horizons(bad)


def test_each_horizon_is_gated_on_its_own(vol, start):
    """A horizon whose interval is badly calibrated fails its gate; the others pass theirs."""
    scores = {}
    for h in (1, 24):
        y = H.horizon_returns(vol, h).loc[start:]
        base = H.all_baselines(vol, h, start, fit_window=FIT, names=("persistence", "empirical", "har"))
        model = base["har"].to_numpy()
        if h == 24:  # a 24 h forecast with the 1 h spread: far too narrow
            model = H.har(vol, 1, start, fit_window=FIT).to_numpy()
        scores[str(h)] = H.score_horizon(y, model, base, h, n_boot=50)
    from make_us_rich.training.evaluate import gate_horizons

    gate = gate_horizons(scores, parity_passed=True)
    assert gate["1"].passed, gate["1"].reasons
    assert not gate["24"].passed
    assert any("coverage" in r and "outside" in r for r in gate["24"].reasons)
    assert not gate_horizons(scores, parity_passed=False)["1"].passed


def test_the_fraction_split_of_pooled_windows_is_purged_per_symbol(sample_btceur, sample_btcusdt):
    from make_us_rich.preprocessing.features import build_features
    from make_us_rich.preprocessing.pooled import pool_windows

    tables = {s: build_features(k)
              for s, k in (("BTCEUR", sample_btceur), ("BTCUSDT", sample_btcusdt))}
    pooled = pool_windows(tables, 12)
    y = H.pooled_horizon_targets(pooled, tables, (1, 24))
    test_start = {"BTCEUR": tables["BTCEUR"].index[4000], "BTCUSDT": None}
    (train, _), (val, y_val), (test, _) = H.split_pooled_horizons(pooled, y, (1, 24), 0.1, test_start)
    for i in range(len(pooled.symbols)):
        tr, va = train.index[train.symbol == i], val.index[val.symbol == i]
        assert (tr + 24 * H.STEP).max() <= va.min()  # no train target ends after early stopping begins
        assert (va.min() - tr.max()) == 24 * H.STEP  # exactly the 23 origins before the cut are purged
    cut = test_start["BTCEUR"]
    eur_val = val.index[val.symbol == 0]
    assert (eur_val + 24 * H.STEP).max() <= cut and test.index.min() == cut
    assert (test.symbol == 0).all() and np.isfinite(y_val).all()
