"""The straightforward reference the benchmark compares against: a row loop (``iterrows``) for
the price and calendar features and one DataFrame slice per window, with its checks (consecutive
hours, no NaN, a finite target) made per window, as preprocessing is often first written.

It computes the same thing as the features and windows stages (the benchmark checks that the
outputs are equal), only slowly."""

from __future__ import annotations

import numpy as np
import pandas as pd


def reference_price_calendar(klines: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in klines.iterrows():
        ts = r["timestamp"]
        rows.append(
            {
                "open": r["open"],
                "high": r["high"],
                "low": r["low"],
                "close": r["close"],
                "close_change": r["close"] - r["open"],
                "hour": ts.hour,
                "day_of_week": ts.dayofweek,
                "day_of_month": ts.day,
                "week_of_year": ts.isocalendar()[1],
                "month": ts.month,
            }
        )
    return pd.DataFrame(rows, index=pd.DatetimeIndex(klines["timestamp"])).astype("float64")


def reference_windows(frame: pd.DataFrame, sequence_length: int, target: str):
    hour = pd.Timedelta(hours=1)
    X, y = [], []
    for i in range(len(frame) - sequence_length):
        rows = frame.iloc[i : i + sequence_length + 1]
        if (rows.index[1:] - rows.index[:-1] != hour).any():
            continue
        window = rows.iloc[:sequence_length].to_numpy(dtype=np.float64)
        label = rows[target].iloc[-1]
        if not np.isfinite(window).all() or not np.isfinite(label):
            continue
        X.append(window.astype(np.float32))
        y.append(label)
    return np.stack(X), np.array(y, dtype=np.float64)
