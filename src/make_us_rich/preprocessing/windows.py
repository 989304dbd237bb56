"""Stage 4 (``sequences_stage``) of the quantile forecaster: raw feature windows and their targets, and the
stationary transform of a window (no TensorFlow: the data stages, the evaluation and the
serving side all use it; the model runs the same transform as a Keras layer, tested equal).

A window holds :data:`QUANTILE_FEATURES` (the features stage's columns) of ``L`` consecutive
candles, oldest first; its target is the log return of the candle after it. Windows across a
gap in the candles, or over the volatility features' warm-up (NaN), are left out.

A source may lack an input (:data:`OPTIONAL_INPUTS`: ``trades_ratio`` of an OHLCV-only pair,
NaN in every row of its feature table). Such a column is *unavailable*: its windows hold the
neutral :data:`NEUTRAL_FILL` there (never NaN), and a model that reads it cannot serve that
symbol (:func:`resolve_inputs` drops it from the inputs of a model trained on such symbols).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from make_us_rich.errors import ConfigError, InsufficientHistoryError
from make_us_rich.preprocessing.features import FEATURE_COLUMNS
from make_us_rich.preprocessing.sequences import contiguous_windows, create_sequences
from make_us_rich.preprocessing.volatility import NORM_VOL, VOLATILITY_FEATURES

#: Columns of a served window: the calendar/price features, then the volatility features.
QUANTILE_FEATURES: tuple[str, ...] = FEATURE_COLUMNS + VOLATILITY_FEATURES
TARGET = "log_return"
#: How each input the LSTM reads is made stationary (``v`` = ``norm_vol`` at the last step):
#: ``log_vol``: log(x / v), volatilities; ``vol``: x / v, signed returns; ``log``: log(x), ratios.
INPUT_KINDS: dict[str, str] = {
    "range_vol_6h": "log_vol",
    "range_vol_24h": "log_vol",
    "range_vol_7d": "log_vol",
    "range_vol_30d": "log_vol",
    "bar_range": "log_vol",
    "hour_vol": "log_vol",
    "log_return": "vol",
    "return_24h": "vol",
    "volume_ratio": "log",
    "trades_ratio": "log",
}
KIND_ORDER = ("log_vol", "vol", "log")
#: days before a window's first row that make every feature as complete as in training (the
#: longest rolling windows, range volatility and hour-of-day volatility, span 30 days)
HISTORY_DAYS = 32
#: the candle interval the volatility features are built for
STEP = pd.Timedelta(hours=1)
#: floor before a log (a candle with high == low, an hour without trades)
LOG_FLOOR = 1e-2
#: inputs a source may lack as a whole (OHLCV-only pairs report no trade counts)
OPTIONAL_INPUTS: tuple[str, ...] = ("trades_ratio",)
#: what an unavailable ratio column holds in a window: a ratio of 1 (its log is 0)
NEUTRAL_FILL = 1.0


def unavailable_inputs(features: pd.DataFrame) -> tuple[str, ...]:
    """The :data:`OPTIONAL_INPUTS` this feature table lacks (NaN in every row)."""
    return tuple(c for c in OPTIONAL_INPUTS if c in features and not features[c].notna().any())


def resolve_inputs(inputs: tuple[str, ...], unavailable) -> tuple[str, ...]:
    """The model inputs of ``inputs`` that every training symbol has (``unavailable``: the
    inputs some symbol lacks); raises when none is left."""
    missing = set(unavailable)
    used = tuple(c for c in inputs if c not in missing)
    if not used:
        raise ConfigError(f"every model input {list(inputs)} is unavailable in some symbol's data; "
                          f"choose inputs among {[c for c in INPUT_KINDS if c not in missing]}")
    return used


def check_inputs_available(inputs, unavailable, symbol: str = "this symbol") -> None:
    """A clear error when a model reads an input the symbol's source lacks."""
    lacking = sorted(set(inputs) & set(unavailable))
    if lacking:
        raise ConfigError(
            f"the model reads {lacking}, which the data of {symbol} lacks (a source without trade "
            "counts); use a model trained without them (e.g. `mkrich train --inputs` without "
            "trades_ratio, or a universal model trained with such a symbol)"
        )


def window_frame(features: pd.DataFrame) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """:data:`QUANTILE_FEATURES` of ``features`` with unavailable inputs set to
    :data:`NEUTRAL_FILL`, and the names of those inputs."""
    missing = [c for c in QUANTILE_FEATURES if c not in features]
    if missing:
        raise ConfigError(
            f"features lack column(s) {missing}; build them with the features stage "
            "(extract_features_from_dataset + add_volatility_features)"
        )
    unavailable = unavailable_inputs(features)
    frame = features[list(QUANTILE_FEATURES)]
    if unavailable:
        frame = frame.assign(**{c: NEUTRAL_FILL for c in unavailable})
    return frame, unavailable


