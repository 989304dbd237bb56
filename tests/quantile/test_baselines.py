"""Walk-forward baselines of the quantile forecast (issue 11) on the bundled sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from make_us_rich import baselines
from make_us_rich.errors import InsufficientHistoryError
from make_us_rich.scoring import QUANTILE_COLUMNS, score

FIT = pd.Timedelta(days=60)


def run_all(vol, start, end=None):
    return {
        "persistence": baselines.persistence(vol, start, end),
        "empirical": baselines.empirical(vol, start, end),
        "garch_t": baselines.garch_t(vol, start, end, fit_window=FIT),
        "har": baselines.har(vol, start, end, fit_window=FIT),
    }


@pytest.fixture(scope="module")
def forecasts(vol, start):
    return run_all(vol, start)


def test_same_shape_monotone_and_better_than_persistence(vol, start, forecasts):
    index = vol.index[vol.index >= start]
    y = vol["log_return"].reindex(index)
    scores = {}
    for name, f in forecasts.items():
        assert list(f.columns) == list(QUANTILE_COLUMNS), name
        assert f.index.equals(index), name
        assert f.notna().all().all(), name
        assert (np.diff(f.to_numpy(), axis=1) >= 0).all(), name
        scores[name] = score(y, f)
    for name in ("empirical", "garch_t", "har"):
        assert scores[name]["mean_pinball"] < scores["persistence"]["mean_pinball"], name
        assert 0.8 < scores[name]["intervals"]["90"]["coverage"] < 0.97, (name, scores[name])
        assert 0.35 < scores[name]["intervals"]["50"]["coverage"] < 0.65, (name, scores[name])


def test_empirical_is_the_quantiles_of_the_previous_720_returns(vol, start, forecasts):
    t = vol.index.get_loc(start) + 100
    past = vol["log_return"].iloc[t - 720 : t].dropna()
    expected = np.quantile(past, (0.05, 0.25, 0.5, 0.75, 0.95))
    np.testing.assert_allclose(forecasts["empirical"].loc[vol.index[t]].to_numpy(), expected, rtol=1e-9)


def test_a_forecast_never_sees_its_own_hour_or_later(vol, start, forecasts):
    """Perturb every row from T on (the target included): forecasts up to T do not move."""
    rng = np.random.default_rng(0)
    T = start + pd.Timedelta(days=10, hours=5)
    changed = vol.copy()
    later = changed.index >= T
    changed.loc[later] = changed.loc[later].to_numpy() * rng.uniform(0.2, 5.0, (later.sum(), vol.shape[1]))
    again = run_all(changed, start)
    for name, f in forecasts.items():
        pd.testing.assert_frame_equal(again[name].loc[:T], f.loc[:T], obj=name)
        if name != "persistence":
            assert not again[name].loc[T + pd.Timedelta(hours=1) :].equals(f.loc[T + pd.Timedelta(hours=1) :])


def test_too_little_history_is_a_clear_error(vol):
    with pytest.raises(InsufficientHistoryError, match="more history"):
        baselines.garch_t(vol, vol.index[10])
