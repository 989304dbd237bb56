"""Stage 4: sliding windows -> next-step target, as zero-copy strided views.

``X[i] = data[i : i + L]`` and ``y[i] = data[i + L, target]``: a window never contains the row of
its own label (no look-ahead). Windows are read-only views of one float32 copy of the data, so
making them costs O(rows x features) memory whatever ``sequence_length`` is.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from make_us_rich.errors import ConfigError, InsufficientHistoryError


def create_sequences(
    data: pd.DataFrame | np.ndarray,
    target_column: str | int,
    sequence_length: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Windows ``X`` float32 ``[n, sequence_length, n_features]`` and targets ``y`` float32
    ``[n]`` with ``n = len(data) - sequence_length``.

    ``target_column`` is a column name (DataFrame) or index (array). ``X`` is a read-only view.
    """
    if not isinstance(sequence_length, int | np.integer) or sequence_length < 1:
        raise ConfigError(f"sequence_length must be a positive integer, got {sequence_length!r}")
    if isinstance(data, pd.DataFrame):
        if target_column not in data.columns:
            raise ConfigError(
                f"target column {target_column!r} is not among {list(data.columns)}"
            )
        target_idx = data.columns.get_loc(target_column)
        values = data.to_numpy(dtype=np.float32)
    else:
        values = np.asarray(data, dtype=np.float32)
        if values.ndim != 2:
            raise ConfigError(f"data must be 2-D [rows, features], got shape {values.shape}")
        if not isinstance(target_column, int | np.integer):
            raise ConfigError("with an array, target_column must be a column index")
        target_idx = int(target_column)
    n = len(values) - sequence_length
    if n < 1:
        raise InsufficientHistoryError(
            f"{len(values)} row(s) make no window of sequence_length={sequence_length}: need at "
            f"least {sequence_length + 1} rows (window + the next row as its target)"
        )
    values = np.ascontiguousarray(values)
    # [rows - L + 1, 1, L, F] -> drop the window that has no next row as target.
    windows = sliding_window_view(values, (sequence_length, values.shape[1]))[:n, 0]
    targets = values[sequence_length:, target_idx]
    return windows, targets


def contiguous_windows(index: pd.DatetimeIndex, sequence_length: int, step: pd.Timedelta) -> np.ndarray:
    """Boolean ``[n]`` aligned with :func:`create_sequences`' windows: True where the window's
    rows *and* its target row are consecutive candles (``step`` apart).

    Validation keeps small gaps (outages) as gaps; a window across one would learn to predict
    several hours ahead as if it were the next hour. Such windows are masked out (weight 0 in
    training, left out of evaluation) rather than copied away, so the windows stay views.
    """
    ns = pd.DatetimeIndex(index).asi8
    n = len(ns) - sequence_length
    if n < 1:
        return np.zeros(0, dtype=bool)
    broken = np.diff(ns) != step.value  # broken[j]: row j -> j+1 is not one step
    cum = np.concatenate([[0], np.cumsum(broken)])
    # window i uses rows i .. i+L (target included): the steps i .. i+L-1
    return (cum[sequence_length : sequence_length + n] - cum[:n]) == 0
