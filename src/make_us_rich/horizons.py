"""Forecast horizons (issue 22): the h-hour target, baselines fitted for each horizon, scores
per horizon with a bootstrap that respects overlapping targets, and purged cuts.

Conventions (every function here): a forecast is made when candle ``T - 1h`` has closed; it is
indexed by its *origin* ``T`` (the open time of the first candle not yet known, as the 1-hour
forecast is indexed today). Its h-hour target is the log return of the close from candle
``T - 1h`` to candle ``T + (h - 1)h``, the sum of the hourly ``log_return`` of rows ``T`` ..
``T + (h-1)h`` on the hourly grid (NaN if any is missing). That target is *known* when candle
``T + (h-1)h`` closes, at ``T + h``: a model or baseline fitted at a cut ``C`` may only use
targets with ``T + h <= C`` (:func:`known_before`); the others are purged. ``h = 1`` is
exactly today's target and today's baselines.

Baselines per horizon (all walk-forward, refit monthly on the trailing year where they fit):

* persistence: every quantile a zero return;
* empirical: quantiles of the last ``window`` hours' h-hour returns that were complete at ``T``
  (overlapping returns are fine for a quantile; ones still running at ``T`` are not used);
* HAR, fitted directly for h: OLS of the log realized range volatility of the next h candles
  (``sqrt(sum bar_range^2)``) on the log HAR regressors of the last known candle; quantiles =
  that scale x the empirical quantiles of the h-hour returns divided by it over the fit year;
* GARCH-t, h-step, analytic: the hourly GARCH(1,1)-t of :func:`~make_us_rich.baselines.fit_garch`;
  the h-hour variance is the sum of the expected one-step variances ``sbar2 + phi^k (s2_T -
  sbar2)``, ``phi = alpha + beta``; quantiles from a unit-variance Student t whose degrees of
  freedom match the kurtosis of a sum of h i.i.d. t innovations (``4 + (nu - 4) h``; the
  volatility clustering inside the h hours is not in the shape, only in the variance).

Bootstrap: h-hour targets of consecutive origins share h - 1 hours, so their errors are
correlated over h - 1 lags on top of the volatility clustering; the moving-block bootstrap takes
blocks of :func:`bootstrap_block` hours = ``max(168, 2h)``: the week that the 1-hour intervals
already use, and at least twice the overlap, so that each block holds the overlap's dependence
whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from make_us_rich import baselines
from make_us_rich.baselines import (
    EMPIRICAL_WINDOW,
    FIT_WINDOW,
    GARCH_SCALE,
    MIN_FIT_ROWS,
    RANGE_FLOOR,
    HarFit,
    har_design,
)
from make_us_rich.contract import HORIZON_OUTPUT_NAME
from make_us_rich.errors import ConfigError, InsufficientHistoryError
from make_us_rich.scoring import (
    INTERVALS,
    QUANTILE_COLUMNS,
    QUANTILES,
    block_bootstrap_indices,
    pinball_ratio_ci,
    score,
)

DEFAULT_HORIZONS: tuple[int, ...] = (1, 4, 24)
STEP = pd.Timedelta(hours=1)
#: the longest horizon (a month): windows and fits here are sized in hours
MAX_HORIZON = 720


def check_horizons(horizons: Iterable[int]) -> tuple[int, ...]:
    """Sorted distinct horizons in hours, or a clear error."""
    try:
        out = tuple(sorted({int(h) for h in horizons}))
    except (TypeError, ValueError):
        raise ConfigError(f"horizons must be whole hours, e.g. 1,4,24; got {horizons!r}") from None
    if not out or out[0] < 1 or out[-1] > MAX_HORIZON:
        raise ConfigError(f"horizons must be 1 to {MAX_HORIZON} hours, e.g. 1,4,24; got {horizons!r}")
    return out


def bootstrap_block(h: int) -> int:
    """Block length (hours) of the moving-block bootstrap of h-hour scores (module docstring)."""
    return max(168, 2 * int(h))


def _grid(frame: pd.DataFrame | pd.Series):
    """``frame`` on the full hourly grid from its first to its last row (gaps: NaN rows)."""
    index = frame.index
    return frame.reindex(pd.date_range(index[0], index[-1], freq=STEP, name=index.name))


def horizon_returns(vol: pd.DataFrame, h: int) -> pd.Series:
    """The h-hour target of each origin ``T`` of ``vol`` (its index): ``log(close_{T+(h-1)h} /
    close_{T-1h})``; NaN where an hour is missing or the data end before the target."""
    if "log_return" not in vol:
        raise ConfigError("horizon targets need the volatility features (volatility_features(klines))")
    r = _grid(vol["log_return"])
    total = r.rolling(int(h), min_periods=int(h)).sum().shift(-(int(h) - 1))
    return total.reindex(vol.index).rename(f"return_{h}h")


def target_time(origins: pd.DatetimeIndex, h: int) -> pd.DatetimeIndex:
    """Open time of the target candle of each origin (the ``timestamp`` of predictions_h{h}.csv)."""
    return origins + (int(h) - 1) * STEP


def known_before(origins, h: int, cut) -> np.ndarray:
    """True where the h-hour target of an origin is complete by ``cut`` (``T + h <= cut``): the
    rows a model or baseline fitted at ``cut`` may learn from. The others are purged."""
    t = pd.DatetimeIndex(origins)
    return np.asarray(t + int(h) * STEP <= pd.Timestamp(cut))


def purged_split(origins, h: int, val_start, test_start) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks ``(train, val, test)`` over ``origins`` for a model validated from ``val_start`` and
    tested from ``test_start`` at horizon ``h`` (the longest of a multi-horizon model): train
    targets complete before ``val_start``, validation origins from ``val_start`` whose targets
    are complete before ``test_start``, test origins from ``test_start``. The ``h`` hours
    before each cut are in neither side."""
    t = pd.DatetimeIndex(origins)
    val_start, test_start = pd.Timestamp(val_start), pd.Timestamp(test_start)
    if val_start > test_start:
        raise ConfigError(f"validation start {val_start} is after test start {test_start}")
    train = known_before(t, h, val_start)
    val = np.asarray(t >= val_start) & known_before(t, h, test_start)
    test = np.asarray(t >= test_start)
    return train, val, test


