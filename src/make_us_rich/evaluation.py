"""``mkrich evaluate``: score a trained model out of sample on any period, walk-forward, beside
the baselines (no TensorFlow: the exported ONNX model is what is scored, as it is served)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from make_us_rich import contract
from make_us_rich.data.klines import to_utc_timestamp
from make_us_rich.errors import ConfigError
from make_us_rich.io import write_json
from make_us_rich.params import DEFAULT_PERIOD_DAYS


def load_window(start, end, days, history_days: float) -> dict[str, Any]:
    """``load_klines`` arguments covering the period plus ``history_days`` before it."""
    if start is not None:
        return {"start": to_utc_timestamp(start) - pd.Timedelta(days=history_days), "end": end}
    return {"days": (days or DEFAULT_PERIOD_DAYS) + history_days, "end": end}


def period_bounds(klines: pd.DataFrame, start, end, days) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last forecast hour of the period within the loaded klines."""
    last = to_utc_timestamp(end) if end is not None else klines["timestamp"].iloc[-1]
    first = to_utc_timestamp(start) if start is not None else last - pd.Timedelta(days=days or DEFAULT_PERIOD_DAYS)
    if first >= last:
        raise ConfigError(f"the evaluation period starts ({first}) after it ends ({last})")
    return first, last


def evaluate_folder(
    model_dir: str | Path,
    klines: pd.DataFrame,
    symbol: str,
    out_dir: str | Path,
    *,
    period: tuple[Any, Any, float | None] = (None, None, None),
) -> tuple[dict[str, Any], Path]:
    """Score ``model_dir/model.onnx`` on the period of ``klines`` (``(start, end, days)``);
    write ``metrics.json``, ``predictions.csv`` and the plots into ``out_dir`` (replaced as a
    whole). Returns the scores and the folder."""
    from make_us_rich.horizons import evaluate_horizons, model_horizons
    from make_us_rich.preprocessing import build_features
    from make_us_rich.preprocessing.windows import check_inputs_available, unavailable_inputs
    from make_us_rich.training.artifacts import swap_into_place, write_predictions
    from make_us_rich.training.evaluate import evaluate_model
    from make_us_rich.training.plots import plot_calibration, plot_fan_chart

    folder = Path(model_dir)
    try:
        card = json.loads((folder / "model_card.json").read_text())
        model_bytes = (folder / contract.MODEL_FILE).read_bytes()
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{folder} is not a model folder ({exc}); pass the --out of `mkrich train` or a run's artifacts"
        ) from None
    universal = card.get("kind") == "universal" or "universal" in card
    if card.get("symbol") != symbol and not universal:
        raise ConfigError(f"{folder} holds a model of {card.get('symbol')!r}, not {symbol!r}; check --symbol")
    if card.get("features") != list(contract.FEATURES):
        raise ConfigError(f"{folder} was trained on other features than this version computes; retrain it")
    first, last = period_bounds(klines, *period)
    features = build_features(klines)
    inputs = (card.get("hyperparameters") or {}).get("inputs") or []
    lacking = unavailable_inputs(features)
    check_inputs_available(inputs, lacking, symbol)
    evaluation = evaluate_model(model_bytes, features, int(card["sequence_length"]), start=first, end=last)
    horizons = model_horizons(card)
    by_horizon: dict[int, pd.DataFrame] = {}
    if horizons != (1,):
        horizon_scores, by_horizon = evaluate_horizons(model_bytes, features, int(card["sequence_length"]),
                                                       horizons, start=first, end=last)
    test = {"symbol": symbol, "model_info": {"folder": str(folder), "created": card.get("created"),
                                        "files": {contract.MODEL_FILE: card.get("files", {}).get(contract.MODEL_FILE)},
                                        "kind": "universal" if universal else "per-symbol",
                                        "trained_on": card.get("symbols") or (card.get("universal") or {}).get("trained_on")},
            "inputs": {"used": list(inputs), "unavailable": list(lacking)},
            **evaluation.metrics}
    if by_horizon:
        test["horizons"] = horizon_scores
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write_json(staging / "metrics.json", test)
        write_predictions(evaluation.predictions, staging / "predictions.csv")
        for h, frame in by_horizon.items():  # a multi-horizon model: one file per horizon (issue 22)
            write_predictions(frame, staging / f"predictions_h{h}.csv")
        plot_fan_chart(evaluation.predictions, symbol, staging / "fan_chart.png")
        plot_calibration(evaluation.reliability, symbol, staging / "calibration.png")
        staging.chmod(0o755)
        swap_into_place(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return test, out
