"""Stage 2: features from klines, vectorized (no row loops).

:func:`build_features` is the one feature builder: training (the features stage), evaluation
(``mkrich evaluate``) and prediction (``mkrich predict``) all call it, so what is served cannot
drift from what was trained.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from make_us_rich.errors import DataValidationError

PRICE_FEATURES: tuple[str, ...] = ("open", "high", "low", "close", "close_change")
#: Calendar features of the candle's open time (UTC). ``hour`` is added to the classic four
#: because the loop runs on hourly candles, where the time of day carries the daily cycle.
CALENDAR_FEATURES: tuple[str, ...] = ("hour", "day_of_week", "day_of_month", "week_of_year", "month")
#: Feature columns, in the order the model sees them.
FEATURE_COLUMNS: tuple[str, ...] = PRICE_FEATURES + CALENDAR_FEATURES

_NS_PER_HOUR = 3_600 * 10**9
_NS_PER_DAY = 24 * _NS_PER_HOUR


def calendar_features(timestamps: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """UTC open times -> float64 ``[n, 5]``: hour, day_of_week (Monday 0), day_of_month,
    ISO week_of_year, month; computed on the integer epoch, without pandas' per-field accessors."""
    ns = pd.DatetimeIndex(timestamps).tz_convert("UTC").asi8
    days = ns // _NS_PER_DAY  # floor division: also right before 1970
    hour = (ns // _NS_PER_HOUR) % 24
    dow = (days + 3) % 7  # 1970-01-01 was a Thursday
    d = days.astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    month = months.astype(np.int64) % 12 + 1
    dom = (d - months.astype("datetime64[D]")).astype(np.int64) + 1
    # ISO week: the week's Thursday decides the year; weeks count from that year's first Thursday.
    thursday = (days - dow + 3).astype("datetime64[D]")
    year_start = thursday.astype("datetime64[Y]").astype("datetime64[D]")
    week = (thursday - year_start).astype(np.int64) // 7 + 1
    return np.column_stack([hour, dow, dom, week, month]).astype(np.float64)


def extract_features_from_dataset(klines: pd.DataFrame) -> pd.DataFrame:
    """Klines -> float64 features :data:`FEATURE_COLUMNS`, indexed by open time (UTC).

    ``close_change = close - open``; calendar features come from ``timestamp``:
    hour 0-23, day_of_week 0 (Monday) - 6, day_of_month 1-31, ISO week_of_year 1-53, month 1-12.
    """
    missing = [c for c in ("timestamp", "open", "high", "low", "close") if c not in klines]
    if missing:
        raise DataValidationError(
            f"cannot extract features: klines lack column(s) {missing}; load them with "
            "make_us_rich.data.load_klines"
        )
    ts = klines["timestamp"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):  # parse only when not typed already
        ts = pd.to_datetime(ts, utc=True)
    ts = pd.DatetimeIndex(ts, name="timestamp").tz_convert("UTC")
    values = np.empty((len(klines), len(FEATURE_COLUMNS)), dtype=np.float64)
    values[:, :4] = klines[["open", "high", "low", "close"]].to_numpy(dtype=np.float64)
    values[:, 4] = values[:, 3] - values[:, 0]
    values[:, 5:] = calendar_features(ts)
    return pd.DataFrame(values, index=ts, columns=list(FEATURE_COLUMNS))


def build_features(klines: pd.DataFrame) -> pd.DataFrame:
    """Klines -> the model's whole feature table: :data:`FEATURE_COLUMNS` then the causal
    volatility features (:mod:`make_us_rich.preprocessing.volatility`), indexed by open time."""
    from make_us_rich.preprocessing.volatility import add_volatility_features

    return add_volatility_features(extract_features_from_dataset(klines), klines)
