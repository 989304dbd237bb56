"""Honest baselines for the quantile forecast of the next-hour log return.

Walk-forward: the forecast for the candle opening at ``T`` (its ``log_return`` is the target)
uses rows before ``T`` only; models refit monthly use the months before. Every baseline returns
the same shape: a DataFrame indexed by the forecast candle's open time, columns
:data:`~make_us_rich.scoring.QUANTILE_COLUMNS`, in log-return units.

Input ``vol`` is :func:`make_us_rich.preprocessing.volatility.volatility_features` output (or a
features frame that holds its columns) covering the history the baselines need before ``start``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import signal, stats

from make_us_rich.errors import ConfigError, InsufficientHistoryError
from make_us_rich.scoring import QUANTILE_COLUMNS, QUANTILES

EMPIRICAL_WINDOW = 720
FIT_WINDOW = pd.Timedelta(days=365)
MIN_FIT_ROWS = 500
#: returns in per mille: the scale arch's optimizer is comfortable with
GARCH_SCALE = 1000.0
#: floor for log ranges (a candle with high == low has no log)
RANGE_FLOOR = 1e-5
#: HAR regressors: the last candle's range, the range volatility over a day, week and month,
#: and the hour-of-day volatility of the next candle.
HAR_REGRESSORS: tuple[str, ...] = ("bar_range", "range_vol_24h", "range_vol_7d", "range_vol_30d", "hour_vol")


def forecast_index(vol: pd.DataFrame, start, end) -> pd.DatetimeIndex:
    """The forecast candles of ``vol`` within ``[start, end]`` (its first/last when None)."""
    if "log_return" not in vol:
        raise ConfigError("baselines need the volatility features (volatility_features(klines))")
    index = vol.index
    lo = pd.Timestamp(start) if start is not None else index[0]
    hi = pd.Timestamp(end) if end is not None else index[-1]
    out = index[(index >= lo) & (index <= hi)]
    if len(out) == 0:
        raise ConfigError(f"no candles between {lo} and {hi} to forecast")
    return out


def _frame(values: np.ndarray, index: pd.DatetimeIndex) -> pd.DataFrame:
    return pd.DataFrame(values, index=index, columns=list(QUANTILE_COLUMNS))


def persistence(vol: pd.DataFrame, start=None, end=None) -> pd.DataFrame:
    """The point forecast "next close = last close": every quantile is a zero return."""
    index = forecast_index(vol, start, end)
    return _frame(np.zeros((len(index), len(QUANTILES))), index)


def empirical(vol: pd.DataFrame, start=None, end=None, window: int = EMPIRICAL_WINDOW) -> pd.DataFrame:
    """Baseline A: empirical quantiles of the last ``window`` hourly returns before ``T``."""
    index = forecast_index(vol, start, end)
    r = vol["log_return"]
    rolling = r.rolling(f"{window}h", min_periods=window // 2)
    q = np.column_stack([rolling.quantile(t).shift(1).reindex(index).to_numpy() for t in QUANTILES])
    return _frame(q, index)


def months(index: pd.DatetimeIndex) -> Iterator[pd.DatetimeIndex]:
    """Forecast candles grouped by calendar month (one refit each)."""
    month = index.tz_localize(None).to_period("M") if index.tz is not None else index.to_period("M")
    for period in pd.unique(month):
        yield index[month == period]


def fit_history(vol: pd.DataFrame, t0: pd.Timestamp, fit_window: pd.Timedelta) -> pd.DataFrame:
    """The rows ``[t0 - fit_window, t0)`` a refit at ``t0`` learns from, or a clear error."""
    history = vol[(vol.index >= t0 - fit_window) & (vol.index < t0)]
    if history["log_return"].notna().sum() < MIN_FIT_ROWS:
        raise InsufficientHistoryError(
            f"a baseline refit at {t0} has {history['log_return'].notna().sum()} returns "
            f"before it (need {MIN_FIT_ROWS}); load more history before the forecast period"
        )
    return history


def walk_forward(
    vol: pd.DataFrame,
    start,
    end,
    fit_window: pd.Timedelta,
    fit_predict: Callable[[pd.DataFrame, pd.DatetimeIndex, pd.DataFrame], np.ndarray],
) -> pd.DataFrame:
    """Refit at each month's first forecast candle ``T0`` on ``[T0 - fit_window, T0)``, then
    ``fit_predict(rows up to the month's last candle, the month's candles, fit rows)``."""
    index = forecast_index(vol, start, end)
    out = np.full((len(index), len(QUANTILES)), np.nan)
    pos = 0
    for rows in months(index):
        history = fit_history(vol, rows[0], fit_window)
        out[pos : pos + len(rows)] = fit_predict(vol[vol.index <= rows[-1]], rows, history)
        pos += len(rows)
    return _frame(out, index)


@dataclass(frozen=True)
class GarchFit:
    """GARCH(1,1)-t parameters in per-mille returns (:data:`GARCH_SCALE`), and the variance the
    recursion starts from (that of the fit's returns)."""

    mu: float
    omega: float
    alpha: float
    beta: float
    nu: float
    var0: float

    def sigma2(self, past: pd.DataFrame, start) -> pd.Series:
        """One-step variance of each row of ``past`` from ``start`` on: row ``i``'s is
        ``omega + alpha * shock2[i-1] + beta * sigma2[i-1]``, so only the rows before it."""
        span = past[past.index >= start]
        shock2 = np.nan_to_num((GARCH_SCALE * span["log_return"].to_numpy() - self.mu) ** 2, nan=0.0)
        drive = np.concatenate([[self.var0], self.omega + self.alpha * shock2[:-1]])
        return pd.Series(signal.lfilter([1.0], [1.0, -self.beta], drive), index=span.index)


def fit_garch(history: pd.DataFrame) -> GarchFit:
    """GARCH(1,1) with Student-t innovations (``arch``) on the returns of ``history``."""
    from arch import arch_model

    r_fit = GARCH_SCALE * history["log_return"].dropna().to_numpy()
    res = arch_model(r_fit, mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False).fit(
        disp="off"
    )
    mu, omega, alpha, beta, nu = (float(res.params[k]) for k in ("mu", "omega", "alpha[1]", "beta[1]", "nu"))
    return GarchFit(mu, omega, alpha, beta, nu, float(np.var(r_fit)))


def _garch_fit_predict(past: pd.DataFrame, rows: pd.DatetimeIndex, history: pd.DataFrame) -> np.ndarray:
    fit = fit_garch(history)
    sigma = np.sqrt(fit.sigma2(past, history.index[0]).reindex(rows).to_numpy())
    nu = fit.nu
    z = stats.t.ppf(QUANTILES, nu) * np.sqrt((nu - 2.0) / nu)  # quantiles of the unit-variance t
    return (fit.mu + sigma[:, None] * z[None, :]) / GARCH_SCALE


def garch_t(vol: pd.DataFrame, start=None, end=None, fit_window: pd.Timedelta = FIT_WINDOW) -> pd.DataFrame:
    """Baseline B: GARCH(1,1) with Student-t innovations (``arch``), refit monthly on the
    trailing ``fit_window``; the variance recursion runs hour by hour in between."""
    return walk_forward(vol, start, end, fit_window, _garch_fit_predict)


def har_design(frame: pd.DataFrame) -> np.ndarray:
    """``[1, log(max(x, RANGE_FLOOR)) for x in HAR_REGRESSORS]`` of each row of ``frame``."""
    logs = np.log(np.maximum(frame[list(HAR_REGRESSORS)].to_numpy(np.float64), RANGE_FLOOR))
    return np.column_stack([np.ones(len(frame)), logs])


@dataclass(frozen=True)
class HarFit:
    """A fitted HAR: log scale = ``coef @ [1, log(max(x, floor)) for x in HAR_REGRESSORS]``,
    quantiles = scale x ``z_quantiles`` (the returns divided by the fitted scale)."""

    coef: np.ndarray  # [1 + len(HAR_REGRESSORS)]
    z_quantiles: np.ndarray  # [len(QUANTILES)]

    def predict(self, regressors: pd.DataFrame) -> np.ndarray:
        """Regressors of the candle before each forecast -> log-return quantiles ``[n, 5]``."""
        return np.exp(har_design(regressors) @ self.coef)[:, None] * self.z_quantiles[None, :]


def fit_har(frame: pd.DataFrame | list[pd.DataFrame]) -> HarFit:
    """OLS of each candle's log range on the previous candle's log regressors, over ``frame``
    (or the rows of several symbols' frames pooled: the universal model's HAR)."""
    xs, ys, rs = [], [], []
    for part in frame if isinstance(frame, list) else [frame]:
        x = har_design(part.shift(1))
        y = np.log(np.maximum(part["bar_range"].to_numpy(np.float64), RANGE_FLOOR))
        ok = np.isfinite(x).all(axis=1) & np.isfinite(y) & part["log_return"].notna().to_numpy()
        xs.append(x[ok])
        ys.append(y[ok])
        rs.append(part["log_return"].to_numpy()[ok])
    x, y, r = np.concatenate(xs), np.concatenate(ys), np.concatenate(rs)
    if len(y) < MIN_FIT_ROWS:
        raise InsufficientHistoryError(
            f"HAR needs {MIN_FIT_ROWS} complete rows, got {len(y)}; load more history"
        )
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    z = r / np.exp(x @ coef)
    return HarFit(coef=coef, z_quantiles=np.quantile(z, QUANTILES))


def _har_fit_predict(past: pd.DataFrame, rows: pd.DatetimeIndex, history: pd.DataFrame) -> np.ndarray:
    return fit_har(history).predict(past.shift(1).reindex(rows))


def har(vol: pd.DataFrame, start=None, end=None, fit_window: pd.Timedelta = FIT_WINDOW) -> pd.DataFrame:
    """Linear HAR on log range-volatility, refit monthly: OLS of the next candle's log range on
    the log of :data:`HAR_REGRESSORS`; quantiles = predicted scale x empirical quantiles of the
    returns divided by the fitted scale over the fit window."""
    return walk_forward(vol, start, end, fit_window, _har_fit_predict)


BASELINES: dict[str, Callable[..., pd.DataFrame]] = {
    "persistence": persistence,
    "empirical": empirical,
    "garch_t": garch_t,
    "har": har,
}