@dataclass
class QuantileWindows:
    """Raw windows and their next-candle log-return targets (valid windows only)."""

    X: np.ndarray  # float32 [n, L, F], raw features
    y: np.ndarray  # float64 [n], log return of the candle after the window
    index: pd.DatetimeIndex  # open time of the forecast candle (the target row)
    unavailable: tuple[str, ...] = ()  # inputs the source lacks (NEUTRAL_FILL in X)

    @property
    def norm_vol(self) -> np.ndarray:
        return self.X[:, -1, QUANTILE_FEATURES.index(NORM_VOL)].astype(np.float64)

    def since(self, start) -> QuantileWindows:
        keep = self.index >= pd.Timestamp(start)
        return QuantileWindows(self.X[keep], self.y[keep], self.index[keep], self.unavailable)

    def until(self, end) -> QuantileWindows:
        keep = self.index <= pd.Timestamp(end)
        return QuantileWindows(self.X[keep], self.y[keep], self.index[keep], self.unavailable)


def make_quantile_windows(features: pd.DataFrame, sequence_length: int) -> QuantileWindows:
    """Windows of :data:`QUANTILE_FEATURES` whose rows and target are consecutive candles, hold
    no NaN (volatility warm-up, gaps) and have a finite target. The last window (no target yet)
    is not included; serve it with ``features.iloc[-L:]``. Unavailable inputs hold
    :data:`NEUTRAL_FILL` (:func:`window_frame`)."""
    frame, unavailable = window_frame(features)
    X, _ = create_sequences(frame, TARGET, sequence_length)
    keep = valid_window_ends(frame, sequence_length) - sequence_length
    return QuantileWindows(
        X=np.ascontiguousarray(X[keep]),
        y=frame[TARGET].to_numpy(np.float64)[keep + sequence_length],
        index=frame.index[keep + sequence_length],
        unavailable=unavailable,
    )


def valid_window_ends(frame: pd.DataFrame, sequence_length: int) -> np.ndarray:
    """Row positions ``t`` of the forecast candles whose window ``frame[t - L : t]`` and target
    are consecutive candles, hold no NaN and have a finite target (``frame``: from
    :func:`window_frame`)."""
    values = frame.to_numpy(np.float64)
    n = len(values) - sequence_length
    if n < 1:
        raise InsufficientHistoryError(
            f"{len(values)} row(s) make no window of sequence_length={sequence_length}: need at "
            f"least {sequence_length + 1} rows (window + the next row as its target)"
        )
    y = values[sequence_length:, list(frame.columns).index(TARGET)]
    ok = contiguous_windows(frame.index, sequence_length, STEP) & np.isfinite(y)
    bad_row = ~np.isfinite(values).all(axis=1)
    bad = np.concatenate([[0], np.cumsum(bad_row)])
    ok &= (bad[sequence_length : sequence_length + n] - bad[:n]) == 0
    if not ok.any():
        raise InsufficientHistoryError(
            f"no complete {sequence_length} h window with a next candle in {len(frame)} rows "
            "(the volatility features need about 30 days of warm-up); load more history"
        )
    return np.flatnonzero(ok) + sequence_length


def period_windows(features: pd.DataFrame, sequence_length: int, start=None, end=None) -> QuantileWindows:
    """:func:`make_quantile_windows` of the forecasts whose target lies in ``[start, end]`` (both
    optional): what an evaluation scores, with the history before ``start`` as their input."""
    windows = make_quantile_windows(features, sequence_length)
    if start is not None:
        windows = windows.since(start)
    if end is not None:
        windows = windows.until(end)
    if len(windows.y) == 0:
        raise InsufficientHistoryError(
            f"no complete window to forecast between {start} and {end}; choose a longer period "
            "or load more history before it (windows skip gaps and the volatility warm-up)"
        )
    return windows


def input_groups(inputs: tuple[str, ...]) -> dict[str, list[int]]:
    """Window columns of each kind of stationary input, in :data:`KIND_ORDER`."""
    unknown = sorted(set(inputs) - set(INPUT_KINDS))
    if unknown:
        raise ConfigError(f"unknown model input(s) {unknown}; choose from {list(INPUT_KINDS)}")
    return {kind: [QUANTILE_FEATURES.index(c) for c in inputs if INPUT_KINDS[c] == kind] for kind in KIND_ORDER}


def stationary_inputs(X: np.ndarray, inputs: tuple[str, ...]) -> np.ndarray:
    """Raw windows ``[n, L, F]`` -> the LSTM's inputs ``[n, L, len(inputs)]`` (grouped by kind),
    divided by the last step's ``norm_vol``: what the model's first layer computes."""
    v = X[:, -1:, QUANTILE_FEATURES.index(NORM_VOL)][..., None].astype(np.float64)
    parts = []
    for kind, idx in input_groups(tuple(inputs)).items():
        if not idx:
            continue
        cols = X[:, :, idx].astype(np.float64)
        if kind == "log_vol":
            parts.append(np.log(np.maximum(cols / v, LOG_FLOOR)))
        elif kind == "vol":
            parts.append(cols / v)
        else:
            parts.append(np.log(np.maximum(cols, LOG_FLOOR)))
    return np.concatenate(parts, axis=2)


def fit_input_scaler(X: np.ndarray, inputs: tuple[str, ...]):
    """MinMax(-1, 1) on the stationary inputs of raw windows ``X`` (the train windows only)."""
    from sklearn.preprocessing import MinMaxScaler

    from make_us_rich.preprocessing.scaling import FEATURE_RANGE

    t = stationary_inputs(X, tuple(inputs))
    return MinMaxScaler(feature_range=FEATURE_RANGE).fit(t.reshape(-1, t.shape[2]))
