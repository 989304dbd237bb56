"""Fixtures of the baseline tests (one hour and h hours): the sample's volatility features and
a start 75 days in, so that the 60-day fits have history before it."""

from __future__ import annotations

import pandas as pd
import pytest

from make_us_rich.preprocessing.volatility import volatility_features


@pytest.fixture(scope="module")
def vol(sample_btcusdt):
    return volatility_features(sample_btcusdt)


@pytest.fixture(scope="module")
def start(vol):
    return vol.index[0] + pd.Timedelta(days=75)
