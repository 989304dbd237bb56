"""Client side of a prediction: the last window of klines -> the same features as training ->
an Open Inference Protocol v2 request. Works against ``mkrich serve`` and against the cluster's
Triton ONNX InferenceService alike (same model name, input name, shape and datatype)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from make_us_rich import contract
from make_us_rich.data import interval_ms, load_klines, normalize_symbol
from make_us_rich.errors import MakeUsRichError
from make_us_rich.preprocessing import build_features
from make_us_rich.preprocessing.windows import HISTORY_DAYS
from make_us_rich.scoring import QUANTILE_COLUMNS


class ServerError(MakeUsRichError, RuntimeError):
    """The prediction server could not be reached or refused the request."""


def _call(url: str, body: dict | None = None, token: str | None = None, timeout: float = 10.0) -> dict:
    from make_us_rich.http import HTTPCallError, call

    try:
        return call(url, body, token=token, timeout=timeout)
    except HTTPCallError as exc:
        if exc.status is None:
            raise ServerError(f"cannot reach {url}: {exc.detail}; is the server running?") from None
        raise ServerError(str(exc)) from None


def v2_request(windows, request_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": [{"name": contract.INPUT_NAME, "shape": list(windows.shape),
                        "datatype": contract.DATATYPE, "data": windows.reshape(-1).tolist()}]}
    if request_id:
        body["id"] = request_id
    return body


def predict_next_close(
    url: str,
    symbol: str,
    *,
    source: str = "binance",
    interval: str = "1h",
    api_url: str | None = None,
    token: str | None = None,
    end: Any = None,
) -> dict[str, Any]:
    sym = normalize_symbol(symbol)
    name = contract.model_name(sym)
    base = url.rstrip("/")
    meta = _call(f"{base}/v2/models/{name}", token=token)
    seq_len = int(meta["inputs"][0]["shape"][1])
    step = interval_ms(interval)
    days = HISTORY_DAYS + math.ceil((seq_len + 2) * step / 86_400_000) + 1
    klines, _ = load_klines(source, sym, interval=interval, days=days, end=end, api_url=api_url)
    window = klines.tail(seq_len)
    if len(window) < seq_len:
        raise MakeUsRichError(f"only {len(window)} candles available; the model needs {seq_len}")
    gaps = window["timestamp"].diff().dropna() != pd.Timedelta(milliseconds=step)
    if gaps.any():
        raise MakeUsRichError(
            f"the last {seq_len} candles have a gap (at {window['timestamp'][gaps.reindex(window.index, fill_value=False)].iloc[0]}); "
            "the exchange had an outage - try again after the next candle"
        )
    table = build_features(klines).tail(seq_len)
    features = table[list(contract.FEATURES)].to_numpy("float32")[None]
    if not np.isfinite(features).all():
        raise MakeUsRichError(
            f"the features of the last {seq_len} candles are incomplete (the volatility features "
            f"need {HISTORY_DAYS} days of history without long gaps); try a later end time"
        )
    answer = _call(f"{base}/v2/models/{name}/infer", v2_request(features), token=token)
    outputs = {o["name"]: o["data"] for o in answer["outputs"]}
    predicted = float(outputs[contract.OUTPUT_NAME][0])
    quantiles = outputs.get(contract.QUANTILE_OUTPUT_NAME)
    last_time = window["timestamp"].iloc[-1]
    one_hour = dict(zip(QUANTILE_COLUMNS, map(float, quantiles), strict=True)) if quantiles else None
    return {
        "symbol": sym,
        "model": name,
        "model_version": answer.get("model_version"),
        "predicted_close": predicted,
        "quantiles": one_hour,
        "last_close": float(window["close"].iloc[-1]),
        "last_hour": last_time.isoformat(),
        "for_hour": (last_time + pd.Timedelta(milliseconds=step)).isoformat(),
        "horizons": horizon_entries(answer, outputs, one_hour, last_time, step),
    }


def horizon_entries(answer: dict, outputs: dict, one_hour: dict | None, last_time: pd.Timestamp,
                    step_ms: int) -> list[dict[str, Any]]:
    """The forecast at every horizon the server answers (issue 22), the next hour first:
    ``{"hours", "for_hour" (open time of the target candle), "quantiles"}``. The hours are the
    answer's ``parameters.horizons`` (``mkrich serve``); an answer without them (a one-horizon
    model, or Triton, which does not know which horizons the gate let through) gives the 1-hour
    entry only."""
    if one_hour is None:
        return []
    params = answer.get("parameters") or {}
    try:
        hours = [int(h) for h in str(params.get("horizons") or "1").split(",")]
    except ValueError:
        raise ServerError(f"the server's answer names horizons {params.get('horizons')!r}, not hours") from None
    rows = outputs.get(contract.HORIZON_OUTPUT_NAME)
    table = {1: one_hour}
    if rows is not None and hours != [1]:
        values = np.asarray(rows, dtype=np.float64).reshape(-1, len(QUANTILE_COLUMNS))
        if len(values) != len(hours):
            raise ServerError(f"the server's answer has {len(values)} horizon rows for horizons {hours}")
        table.update({h: dict(zip(QUANTILE_COLUMNS, map(float, row), strict=True))
                      for h, row in zip(hours, values, strict=True) if h != 1})
    step = pd.Timedelta(milliseconds=step_ms)
    return [{"hours": h, "for_hour": (last_time + h * step).isoformat(), "quantiles": table[h]} for h in sorted(table)]
