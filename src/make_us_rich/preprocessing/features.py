"""Stage 2: features from klines, vectorized (no row loops).

The same function builds features for training and for serving (``mkrich predict``), so a
served model always sees what it was trained on.
"""

from __future__ import annotations

import pandas as pd

from make_us_rich.errors import DataValidationError

PRICE_FEATURES: tuple[str, ...] = ("open", "high", "low", "close", "close_change")
#: Calendar features of the candle's open time (UTC). ``hour`` is added to the classic four
#: because the loop runs on hourly candles, where the time of day carries the daily cycle.
CALENDAR_FEATURES: tuple[str, ...] = ("hour", "day_of_week", "day_of_month", "week_of_year", "month")
#: Feature columns, in the order the model sees them.
FEATURE_COLUMNS: tuple[str, ...] = PRICE_FEATURES + CALENDAR_FEATURES


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
    ts = pd.DatetimeIndex(pd.to_datetime(klines["timestamp"], utc=True), name="timestamp")
    prices = klines[["open", "high", "low", "close"]].to_numpy(dtype="float64")
    features = pd.DataFrame(
        {
            "open": prices[:, 0],
            "high": prices[:, 1],
            "low": prices[:, 2],
            "close": prices[:, 3],
            "close_change": prices[:, 3] - prices[:, 0],
            "hour": ts.hour,
            "day_of_week": ts.dayofweek,
            "day_of_month": ts.day,
            "week_of_year": ts.isocalendar().week.to_numpy(),
            "month": ts.month,
        },
        index=ts,
    )
    return features.astype("float64")[list(FEATURE_COLUMNS)]
