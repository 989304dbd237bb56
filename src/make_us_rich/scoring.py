"""Scores of quantile forecasts, NumPy only: usable by the trainer, the evaluator,
the benchmarks and the gate without TensorFlow.

A forecast is an array ``[n, len(QUANTILES)]`` (or a DataFrame with :data:`QUANTILE_COLUMNS`),
in any unit (log return or price) as long as the observations ``y`` ``[n]`` share it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from make_us_rich.errors import ConfigError

QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
QUANTILE_COLUMNS: tuple[str, ...] = ("q05", "q25", "q50", "q75", "q95")
#: Central intervals: nominal coverage -> (lower, upper) column.
INTERVALS: dict[str, tuple[str, str]] = {"90": ("q05", "q95"), "50": ("q25", "q75")}


def _arrays(y, q, quantiles: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(q, pd.DataFrame):
        q = q[list(_columns(quantiles))]
    y_arr = np.asarray(y, dtype=np.float64).reshape(-1)
    q_arr = np.asarray(q, dtype=np.float64)
    if q_arr.ndim != 2 or q_arr.shape != (len(y_arr), len(quantiles)):
        raise ConfigError(
            f"forecasts must be [n, {len(quantiles)}] for n={len(y_arr)} observations, got "
            f"{q_arr.shape}; pass one row per observation and one column per quantile"
        )
    keep = np.isfinite(y_arr) & np.isfinite(q_arr).all(axis=1)
    return y_arr[keep], q_arr[keep]


def pinball(y, q, quantiles: tuple[float, ...] = QUANTILES) -> np.ndarray:
    """Mean pinball (quantile) loss per quantile ``[len(quantiles)]``; rows with NaN are skipped."""
    y_arr, q_arr = _arrays(y, q, quantiles)
    diff = y_arr[:, None] - q_arr
    tau = np.asarray(quantiles)[None, :]
    return np.mean(np.maximum(tau * diff, (tau - 1.0) * diff), axis=0)


def crps(y, q, quantiles: tuple[float, ...] = QUANTILES) -> float:
    """CRPS approximated from the quantiles: ``2 * mean pinball`` (the quantile decomposition
    of the CRPS, evaluated on the forecast's quantile levels)."""
    return float(2.0 * pinball(y, q, quantiles).mean())


def coverage(y, q, quantiles: tuple[float, ...] = QUANTILES) -> dict[str, dict[str, float]]:
    """Share of observations inside each central interval and its mean width."""
    y_arr, q_arr = _arrays(y, q, quantiles)
    col = {c: i for i, c in enumerate(_columns(quantiles))}
    out = {}
    for name, (lo, hi) in INTERVALS.items():
        if lo in col and hi in col:
            low, high = q_arr[:, col[lo]], q_arr[:, col[hi]]
            out[name] = {
                "coverage": float(np.mean((y_arr >= low) & (y_arr <= high))),
                "width": float(np.mean(high - low)),
            }
    return out


def reliability(y, q, quantiles: tuple[float, ...] = QUANTILES) -> pd.DataFrame:
    """Calibration table: for each quantile level, the observed share of ``y`` at or below it
    (a calibrated forecast has ``observed == level``)."""
    y_arr, q_arr = _arrays(y, q, quantiles)
    observed = (y_arr[:, None] <= q_arr).mean(axis=0)
    return pd.DataFrame(
        {"level": quantiles, "observed": observed, "n": len(y_arr)}, index=list(_columns(quantiles))
    )


def _columns(quantiles: tuple[float, ...]) -> tuple[str, ...]:
    return tuple(f"q{round(100 * t):02d}" for t in quantiles)


def point_errors(y, point) -> dict[str, float]:
    """RMSE and MAE of a point forecast (the median, or persistence)."""
    err = np.asarray(y, dtype=np.float64).reshape(-1) - np.asarray(point, dtype=np.float64).reshape(-1)
    err = err[np.isfinite(err)]
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}


def score(y, q, quantiles: tuple[float, ...] = QUANTILES) -> dict[str, Any]:
    """Every score of one forecast, JSON-ready: pinball per quantile and mean, CRPS, coverage and
    width per interval, RMSE/MAE of the median, number of scored rows."""
    y_arr, q_arr = _arrays(y, q, quantiles)
    per_q = pinball(y_arr, q_arr, quantiles)
    median = q_arr[:, quantiles.index(0.5)] if 0.5 in quantiles else None
    return {
        "n": len(y_arr),
        "pinball": dict(zip(_columns(quantiles), per_q.tolist(), strict=True)),
        "mean_pinball": float(per_q.mean()),
        "crps": float(2.0 * per_q.mean()),
        "intervals": coverage(y_arr, q_arr, quantiles),
        "median": point_errors(y_arr, median) if median is not None else None,
    }


def pinball_ratio_ci(
    y,
    q_model,
    q_base,
    quantiles: tuple[float, ...] = QUANTILES,
    block: int = 168,
    n_boot: int = 500,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Mean pinball of ``q_model`` over that of ``q_base`` with a moving-block bootstrap interval
    (blocks of ``block`` consecutive rows, a week of hours by default, keep the serial
    dependence that an i.i.d. bootstrap would ignore)."""
    y_arr = np.asarray(y, dtype=np.float64).reshape(-1)
    qm, qb = (np.asarray(a, dtype=np.float64) for a in (q_model, q_base))
    keep = np.isfinite(y_arr) & np.isfinite(qm).all(axis=1) & np.isfinite(qb).all(axis=1)
    tau = np.asarray(quantiles)[None, :]

    def loss(qq: np.ndarray) -> np.ndarray:
        d = y_arr[keep, None] - qq[keep]
        return np.maximum(tau * d, (tau - 1.0) * d).mean(axis=1)

    lm, lb = loss(qm), loss(qb)
    n = len(lm)
    if n < 2 * block:
        raise ConfigError(f"{n} scored hours are too few for the bootstrap's blocks of {block} hours; "
                          f"evaluate a longer period (at least {2 * block} hours)")
    idx = block_bootstrap_indices(n, block, n_boot, seed)
    ratios = lm[idx].sum(axis=1) / lb[idx].sum(axis=1)
    alpha = (1.0 - level) / 2.0
    return {
        "ratio": float(lm.sum() / lb.sum()),
        "low": float(np.quantile(ratios, alpha)),
        "high": float(np.quantile(ratios, 1.0 - alpha)),
        "n": n,
    }


def block_bootstrap_indices(n: int, block: int, n_boot: int = 500, seed: int = 0) -> np.ndarray:
    """``[n_boot, n]`` row positions of a moving-block bootstrap: each resample is
    ``ceil(n / block)`` runs of ``block`` consecutive rows from random starts, cut to ``n``."""
    if n < 2 * block:
        raise ConfigError(f"{n} scored hours are too few for the bootstrap's blocks of {block} hours; "
                          f"evaluate a longer period (at least {2 * block} hours)")
    rng = np.random.default_rng(seed)
    n_blocks = int(np.ceil(n / block))
    starts = rng.integers(0, n - block + 1, size=(n_boot, n_blocks))
    return (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(n_boot, -1)[:, :n]
