"""Chain the preprocessing stages: klines -> features -> split -> scale -> sequences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.preprocessing import MinMaxScaler

from make_us_rich.data.klines import interval_ms
from make_us_rich.errors import InsufficientHistoryError
from make_us_rich.preprocessing.features import extract_features_from_dataset
from make_us_rich.preprocessing.scaling import scale_data
from make_us_rich.preprocessing.sequences import (
    contiguous_windows,
    create_sequences,
    split_sequences,
)
from make_us_rich.preprocessing.split import holdout_size, split_data

DEFAULT_TEST_SIZE = 0.1
DEFAULT_VAL_SIZE = 0.2


def required_rows(
    sequence_length: int,
    test_size: float = DEFAULT_TEST_SIZE,
    val_size: float = DEFAULT_VAL_SIZE,
) -> int:
    """Fewest rows from which :func:`preprocess` makes at least one test window and at least one
    train and one validation window for ``sequence_length``."""

    def enough(n: int) -> bool:
        n_test = holdout_size(n, test_size)
        train_windows = n - n_test - sequence_length
        return (
            n_test > sequence_length
            and train_windows >= 2
            and train_windows - holdout_size(train_windows, val_size) >= 1
        )

    n = sequence_length + 2
    while not enough(n):
        n += 1
    return n


def check_history(
    rows: int,
    sequence_length: int,
    test_size: float = DEFAULT_TEST_SIZE,
    val_size: float = DEFAULT_VAL_SIZE,
) -> None:
    """Raise :class:`InsufficientHistoryError`, saying how many rows are needed, when ``rows``
    candles are too few for ``sequence_length`` and the splits."""
    need = required_rows(sequence_length, test_size, val_size)
    if rows < need:
        raise InsufficientHistoryError(
            f"{rows} candle(s) are too few for sequence_length={sequence_length} with "
            f"test_size={test_size} and val_size={val_size}: need at least {need}. Fetch more "
            "history (e.g. --days) or lower sequence_length."
        )


@dataclass
class PreprocessResult:
    """Everything stages 2-5 produce. Arrays are float32; ``X_*`` are read-only views."""

    features: pd.DataFrame
    train: pd.DataFrame  # scaled
    test: pd.DataFrame  # scaled
    scaler: MinMaxScaler
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    sequence_length: int
    target_column: str = "close"
    #: per-window weights (1.0, or 0.0 for windows across a gap in the candles)
    w_train: np.ndarray | None = None
    w_val: np.ndarray | None = None
    #: test windows without a gap (the ones evaluated)
    test_mask: np.ndarray | None = None

    @property
    def feature_names(self) -> list[str]:
        return list(self.features.columns)

    def summary(self) -> dict[str, Any]:
        def span(frame: pd.DataFrame) -> list[str]:
            return [frame.index[0].isoformat(), frame.index[-1].isoformat()]

        return {
            "rows": len(self.features),
            "train_rows": len(self.train),
            "test_rows": len(self.test),
            "train_period": span(self.train),
            "test_period": span(self.test),
            "sequence_length": self.sequence_length,
            "n_features": len(self.feature_names),
            "feature_names": self.feature_names,
            "train_windows": len(self.X_train),
            "val_windows": len(self.X_val),
            "test_windows": len(self.X_test),
            "windows_across_gaps": int(
                sum(int((w == 0).sum()) for w in (self.w_train, self.w_val) if w is not None)
                + (int((~self.test_mask).sum()) if self.test_mask is not None else 0)
            ),
        }


def make_windows(
    train: pd.DataFrame,
    test: pd.DataFrame,
    sequence_length: int,
    *,
    val_size: float = DEFAULT_VAL_SIZE,
    target_column: str = "close",
    interval: str = "1h",
) -> dict[str, np.ndarray]:
    """Stage 5 on scaled train/test tables: train/validation windows (the latest are
    validation), test windows, 0/1 weights of the train/validation windows and the mask of the
    test windows (0/False: the window spans a gap in the candles)."""
    X, y = create_sequences(train, target_column, sequence_length)
    X_train, y_train, X_val, y_val = split_sequences(X, y, val_size)
    X_test, y_test = create_sequences(test, target_column, sequence_length)
    step = pd.Timedelta(milliseconds=interval_ms(interval))
    weights = contiguous_windows(train.index, sequence_length, step).astype(np.float32)
    cut = len(X_train)
    return {
        "X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val,
        "X_test": X_test, "y_test": y_test, "w_train": weights[:cut], "w_val": weights[cut:],
        "test_mask": contiguous_windows(test.index, sequence_length, step),
    }


def preprocess(
    klines: pd.DataFrame,
    sequence_length: int = 24,
    *,
    test_size: float = DEFAULT_TEST_SIZE,
    val_size: float = DEFAULT_VAL_SIZE,
    target_column: str = "close",
    interval: str = "1h",
) -> PreprocessResult:
    """Run stages 2-5 on validated klines.

    Raises :class:`InsufficientHistoryError` up front, saying how many rows are needed, when
    the history is too short for ``sequence_length`` and the splits.
    """
    check_history(len(klines), sequence_length, test_size, val_size)
    features = extract_features_from_dataset(klines)
    train_raw, test_raw = split_data(features, test_size)
    train, test, scaler = scale_data(train_raw, test_raw)
    windows = make_windows(
        train, test, sequence_length, val_size=val_size, target_column=target_column,
        interval=interval,
    )
    return PreprocessResult(
        features=features,
        train=train,
        test=test,
        scaler=scaler,
        sequence_length=sequence_length,
        target_column=target_column,
        **windows,
    )