# --- baselines per horizon ---------------------------------------------------------------


def _frame(values: np.ndarray, index: pd.DatetimeIndex) -> pd.DataFrame:
    return pd.DataFrame(values, index=index, columns=list(QUANTILE_COLUMNS))


def persistence(vol: pd.DataFrame, h: int, start=None, end=None) -> pd.DataFrame:
    """Every quantile a zero h-hour return (the close stays the last close)."""
    return baselines.persistence(vol, start, end)


def empirical(vol: pd.DataFrame, h: int, start=None, end=None, window: int = EMPIRICAL_WINDOW) -> pd.DataFrame:
    """Quantiles of the h-hour returns of the last ``window`` origins whose target was complete
    at ``T`` (origins ``T - h - window + 1h`` .. ``T - h``); ``h = 1`` is baseline A."""
    index = baselines.forecast_index(vol, start, end)
    known = _grid(horizon_returns(vol, h)).shift(int(h))  # at T: the return of origin T - h
    rolling = known.rolling(int(window), min_periods=int(window) // 2)
    q = np.column_stack([rolling.quantile(t).reindex(index).to_numpy() for t in QUANTILES])
    return _frame(q, index)


def _har_rows(frame: pd.DataFrame, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DatetimeIndex]:
    """Design (regressors of the candle before each origin), log realized range volatility of the
    next h candles, and h-hour returns, over ``frame``'s own rows only (targets that run past its
    end are NaN: nothing after ``frame`` is read)."""
    g = _grid(frame)
    x = har_design(g.shift(1))
    ranges = np.maximum(g["bar_range"].to_numpy(np.float64), 0.0) ** 2
    total = pd.Series(ranges, index=g.index).rolling(int(h), min_periods=int(h)).sum().shift(-(int(h) - 1))
    y = np.log(np.maximum(np.sqrt(total.to_numpy()), RANGE_FLOOR))
    r = horizon_returns(g, h).to_numpy()
    return x, y, r, g.index


def fit_har_horizon(frame: pd.DataFrame | list[pd.DataFrame], h: int) -> HarFit:
    """HAR fitted directly for horizon h over ``frame`` (or several symbols' frames pooled):
    log scale = ``coef @ [1, log regressors of the last known candle]``; quantiles = scale x
    ``z_quantiles`` (h-hour returns over the fitted scale). Same form as
    :func:`~make_us_rich.baselines.fit_har`, which it equals at ``h = 1`` without gaps."""
    xs, ys, rs = [], [], []
    for part in frame if isinstance(frame, list) else [frame]:
        if len(part) == 0:  # a symbol without rows in the fit period
            continue
        x, y, r, _ = _har_rows(part, h)
        ok = np.isfinite(x).all(axis=1) & np.isfinite(y) & np.isfinite(r)
        xs.append(x[ok])
        ys.append(y[ok])
        rs.append(r[ok])
    x, y, r = (np.concatenate(a) if a else np.empty((0, 1 + len(baselines.HAR_REGRESSORS))) for a in (xs, ys, rs))
    if len(y) < MIN_FIT_ROWS:
        raise InsufficientHistoryError(f"HAR at {h} h needs {MIN_FIT_ROWS} complete rows, got {len(y)}; "
                                       "load more history")
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    z = r / np.exp(x @ coef)
    return HarFit(coef=coef, z_quantiles=np.quantile(z, QUANTILES))


def har(vol: pd.DataFrame, h: int, start=None, end=None, fit_window: pd.Timedelta = FIT_WINDOW) -> pd.DataFrame:
    """HAR fitted directly for h, refit monthly on the trailing ``fit_window`` (targets that end
    after the refit are purged: the fit sees only rows before it)."""

    def fit_predict(past, rows, history):
        return fit_har_horizon(history, h).predict(_grid(past).shift(1).reindex(rows))

    return baselines.walk_forward(vol, start, end, fit_window, fit_predict)


def garch_t_quantiles(fit: baselines.GarchFit, sigma2_next: np.ndarray, h: int) -> np.ndarray:
    """Log-return quantiles ``[n, 5]`` of the h-hour return from the one-step variances
    ``sigma2_next`` (per-mille units) of the first candle of each origin (module docstring)."""
    h = int(h)
    phi = fit.alpha + fit.beta
    if phi < 1.0 - 1e-9:
        sbar2 = fit.omega / (1.0 - phi)
        total = h * sbar2 + (sigma2_next - sbar2) * (1.0 - phi**h) / (1.0 - phi)
    else:  # integrated: the variance stays where it is
        total = h * sigma2_next
    nu = fit.nu if fit.nu <= 4.0 else 4.0 + (fit.nu - 4.0) * h
    z = stats.t.ppf(QUANTILES, nu) * np.sqrt((nu - 2.0) / nu)
    return (h * fit.mu + np.sqrt(np.maximum(total, 0.0))[:, None] * z[None, :]) / GARCH_SCALE


def garch_t_horizons(vol: pd.DataFrame, horizons: Iterable[int], start=None, end=None,
                     fit_window: pd.Timedelta = FIT_WINDOW) -> dict[int, pd.DataFrame]:
    """:func:`garch_t` of every horizon from one monthly refit each (the hourly model is the
    same for every horizon; only the h-step aggregation differs)."""
    hs = check_horizons(horizons)
    index = baselines.forecast_index(vol, start, end)
    out = {h: np.full((len(index), len(QUANTILES)), np.nan) for h in hs}
    pos = 0
    for rows in baselines.months(index):
        history = baselines.fit_history(vol, rows[0], fit_window)
        fit = baselines.fit_garch(history)
        sigma2 = fit.sigma2(vol[vol.index <= rows[-1]], history.index[0]).reindex(rows).to_numpy()
        for h in hs:
            out[h][pos : pos + len(rows)] = garch_t_quantiles(fit, sigma2, h)
        pos += len(rows)
    return {h: _frame(v, index) for h, v in out.items()}


def garch_t(vol: pd.DataFrame, h: int, start=None, end=None, fit_window: pd.Timedelta = FIT_WINDOW) -> pd.DataFrame:
    """GARCH(1,1)-t h-step, refit monthly on the trailing ``fit_window`` of hourly returns (all
    complete at the refit); ``h = 1`` is baseline B."""
    return garch_t_horizons(vol, [h], start, end, fit_window)[int(h)]


BASELINES: dict[str, Callable[..., pd.DataFrame]] = {
    "persistence": persistence,
    "empirical": empirical,
    "garch_t": garch_t,
    "har": har,
}


def all_baselines(vol: pd.DataFrame, h: int, start=None, end=None, fit_window: pd.Timedelta = FIT_WINDOW,
                  names: Iterable[str] = tuple(BASELINES)) -> dict[str, pd.DataFrame]:
    """The baselines of horizon h on the same origins."""
    out = {}
    for name in names:
        fn = BASELINES[name]
        kw = {"fit_window": fit_window} if name in ("garch_t", "har") else {}
        out[name] = fn(vol, h, start, end, **kw)
    return out


# --- scores per horizon ------------------------------------------------------------------


def coverage_ci(y, q, interval: str, block: int, n_boot: int = 500, seed: int = 0,
                level: float = 0.95) -> dict[str, float]:
    """Coverage of a central interval (``"90"`` or ``"50"``) with a moving-block bootstrap
    interval (blocks of ``block`` rows)."""
    lo, hi = (list(QUANTILE_COLUMNS).index(c) for c in INTERVALS[interval])
    y_arr = np.asarray(y, dtype=np.float64).reshape(-1)
    q_arr = np.asarray(q, dtype=np.float64)
    keep = np.isfinite(y_arr) & np.isfinite(q_arr).all(axis=1)
    inside = ((y_arr >= q_arr[:, lo]) & (y_arr <= q_arr[:, hi]))[keep].astype(np.float64)
    idx = block_bootstrap_indices(len(inside), block, n_boot, seed)
    boot = inside[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    return {"coverage": float(inside.mean()), "low": float(np.quantile(boot, alpha)),
            "high": float(np.quantile(boot, 1.0 - alpha)), "n": len(inside)}


def score_horizon(y, q_model, base: Mapping[str, Any], h: int, n_boot: int = 500) -> dict[str, Any]:
    """Scores of one horizon's forecasts (log-return units, rows aligned with ``y``): the model's
    :func:`~make_us_rich.scoring.score`, each baseline's, pinball ratios with block-bootstrap
    intervals vs each baseline that has an interval, and the coverages with theirs."""
    block = bootstrap_block(h)
    q_model = np.asarray(q_model, dtype=np.float64)
    base = {k: np.asarray(v, dtype=np.float64) for k, v in base.items()}
    ok = np.isfinite(np.asarray(y, dtype=np.float64)) & np.isfinite(q_model).all(axis=1)
    for v in base.values():
        ok &= np.isfinite(v).all(axis=1)
    y_ok = np.asarray(y, dtype=np.float64)[ok]
    out: dict[str, Any] = {"horizon": int(h), "block": block, "n": int(ok.sum()),
                           "model": score(y_ok, q_model[ok]),
                           "baselines": {k: score(y_ok, v[ok]) for k, v in base.items()}}
    out["ratio"] = {}
    for name, v in base.items():
        if name == "persistence":
            continue
        out["ratio"][name] = pinball_ratio_ci(y_ok, q_model[ok], v[ok], block=block, n_boot=n_boot)
    out["coverage_ci"] = {k: coverage_ci(y_ok, q_model[ok], k, block, n_boot) for k in INTERVALS}
    return out


# --- targets of many horizons for the model ----------------------------------------------


def horizon_targets(vol: pd.DataFrame, horizons: Iterable[int]) -> pd.DataFrame:
    """``[rows, H]`` h-hour targets of every origin of ``vol`` (columns ``h1``, ``h4``, ...)."""
    hs = check_horizons(horizons)
    return pd.DataFrame({f"h{h}": horizon_returns(vol, h) for h in hs}, index=vol.index)


def pooled_horizon_targets(windows, tables: Mapping[str, pd.DataFrame], horizons: Iterable[int]) -> np.ndarray:
    """``[n, H]`` h-hour targets of the pooled windows
    (:class:`~make_us_rich.preprocessing.pooled.PooledWindows`, made from ``tables``): the target
    of each window's forecast candle as origin (NaN where unknown: the data's last hours, gaps)."""
    hs = check_horizons(horizons)
    out = np.full((len(windows), len(hs)), np.nan)
    for i, name in enumerate(windows.symbols):
        mine = np.flatnonzero(windows.symbol == i)
        if len(mine) == 0:
            continue
        targets = horizon_targets(tables[name], hs)
        at = pd.DatetimeIndex(pd.to_datetime(windows.time[mine], utc=True))
        out[mine] = targets.reindex(at).to_numpy()
    return out


def purged_pooled_split(windows, y: np.ndarray, horizons: Iterable[int], val_start, test_start):
    """``(train, val, test)`` of pooled windows and their targets ``y [n, H]`` (from
    :func:`pooled_horizon_targets`), each side a ``(PooledWindows, targets)`` pair, cut at the
    same times for every symbol and purged by the longest horizon (:func:`purged_split`). Train
    and validation windows with an unknown target (the data's end, gaps) are left out; test
    windows keep NaN targets (each horizon is scored where its target is known)."""
    hs = check_horizons(horizons)
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (len(windows), len(hs)):
        raise ConfigError(f"targets must be [{len(windows)}, {len(hs)}], got {y.shape}")
    train, val, test = purged_split(windows.index, hs[-1], val_start, test_start)
    known = np.isfinite(y).all(axis=1)
    return tuple((windows.take(m), y[m]) for m in (train & known, val & known, test))


# --- scoring an exported multi-horizon model (no TensorFlow) --------------------------------


def model_horizons(card: Mapping[str, Any]) -> tuple[int, ...]:
    """The horizons a model card lists (``(1,)`` for a model of the next hour only)."""
    return check_horizons(card.get("horizons") or (1,))


def evaluate_horizons(model_bytes: bytes, features: pd.DataFrame, sequence_length: int,
                      horizons: Iterable[int], *, start=None, end=None,
                      n_boot: int = 500) -> tuple[dict[str, Any], dict[int, pd.DataFrame]]:
    """Score the ONNX model's :data:`HORIZON_OUTPUT_NAME` on every origin of ``[start, end]``
    beside the baselines of each horizon; returns per-horizon scores and the rows of
    ``predictions_h{h}.csv``: ``timestamp`` (open time of the target candle, UTC),
    ``last_close`` (close of the last candle known at the forecast, h hours before),
    ``close`` (what came) and the quantile closes. Origins whose target the data do not reach
    yet are not scored (no row)."""
    from make_us_rich.contract import INPUT_NAME
    from make_us_rich.inference import onnx_session
    from make_us_rich.preprocessing.windows import period_windows

    hs = check_horizons(horizons)
    windows = period_windows(features, sequence_length, start, end)
    session = onnx_session(model_bytes)
    if HORIZON_OUTPUT_NAME not in [o.name for o in session.get_outputs()]:
        raise ConfigError(f"the model has no output {HORIZON_OUTPUT_NAME!r}: it forecasts the next hour only")
    q_close = session.run([HORIZON_OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(windows.X, dtype=np.float32)})[0]
    if q_close.shape[1:] != (len(hs), len(QUANTILES)):
        raise ConfigError(f"the model's {HORIZON_OUTPUT_NAME} is {list(q_close.shape[1:])}, its card lists "
                          f"horizons {list(hs)}; the card and the model do not belong together")
    close = features["close"].astype(np.float64)
    last = close.reindex(windows.index - STEP).to_numpy()
    vol = features
    scores, predictions = {}, {}
    for j, h in enumerate(hs):
        y = horizon_returns(vol, h).reindex(windows.index).to_numpy()
        known = np.isfinite(y)
        q = np.asarray(q_close[:, j, :], dtype=np.float64)
        frame = pd.DataFrame(q[known], columns=list(QUANTILE_COLUMNS))
        target = target_time(windows.index[known], h)
        frame.insert(0, "timestamp", target.strftime("%Y-%m-%dT%H:%M:%SZ"))
        frame.insert(1, "last_close", last[known])
        frame.insert(2, "close", close.reindex(target).to_numpy())
        predictions[h] = frame
        origins = windows.index[known]
        base = all_baselines(vol, h, origins[0], origins[-1])
        q_ret = np.log(q[known] / last[known][:, None])
        scores[str(h)] = score_horizon(y[known], q_ret,
                                       {k: v.reindex(origins).to_numpy() for k, v in base.items()}, h, n_boot)
    return scores, predictions


def split_pooled_horizons(windows, y: np.ndarray, horizons: Iterable[int], val_size: float,
                          test_start: Mapping[str, Any]):
    """As :func:`~make_us_rich.preprocessing.pooled.split_pooled` (per symbol: its windows from
    ``test_start[symbol]`` on are its test, none when ``None``; the latest ``val_size`` of the
    others with a known target are for early stopping), purged by the longest horizon at both
    cuts: no train target ends after the symbol's first early-stopping origin, no early-stopping
    target after its test start. Each side a ``(PooledWindows, targets)`` pair."""
    from make_us_rich.preprocessing.split import holdout_size

    hs = check_horizons(horizons)
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (len(windows), len(hs)):
        raise ConfigError(f"targets must be [{len(windows)}, {len(hs)}], got {y.shape}")
    t = windows.index
    known = np.isfinite(y).all(axis=1)
    train, val, test = (np.zeros(len(windows), dtype=bool) for _ in range(3))
    for i, name in enumerate(windows.symbols):
        mine = windows.symbol == i
        cut = test_start.get(name)
        fit_ok = mine & known
        if cut is not None:
            test |= mine & np.asarray(t >= pd.Timestamp(cut))
            fit_ok &= known_before(t, hs[-1], cut)
        fit = np.flatnonzero(fit_ok)
        n_val = holdout_size(len(fit), val_size) if len(fit) else 0
        first_val = fit[len(fit) - n_val] if n_val else None
        head = fit[: len(fit) - n_val]
        if first_val is not None:
            head = head[known_before(t[head], hs[-1], t[first_val])]
        if len(head) < 1:
            raise InsufficientHistoryError(f"{name}: {len(fit)} windows with a known {hs[-1]} h target before its "
                                           "test period, too few to train on; load more history")
        train[head] = True
        val[fit[len(fit) - n_val :]] = True
    return tuple((windows.take(m), y[m]) for m in (train, val, test))
