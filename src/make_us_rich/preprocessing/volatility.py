"""Causal volatility features of hourly klines, for the quantile forecaster.

What is forecastable at these horizons is the size of the next move: volatility clusters,
depends on the hour of day and rises after falls. Every feature at row ``t`` uses candles up to
``t`` only (time-based windows ending at ``t``), so a served window sees what training saw.

Columns (:data:`VOLATILITY_FEATURES`), all float64:

* ``log_return``: ``log(close_t / close_{t-1})``; NaN after a missing candle.
* ``range_vol_6h/24h/7d/30d``: Parkinson volatility of the hourly return from the high-low range,
  ``sqrt(mean(log(high/low)^2) / (4 ln 2))`` over the trailing window.
* ``bar_range``: ``log(high_t / low_t)``.
* ``hour_vol``: mean ``|log_return|`` at the hour of day of the *next* candle over the previous
  30 days (``t + 1h - 24h``, ``t + 1h - 48h``, ...): the daily cycle, known at ``t``.
* ``return_24h``: signed ``log(close_t / close_{t-24h})``.
* ``volume_ratio``, ``trades_ratio``: the candle's volume / trade count over its trailing 30-day
  mean. A source without trade counts (OHLCV only: every ``trades`` empty) gives a ``trades_ratio``
  of NaN throughout; :mod:`~make_us_rich.preprocessing.windows` treats it as unavailable.
* ``norm_vol``: RMS of ``log_return`` over the trailing 720 h, floored at :data:`MIN_NORM_VOL`;
  the scale by which the quantile model divides its inputs and targets.

Rows in the first :data:`WARMUP` of the data hold NaN where a window is less than half full.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from make_us_rich.errors import DataValidationError

VOLATILITY_FEATURES: tuple[str, ...] = (
    "log_return",
    "range_vol_6h",
    "range_vol_24h",
    "range_vol_7d",
    "range_vol_30d",
    "bar_range",
    "hour_vol",
    "return_24h",
    "volume_ratio",
    "trades_ratio",
    "norm_vol",
)
NORM_VOL = "norm_vol"
NORM_WINDOW = pd.Timedelta(hours=720)
#: A floor for ``norm_vol`` (1 bp per hour) so a frozen market never divides by zero.
MIN_NORM_VOL = 1e-4
#: History needed before every feature is defined (half of the longest window).
WARMUP = pd.Timedelta(days=15)

_RANGE_WINDOWS = {"range_vol_6h": "6h", "range_vol_24h": "24h", "range_vol_7d": "7D", "range_vol_30d": "30D"}
_HOUR_DAYS = 30
_PARKINSON = 1.0 / (4.0 * np.log(2.0))
_STEP = pd.Timedelta(hours=1)


def _rolling_mean(series: pd.Series, window: pd.Timedelta | str) -> pd.Series:
    """Mean over ``(t - window, t]``, NaN until the window is at least half full."""
    hours = int(pd.Timedelta(window) / _STEP)
    return series.rolling(window, min_periods=max(1, hours // 2)).mean()


def _hour_of_day_vol(abs_return: pd.Series) -> pd.Series:
    """Mean ``|r|`` at ``t + 1h - 24h * k`` for k = 1..30, on the full hourly grid (gaps: NaN)."""
    grid = abs_return.reindex(pd.date_range(abs_return.index[0], abs_return.index[-1], freq=_STEP))
    values = grid.to_numpy()
    lagged = np.full((_HOUR_DAYS, len(values)), np.nan)
    for k in range(1, _HOUR_DAYS + 1):
        lag = 24 * k - 1
        if lag < len(values):
            lagged[k - 1, lag:] = values[: len(values) - lag]
    count = np.isfinite(lagged).sum(axis=0)
    total = np.nansum(lagged, axis=0)
    mean = np.where(count >= _HOUR_DAYS // 2, total / np.maximum(count, 1), np.nan)
    return pd.Series(mean, index=grid.index).reindex(abs_return.index)


def volatility_features(klines: pd.DataFrame) -> pd.DataFrame:
    """Klines (as :func:`make_us_rich.data.load_klines` returns them, 1h) ->
    :data:`VOLATILITY_FEATURES`, indexed by open time (UTC) like the features stage."""
    missing = [c for c in ("timestamp", "high", "low", "close", "volume", "trades") if c not in klines]
    if missing:
        raise DataValidationError(
            f"cannot compute volatility features: klines lack column(s) {missing}; load them "
            "with make_us_rich.data.load_klines"
        )
    no_trades = bool(klines["trades"].isna().all())  # an OHLCV-only source: trades_ratio is NaN
    if klines["trades"].isna().any() and not no_trades:
        raise DataValidationError(
            "cannot compute trades_ratio: some candles have empty 'trades' values and others not; "
            "use a source that reports the trade count for every candle, or none (OHLCV only)"
        )
    ts = pd.DatetimeIndex(pd.to_datetime(klines["timestamp"], utc=True), name="timestamp")
    if not ts.is_monotonic_increasing or ts.has_duplicates:
        raise DataValidationError("klines must be sorted by timestamp without duplicates (validate_klines)")
    high, low, close = (pd.Series(klines[c].to_numpy(np.float64), index=ts) for c in ("high", "low", "close"))
    out = pd.DataFrame(index=ts)
    r = np.log(close).diff()
    r[ts.to_series().diff() != _STEP] = np.nan  # the first row and rows after a missing candle
    out["log_return"] = r
    bar_range = np.log(high / low)
    for name, window in _RANGE_WINDOWS.items():
        out[name] = np.sqrt(_PARKINSON * _rolling_mean(bar_range**2, window))
    out["bar_range"] = bar_range
    out["hour_vol"] = _hour_of_day_vol(r.abs())
    log_close = np.log(close)
    day_ago = log_close.reindex(ts - pd.Timedelta(hours=24)).to_numpy()
    out["return_24h"] = log_close.to_numpy() - day_ago
    out["trades_ratio"] = np.nan
    for name, column in (("volume_ratio", "volume"), ("trades_ratio", "trades")):
        if name == "trades_ratio" and no_trades:
            continue
        amount = pd.Series(klines[column].to_numpy(np.float64), index=ts)
        mean = _rolling_mean(amount, "30D")
        out[name] = (amount / mean.where(mean > 0)).to_numpy()
    rms = np.sqrt(_rolling_mean(r**2, NORM_WINDOW))
    out[NORM_VOL] = rms.clip(lower=MIN_NORM_VOL)
    return out[list(VOLATILITY_FEATURES)]


def add_volatility_features(features: pd.DataFrame, klines: pd.DataFrame) -> pd.DataFrame:
    """The features stage's DataFrame with :data:`VOLATILITY_FEATURES` appended (same index).

    ``features`` must come from the same klines (``extract_features_from_dataset(klines)``).
    """
    vol = volatility_features(klines)
    if not features.index.equals(vol.index):
        raise DataValidationError(
            "features and klines cover different candles; build the features from the same klines"
        )
    clash = sorted(set(features.columns) & set(VOLATILITY_FEATURES))
    if clash:
        raise DataValidationError(f"features already hold volatility column(s) {clash}")
    return pd.concat([features, vol], axis=1)
