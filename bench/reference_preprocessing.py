"""The straightforward reference the benchmark compares against: a row loop (``iterrows``) for
features and one DataFrame slice per window, as preprocessing is often first written.

It computes the same thing as :func:`make_us_rich.preprocessing.preprocess` (the benchmark
checks that the outputs are equal), only slowly."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.preprocessing import MinMaxScaler


def reference_preprocess(klines: pd.DataFrame, sequence_length: int, test_size=0.1, val_size=0.2):
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
    features = pd.DataFrame(rows, index=pd.DatetimeIndex(klines["timestamp"])).astype("float64")
    n_test = math.ceil(len(features) * test_size)
    train, test = features.iloc[: len(features) - n_test], features.iloc[len(features) - n_test :]
    scaler = MinMaxScaler(feature_range=(-1, 1)).fit(train)
    train_s = pd.DataFrame(scaler.transform(train), index=train.index, columns=train.columns)
    test_s = pd.DataFrame(scaler.transform(test), index=test.index, columns=test.columns)

    def windows(frame: pd.DataFrame):
        X, y = [], []
        for i in range(len(frame) - sequence_length):
            X.append(frame.iloc[i : i + sequence_length].to_numpy(dtype=np.float32))
            y.append(np.float32(frame.iloc[i + sequence_length]["close"]))
        return np.stack(X), np.array(y, dtype=np.float32)

    X, y = windows(train_s)
    n_val = math.ceil(len(X) * val_size)
    X_test, y_test = windows(test_s)
    return X[:-n_val], y[:-n_val], X[-n_val:], y[-n_val:], X_test, y_test
