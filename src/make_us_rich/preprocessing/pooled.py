"""The windows of several symbols for one universal model (issue 21), by index: no
``[n, L, F]`` array of all windows is ever built.

Each symbol's feature table is kept once as float32 rows (:func:`~make_us_rich.preprocessing.
windows.window_frame`: unavailable inputs hold a neutral value, never NaN); a window is the
position of its forecast candle in the pooled rows, and a batch of windows is gathered from the
rows when the trainer asks for it (:meth:`PooledWindows.X`). At 100 symbols x a year of hours
that is ~75 MB of rows and 8 bytes per window, instead of ~3.5 GB of windows at L = 48.

Every window is normalized by its own symbol's trailing volatility (``norm_vol`` of its last
row), in the model's first layer, exactly as for one symbol; the MinMax scaler of the stationary
inputs is fit from rolling minima and maxima of the rows (:func:`fit_pooled_scaler`), the same
numbers :func:`~make_us_rich.preprocessing.windows.fit_input_scaler` gets from materialized
windows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from make_us_rich.errors import InsufficientHistoryError
from make_us_rich.preprocessing.split import holdout_size
from make_us_rich.preprocessing.volatility import NORM_VOL
from make_us_rich.preprocessing.windows import (
    KIND_ORDER,
    LOG_FLOOR,
    QUANTILE_FEATURES,
    TARGET,
    input_groups,
    valid_window_ends,
    window_frame,
)

_NORM = QUANTILE_FEATURES.index(NORM_VOL)


@dataclass
class PooledWindows:
    """Windows of several symbols over their pooled rows (a selection shares the rows)."""

    values: np.ndarray  # float32 [rows of every symbol, F]
    ends: np.ndarray  # int64 [n]: pooled row of each window's forecast candle
    y: np.ndarray  # float64 [n]: its log return
    time: np.ndarray  # int64 [n]: its open time, ns since the epoch (UTC)
    symbol: np.ndarray  # int32 [n]: index into ``symbols``
    symbols: tuple[str, ...]
    sequence_length: int
    unavailable: dict[str, tuple[str, ...]] = field(default_factory=dict)  # per symbol

    def __len__(self) -> int:
        return len(self.ends)

    def X(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Raw windows float32 ``[k, L, F]`` of the selected windows, gathered from the rows."""
        ends = self.ends[rows]
        return self.values[ends[:, None] + np.arange(-self.sequence_length, 0)[None, :]]

    @property
    def norm_vol(self) -> np.ndarray:
        """``norm_vol`` of each window's last row (the window's scale), float64."""
        return self.values[self.ends - 1, _NORM].astype(np.float64)

    @property
    def z(self) -> np.ndarray:
        """The normalized targets ``y / norm_vol``: what the model's core is trained on."""
        return self.y / self.norm_vol

    @property
    def index(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(pd.to_datetime(self.time, utc=True), name="timestamp")

    def take(self, keep: np.ndarray) -> PooledWindows:
        """The windows selected by a boolean mask or positions (same rows)."""
        return PooledWindows(self.values, self.ends[keep], self.y[keep], self.time[keep], self.symbol[keep],
                             self.symbols, self.sequence_length, self.unavailable)

    def of(self, symbol: str) -> PooledWindows:
        return self.take(self.symbol == self.symbols.index(symbol))

    def counts(self) -> dict[str, int]:
        n = np.bincount(self.symbol, minlength=len(self.symbols))
        return {s: int(c) for s, c in zip(self.symbols, n, strict=True)}


def pool_windows(tables: Mapping[str, pd.DataFrame], sequence_length: int) -> PooledWindows:
    """Every valid window of every symbol's feature table (features stage output), by index."""
    values, ends, ys, times, sym, unavailable = [], [], [], [], [], {}
    offset = 0
    for i, (name, features) in enumerate(tables.items()):
        frame, lacking = window_frame(features)
        try:
            pos = valid_window_ends(frame, sequence_length)
        except InsufficientHistoryError as exc:
            raise InsufficientHistoryError(f"{name}: {exc}") from None
        values.append(frame.to_numpy(np.float32))
        ends.append(pos + offset)
        ys.append(frame[TARGET].to_numpy(np.float64)[pos])
        times.append(frame.index.asi8[pos])
        sym.append(np.full(len(pos), i, dtype=np.int32))
        unavailable[name] = lacking
        offset += len(frame)
    if not values:
        raise InsufficientHistoryError("no symbol to make windows of")
    return PooledWindows(
        np.concatenate(values), np.concatenate(ends), np.concatenate(ys), np.concatenate(times),
        np.concatenate(sym), tuple(tables), sequence_length, unavailable,
    )


def split_pooled(windows: PooledWindows, val_size: float, test_start: Mapping[str, pd.Timestamp | None]):
    """``(train, val, test)``: per symbol, the windows forecasting from ``test_start[symbol]`` on
    are its test (none when ``None``); of the others, the latest ``val_size`` are for early
    stopping - as the single-symbol stages split."""
    train = np.zeros(len(windows), dtype=bool)
    val = np.zeros(len(windows), dtype=bool)
    test = np.zeros(len(windows), dtype=bool)
    for i, name in enumerate(windows.symbols):
        mine = windows.symbol == i
        start = test_start.get(name)
        cut = pd.Timestamp(start).value if start is not None else np.iinfo(np.int64).max
        test |= mine & (windows.time >= cut)
        fit = np.flatnonzero(mine & (windows.time < cut))
        n_val = holdout_size(len(fit), val_size) if len(fit) else 0
        if len(fit) - n_val < 1:
            raise InsufficientHistoryError(
                f"{name}: {len(fit)} windows before its test period, too few to train on; load more history"
            )
        train[fit[: len(fit) - n_val]] = True
        val[fit[len(fit) - n_val :]] = True
    return windows.take(train), windows.take(val), windows.take(test)


def _window_extremes(values: np.ndarray, ends: np.ndarray, L: int) -> tuple[np.ndarray, np.ndarray]:
    """Per window (forecast row ``e``, rows ``e - L .. e - 1``), the min and max of each column."""
    view = sliding_window_view(values, L, axis=0)  # [rows - L + 1, F, L], no copy
    starts = ends - L
    lo = np.empty((len(ends), values.shape[1]))
    hi = np.empty_like(lo)
    step = 8192  # bounded temporaries
    for a in range(0, len(ends), step):
        w = view[starts[a : a + step]]
        lo[a : a + step], hi[a : a + step] = w.min(axis=2), w.max(axis=2)
    return lo, hi


def fit_pooled_scaler(windows: PooledWindows, inputs: tuple[str, ...]):
    """MinMax(-1, 1) of the stationary inputs over ``windows`` (the train windows), from each
    window's column minima and maxima: every stationary transform is monotone in its column,
    so its extremes over a window are the transform of the column's extremes."""
    from sklearn.preprocessing import MinMaxScaler

    from make_us_rich.preprocessing.scaling import FEATURE_RANGE

    if len(windows) == 0:
        raise InsufficientHistoryError("no train window to fit the input scaler on")
    groups = input_groups(tuple(inputs))
    cols = [c for kind in KIND_ORDER for c in groups[kind]]
    kinds = [kind for kind in KIND_ORDER for _ in groups[kind]]
    lo_raw, hi_raw = _window_extremes(windows.values[:, cols].astype(np.float64), windows.ends,
                                      windows.sequence_length)
    v = windows.norm_vol[:, None]
    lo, hi = np.empty_like(lo_raw), np.empty_like(hi_raw)
    for j, kind in enumerate(kinds):
        if kind == "log_vol":
            lo[:, j] = np.log(np.maximum(lo_raw[:, j] / v[:, 0], LOG_FLOOR))
            hi[:, j] = np.log(np.maximum(hi_raw[:, j] / v[:, 0], LOG_FLOOR))
        elif kind == "vol":
            lo[:, j], hi[:, j] = lo_raw[:, j] / v[:, 0], hi_raw[:, j] / v[:, 0]
        else:
            lo[:, j] = np.log(np.maximum(lo_raw[:, j], LOG_FLOOR))
            hi[:, j] = np.log(np.maximum(hi_raw[:, j], LOG_FLOOR))
    scaler = MinMaxScaler(feature_range=FEATURE_RANGE).fit(np.stack([lo.min(axis=0), hi.max(axis=0)]))
    scaler.n_samples_seen_ = len(windows) * windows.sequence_length
    return scaler


def batch_order(n: int, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Positions of each batch: shuffled with ``rng``, in order without."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[a : a + batch_size] for a in range(0, n, batch_size)]
