"""Honest evaluation of the quantile forecaster and the promotion gate. No TensorFlow: the
exported ONNX model (what is served) is scored with onnxruntime, so the pipeline's gate step,
``mkrich evaluate`` and the tests run anywhere.

Every forecast hour is scored walk-forward: the model and each baseline see only the candles
before it. Scores are in log-return units (the target: the log return to the next close):
pinball loss per quantile and mean, CRPS from the quantiles, coverage and width of the 90 % and
50 % intervals, RMSE/MAE of the median; point errors of the median close are also given in price
units beside persistence. Baselines, computed by our code (:mod:`make_us_rich.baselines`):
persistence (point), empirical quantiles of the last 720 returns (A), GARCH(1,1) Student-t and
the linear HAR model, both refit monthly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from make_us_rich.errors import ConfigError

DEFAULT_TOLERANCE = 0.02  # at most 2 % worse than the baselines the gate compares with
#: accepted test coverage of the 90 % interval
COVERAGE_BAND = (0.85, 0.95)
#: the baseline the gate compares pinball loss with (A: empirical quantiles)
GATE_BASELINE = "empirical"
#: bootstrap blocks: a week of hours keeps the serial dependence of hourly returns
CI_BLOCK = 168


@dataclass
class Evaluation:
    """Scores of one period and the per-hour forecasts behind them."""

    metrics: dict[str, Any]
    #: one row per forecast hour: timestamp, last_close, close, q05..q95 (price units)
    predictions: pd.DataFrame
    #: calibration: observed share below each quantile level, model and baselines
    reliability: pd.DataFrame


def evaluate_model(
    model_bytes: bytes,
    features: pd.DataFrame,
    sequence_length: int,
    *,
    start=None,
    end=None,
    baselines: bool = True,
) -> Evaluation:
    """Score the ONNX model on every forecast hour of ``features`` in ``[start, end]`` (the
    features stage's table, with enough history before ``start`` for the windows, the
    volatility features and the baselines' fits), beside the baselines."""
    from make_us_rich import contract
    from make_us_rich.baselines import BASELINES
    from make_us_rich.inference import onnx_session, predict_all
    from make_us_rich.preprocessing.windows import STEP, period_windows
    from make_us_rich.scoring import (
        QUANTILE_COLUMNS,
        pinball_ratio_ci,
        point_errors,
        reliability,
        score,
    )

    windows = period_windows(features, sequence_length, start, end)
    out = predict_all(onnx_session(model_bytes), np.ascontiguousarray(windows.X, dtype=np.float32))
    q_close = out[contract.QUANTILE_OUTPUT_NAME].astype(np.float64)
    # prices in float64 from the table (the windows are float32, as the model reads them)
    last = features["close"].reindex(windows.index - STEP).to_numpy(np.float64)
    close = features["close"].reindex(windows.index).to_numpy(np.float64)
    q_ret = np.log(q_close / last[:, None])
    y = windows.y

    forecasts = {"model": pd.DataFrame(q_ret, index=windows.index, columns=list(QUANTILE_COLUMNS))}
    if baselines:
        for name, fn in BASELINES.items():
            forecasts[name] = fn(features, windows.index[0], windows.index[-1]).reindex(windows.index)
    scores = {name: score(y, q) for name, q in forecasts.items()}
    model = scores["model"]
    ratio: dict[str, float | None] = {}
    for name in ("empirical", "garch_t", "har"):
        if name in scores and scores[name]["mean_pinball"] > 0:
            ratio[f"pinball_vs_{name}"] = model["mean_pinball"] / scores[name]["mean_pinball"]
    if "persistence" in scores and scores["persistence"]["median"]["rmse"] > 0:
        ratio["median_rmse_vs_persistence"] = model["median"]["rmse"] / scores["persistence"]["median"]["rmse"]
    ci = None
    if GATE_BASELINE in forecasts and len(y) >= 2 * CI_BLOCK:
        ci = pinball_ratio_ci(y, q_ret, forecasts[GATE_BASELINE].to_numpy(), block=CI_BLOCK)
    median_close = q_close[:, QUANTILE_COLUMNS.index("q50")]
    price = {"model": point_errors(close, median_close), "persistence": point_errors(close, last)}
    price["ratio_rmse"] = price["model"]["rmse"] / price["persistence"]["rmse"] if price["persistence"]["rmse"] > 0 else None
    metrics = {
        "n": len(y),
        "period": [windows.index[0].isoformat(), windows.index[-1].isoformat()],
        "units": "log return to the next close",
        "model": model,
        "baselines": {k: v for k, v in scores.items() if k != "model"},
        "ratio": ratio,
        "pinball_ratio_ci95": ci,
        "price": price,
    }
    predictions = pd.DataFrame(q_close, columns=list(QUANTILE_COLUMNS))
    predictions.insert(0, "timestamp", windows.index.strftime("%Y-%m-%dT%H:%M:%SZ"))
    predictions.insert(1, "last_close", last)
    predictions.insert(2, "close", close)
    calib = pd.concat({name: reliability(y, q)["observed"] for name, q in forecasts.items() if name != "persistence"}, axis=1)
    calib.insert(0, "level", reliability(y, q_ret)["level"])
    return Evaluation(metrics, predictions, calib)


@dataclass
class GateDecision:
    """Whether a model may be published, and why. Recorded in metrics.json and the model card."""

    passed: bool
    tolerance: float
    coverage_band: tuple[float, float]
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["coverage_band"] = list(self.coverage_band)
        return d


def promotion_gate(
    metrics: dict[str, Any],
    parity_passed: bool,
    tolerance: float = DEFAULT_TOLERANCE,
    coverage_band: tuple[float, float] = COVERAGE_BAND,
) -> GateDecision:
    """A model is published only if its ONNX export passed parity, its mean pinball loss is at
    most ``(1 + tolerance)`` x the empirical-quantile baseline's, its 90 % interval covers
    within ``coverage_band`` on the test period, and its median's RMSE is at most
    ``(1 + tolerance)`` x persistence's."""
    if tolerance < 0:
        raise ConfigError(f"gate tolerance must be >= 0, got {tolerance}")
    low, high = coverage_band
    if not 0.0 <= low < high <= 1.0:
        raise ConfigError(f"the coverage band must satisfy 0 <= min < max <= 1, got {coverage_band}")
    limit = 1.0 + tolerance
    checks: list[tuple[bool, str]] = [(bool(parity_passed), f"ONNX parity {'passed' if parity_passed else 'failed'}")]
    ratio = metrics["ratio"]

    def against(key: str, label: str) -> None:
        value = ratio.get(key)
        if value is None:
            checks.append((False, f"{label}: no score (the test period has no moves to judge on)"))
        else:
            checks.append((value <= limit, f"{label} {value:.4f} {'<=' if value <= limit else '>'} {limit:.4f}"))

    against(f"pinball_vs_{GATE_BASELINE}", "mean pinball ratio vs empirical quantiles")
    cov = metrics["model"]["intervals"]["90"]["coverage"]
    inside = low <= cov <= high
    checks.append((inside, f"90 % interval coverage {cov:.3f} {'within' if inside else 'outside'} {low:.2f}-{high:.2f}"))
    against("median_rmse_vs_persistence", "median RMSE ratio vs persistence")
    return GateDecision(
        passed=all(ok for ok, _ in checks), tolerance=tolerance, coverage_band=(low, high),
        reasons=[text for _, text in checks],
    )


def gate_horizons(scores: Mapping[str, Mapping[str, Any]], parity_passed: bool,
                  tolerance: float = DEFAULT_TOLERANCE,
                  coverage_band: tuple[float, float] = COVERAGE_BAND) -> dict[str, GateDecision]:
    """The promotion gate of each horizon on its own (issue 22; ``scores``: the results of
    :func:`make_us_rich.horizons.score_horizon` by horizon): the 1-hour gate's four checks
    against that horizon's baselines. A horizon that fails is not to be served; the others are."""
    out = {}
    for h, s in scores.items():
        model, base = s["model"], s["baselines"]
        emp = base["empirical"]["mean_pinball"]
        persistence = base["persistence"]["median"]["rmse"]
        metrics = {"model": model, "ratio": {
            "pinball_vs_empirical": model["mean_pinball"] / emp if emp > 0 else None,
            "median_rmse_vs_persistence": model["median"]["rmse"] / persistence if persistence > 0 else None,
        }}
        out[str(h)] = promotion_gate(metrics, parity_passed, tolerance, coverage_band)
    return out


def gate_served_horizons(model_bytes: bytes, features: pd.DataFrame, sequence_length: int,
                         horizons, *, start, one_hour: GateDecision, parity_passed: bool,
                         tolerance: float = DEFAULT_TOLERANCE,
                         coverage_band: tuple[float, float] = COVERAGE_BAND,
                         n_boot: int = 500) -> dict[str, Any]:
    """The per-horizon gate of a model of several horizons (issue 22) on its test period (the
    forecast hours from ``start`` on): each horizon scored beside its own baselines
    (:func:`make_us_rich.horizons.evaluate_horizons`) and judged by :func:`gate_horizons`; the
    1-hour horizon's decision is ``one_hour``, the model's gate (it alone refuses the model).
    Returns ``scores`` (by horizon), ``gates`` (each decision) and ``served``: the horizons
    that passed, in the model's order (none when the model is refused). A test period too
    short to score the longer horizons serves the next hour only, and says so."""
    from make_us_rich.errors import InsufficientHistoryError
    from make_us_rich.horizons import check_horizons, evaluate_horizons

    hs = check_horizons(horizons)
    try:
        scores, _ = evaluate_horizons(model_bytes, features, sequence_length, hs, start=start, n_boot=n_boot)
        gates = gate_horizons(scores, parity_passed, tolerance, coverage_band)
    except (InsufficientHistoryError, ConfigError) as exc:  # a test period too short for a horizon's scores
        scores = {}
        gates = {str(h): GateDecision(False, tolerance, tuple(coverage_band), [f"not scored: {exc}"])
                 for h in hs}
    gates["1"] = one_hour
    served = [h for h in hs if gates[str(h)].passed] if one_hour.passed else []
    return {"scores": scores, "gates": {h: g.to_dict() for h, g in gates.items()}, "served": served}
