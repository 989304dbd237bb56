"""Forecasts for the console and its API: the last window from the configured source, built by
the same client code as ``mkrich predict`` (:mod:`make_us_rich.predict_client`), sent to the
inference endpoint (Open Inference Protocol v2), answered in the console's JSON shape."""

from __future__ import annotations

import math
from typing import Any

from make_us_rich.console.settings import Settings
from make_us_rich.data import load_klines, normalize_symbol
from make_us_rich.errors import ConfigError, MakeUsRichError, UnknownSymbolError
from make_us_rich.predict_client import ServerError, predict_next_close
from make_us_rich.scoring import INTERVALS, QUANTILE_COLUMNS, QUANTILES
from make_us_rich.store import ModelStore, StoreError

MAX_SYMBOL_LENGTH = 20


class ForecastUnavailable(MakeUsRichError):
    """The inference endpoint or the klines source failed (a 502/503 for the caller)."""


def check_symbol(raw: str, store: ModelStore) -> str:
    """``raw`` as a served symbol; :class:`ConfigError` when malformed, :class:`UnknownSymbolError`
    when no model serves it."""
    if not raw or len(raw) > MAX_SYMBOL_LENGTH:
        raise ConfigError(f"a symbol has 5 to {MAX_SYMBOL_LENGTH} letters or digits, e.g. BTCEUR")
    symbol = normalize_symbol(raw)
    if symbol not in served_symbols(store):
        raise UnknownSymbolError(f"no model is served for {symbol}; see /models for the symbols")
    return symbol


def served_symbols(store: ModelStore) -> list[str]:
    try:
        return store.symbols()
    except StoreError as exc:
        raise ForecastUnavailable(f"the model store cannot be read: {exc}") from None


def forecast(settings: Settings, store: ModelStore, symbol: str) -> dict[str, Any]:
    """The next hour's forecast of ``symbol`` (an already checked symbol)."""
    try:
        raw = predict_next_close(settings.inference_url, symbol, source=settings.source,
                                 api_url=settings.binance_api_url, token=settings.inference_token,
                                 end=settings.end)
    except ServerError as exc:
        raise ForecastUnavailable(f"the inference endpoint failed: {exc}") from None
    except MakeUsRichError as exc:
        raise ForecastUnavailable(str(exc)) from None
    columns = raw.get("quantiles")
    if not columns:
        raise ForecastUnavailable(f"the served model of {symbol} gives no quantiles (an old model?)")
    quantiles = {f"{level:g}": columns[col] for level, col in zip(QUANTILES, QUANTILE_COLUMNS, strict=True)}
    if not all(math.isfinite(v) for v in quantiles.values()):
        raise ForecastUnavailable(f"the served model of {symbol} answered non-finite quantiles")
    created = None
    version = raw.get("model_version")
    if version:
        try:
            created = store.manifest(symbol, version).get("published")
        except (StoreError, ConfigError, ValueError):
            created = None
    return {
        "symbol": symbol,
        "forecast_time": raw["for_hour"],
        "last_time": raw["last_hour"],
        "last_close": raw["last_close"],
        "median": raw["predicted_close"],
        "quantiles": quantiles,
        "interval_90": [columns[c] for c in INTERVALS["90"]],
        "interval_50": [columns[c] for c in INTERVALS["50"]],
        "model_version": version,
        "model_created": created,
    }


def candles(settings: Settings, symbol: str) -> list[dict[str, Any]]:
    """The last ``chart_days`` of klines as chart candles (time in epoch seconds)."""
    try:
        klines, _ = load_klines(settings.source, symbol, days=settings.chart_days,
                                api_url=settings.binance_api_url, end=settings.end)
    except MakeUsRichError as exc:
        raise ForecastUnavailable(f"no klines for {symbol}: {exc}") from None
    return [
        {"time": int(t.timestamp()), "open": float(o), "high": float(h), "low": float(lo), "close": float(c)}
        for t, o, h, lo, c in zip(klines["timestamp"], klines["open"], klines["high"], klines["low"],
                                  klines["close"], strict=True)
    ]
