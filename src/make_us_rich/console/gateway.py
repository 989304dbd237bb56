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


class UnknownHorizonError(MakeUsRichError):
    """The serving model does not forecast that many hours ahead (a 4xx for the caller)."""


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


#: interval ("90") -> its bounds' keys in the console's quantiles ("0.05", "0.95")
_BOUNDS = {name: tuple(f"{QUANTILES[QUANTILE_COLUMNS.index(c)]:g}" for c in cols) for name, cols in INTERVALS.items()}


def _levels(columns: Any, symbol: str, what: str) -> dict[str, float]:
    """``{"q05": ..}`` -> ``{"0.05": ..}`` (the console's keys: the quantile levels), all finite."""
    try:
        quantiles = {f"{level:g}": float(columns[col]) for level, col in zip(QUANTILES, QUANTILE_COLUMNS, strict=True)}
    except (KeyError, TypeError, ValueError):
        raise ForecastUnavailable(f"the served model of {symbol} gives no quantiles {what} (an old model?)") from None
    if not all(math.isfinite(v) for v in quantiles.values()):
        raise ForecastUnavailable(f"the served model of {symbol} answered non-finite quantiles {what}")
    return quantiles


def _horizon(hours: int, for_hour: str, quantiles: dict[str, float], median: float | None = None) -> dict[str, Any]:
    return {"hours": hours, "forecast_time": for_hour,
            "median": quantiles["0.5"] if median is None else median, "quantiles": quantiles,
            **{f"interval_{name}": [quantiles[lo], quantiles[hi]] for name, (lo, hi) in _BOUNDS.items()}}


def horizons_of(raw: dict[str, Any], symbol: str) -> list[dict[str, Any]]:
    """The horizons of a :func:`predict_next_close` answer in the console's shape, shortest
    first, the first the next hour (the contract's 1-hour outputs, as the top level); an answer
    without ``horizons`` (a model of one horizon, an older client) is the next hour only."""
    found = {1: _horizon(1, raw["for_hour"], _levels(raw.get("quantiles"), symbol, "for the next hour"),
                         float(raw["predicted_close"]))}
    for entry in raw.get("horizons") or ():
        try:
            hours, for_hour = int(entry["hours"]), str(entry["for_hour"])
        except (KeyError, TypeError, ValueError):
            raise ForecastUnavailable(f"the served model of {symbol} answered a malformed horizon: {entry!r:.80}") from None
        if hours < 1:
            raise ForecastUnavailable(f"the served model of {symbol} answered a horizon of {hours} h")
        if hours > 1:
            found[hours] = _horizon(hours, for_hour, _levels(entry.get("quantiles"), symbol, f"at {hours} h"))
    return [found[h] for h in sorted(found)]


def forecast(settings: Settings, store: ModelStore, symbol: str) -> dict[str, Any]:
    """The forecast of ``symbol`` (an already checked symbol): the next hour at the top level, and
    every horizon the model serves under ``horizons``."""
    try:
        raw = predict_next_close(settings.inference_url, symbol, source=settings.source,
                                 api_url=settings.binance_api_url, token=settings.inference_token,
                                 end=settings.end)
    except ServerError as exc:
        raise ForecastUnavailable(f"the inference endpoint failed: {exc}") from None
    except MakeUsRichError as exc:
        raise ForecastUnavailable(str(exc)) from None
    horizons = horizons_of(raw, symbol)
    created = None
    version = raw.get("model_version")
    if version:
        try:
            created = store.manifest(symbol, version).get("published")
        except (StoreError, ConfigError, ValueError):
            created = None
    one = horizons[0]
    return {
        "symbol": symbol,
        "forecast_time": one["forecast_time"],
        "last_time": raw["last_hour"],
        "last_close": raw["last_close"],
        "median": one["median"],
        "quantiles": one["quantiles"],
        "interval_90": one["interval_90"],
        "interval_50": one["interval_50"],
        "model_version": version,
        "model_created": created,
        "horizons": horizons,
    }


def _unserved(symbol: str, served, hours: int) -> UnknownHorizonError:
    listed = ", ".join(map(str, served))
    return UnknownHorizonError(f"the model serving {symbol} forecasts {listed} hour(s) ahead, not {hours}: "
                               f"use horizon= one of {listed}, or leave it out for all of them")


def check_horizon(store: ModelStore, symbol: str, hours: int) -> None:
    """Refuse ``hours`` that the symbol's model does not serve (its store pointer's served
    horizons; a model without them serves the next hour) before anything is asked of Binance
    or the inference endpoint, so that a refused horizon costs nothing upstream."""
    try:
        pointer = store.pointer(symbol)
    except (StoreError, ValueError) as exc:
        raise ForecastUnavailable(f"the model store cannot be read: {exc}") from None
    served = (pointer.horizons if pointer is not None else ()) or (1,)
    if hours not in served:
        raise _unserved(symbol, served, hours)


def at_horizon(answer: dict[str, Any], hours: int) -> dict[str, Any]:
    """The :func:`forecast` ``answer`` for the close ``hours`` ahead alone, in the top level's
    shape with ``horizon``; :class:`UnknownHorizonError` when the model does not serve it."""
    served = {h["hours"]: h for h in answer["horizons"]}
    if hours not in served:
        raise _unserved(answer["symbol"], served, hours)
    h = served[hours]
    return {"symbol": answer["symbol"], "horizon": hours, "forecast_time": h["forecast_time"],
            "last_time": answer["last_time"], "last_close": answer["last_close"], "median": h["median"],
            "quantiles": h["quantiles"], "interval_90": h["interval_90"], "interval_50": h["interval_50"],
            "model_version": answer["model_version"], "model_created": answer["model_created"]}


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
