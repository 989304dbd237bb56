"""The forecasts the console obtained, kept so they can be compared with the close that came:
:func:`record` stores one at each of its horizons (idempotent: one row per symbol, target hour,
model version and horizon), :func:`history` pairs the recorded hours of a horizon with the
candles' closes and :func:`coverage` says how often the 50 % and 90 % intervals held them, over
the hours whose close is known only.

The :class:`Recorder` fetches every served symbol's forecast every ``record_minutes`` (a
setting; 0 turns it off), so the history fills without anyone opening a page."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from make_us_rich.console import gateway
from make_us_rich.console.db import Forecast, insert_ignore, utcnow
from make_us_rich.console.settings import Settings
from make_us_rich.scoring import INTERVALS, QUANTILE_COLUMNS, QUANTILES
from make_us_rich.store import ModelStore

log = logging.getLogger(__name__)

#: interval ("90") -> its bounds' quantile levels as stored ("0.05", "0.95")
_BOUNDS = {name: tuple(f"{QUANTILES[QUANTILE_COLUMNS.index(c)]:g}" for c in cols)
           for name, cols in INTERVALS.items()}


def _naive_utc(iso: str) -> datetime:
    when = datetime.fromisoformat(iso)
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


def record(db, forecast: dict[str, Any]) -> None:
    """Keep ``forecast`` (the shape :func:`gateway.forecast` answers) at each of its horizons,
    each for its own target hour (``hours`` after the last candle); a forecast already kept for
    the same symbol, hour, model version and horizon is left as it is. Commits."""
    horizons = forecast.get("horizons") or [
        {"hours": 1, "forecast_time": forecast["forecast_time"], "quantiles": forecast["quantiles"]}]
    for h in horizons:
        insert_ignore(db, Forecast, symbol=forecast["symbol"], horizon=int(h["hours"]),
                      target_hour=_naive_utc(h["forecast_time"]),
                      model_version=forecast.get("model_version") or "unknown",
                      last_close=float(forecast["last_close"]),
                      quantiles={k: float(v) for k, v in h["quantiles"].items()},
                      recorded_at=utcnow())
    db.commit()


def keep(db, forecast: dict[str, Any]) -> None:
    """:func:`record`, where a forecast is being served: a database that fails to keep it is
    logged, and the forecast is served all the same."""
    try:
        record(db, forecast)
    except SQLAlchemyError as exc:
        db.rollback()
        log.warning("could not record the forecast of %s: %s", forecast.get("symbol"), type(exc).__name__)


def recorded_horizons(db, symbol: str, since: datetime | None = None) -> list[int]:
    """The horizons (hours ahead) of the forecasts recorded for ``symbol`` (target hours from
    ``since``), shortest first."""
    query = select(Forecast.horizon).where(Forecast.symbol == symbol).distinct()
    if since is not None:
        query = query.where(Forecast.target_hour >= since)
    return sorted(db.scalars(query))


def history(db, symbol: str, candles: list[dict[str, Any]], since: datetime | None = None,
            horizon: int = 1) -> list[dict[str, Any]]:
    """The recorded ``horizon``-hour forecasts of ``symbol`` (target hours from ``since``, naive
    UTC), oldest first, one per target hour (the latest model version's when several made one),
    each with the close that came (``None`` while unknown: a future hour, or beyond the candles)."""
    query = select(Forecast).where(Forecast.symbol == symbol, Forecast.horizon == horizon)
    if since is not None:
        query = query.where(Forecast.target_hour >= since)
    per_hour: dict[datetime, Forecast] = {}
    for row in db.scalars(query.order_by(Forecast.target_hour, Forecast.recorded_at, Forecast.id)):
        per_hour[row.target_hour] = row
    closes = {c["time"]: c["close"] for c in candles}
    rows = []
    for hour, f in sorted(per_hour.items()):
        epoch = int(hour.replace(tzinfo=UTC).timestamp())
        close = closes.get(epoch)
        row = {"time": epoch, "hour": hour.replace(tzinfo=UTC).isoformat(), "model_version": f.model_version,
               "last_close": f.last_close, "median": f.quantiles.get("0.5"), "close": close}
        for name, (lo, hi) in _BOUNDS.items():
            row[f"interval_{name}"] = [f.quantiles.get(lo), f.quantiles.get(hi)]
            row[f"inside_{name}"] = None if close is None else bool(
                f.quantiles.get(lo) <= close <= f.quantiles.get(hi))
        rows.append(row)
    return rows


def coverage(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Share of the hours with a known close that fell inside each interval (``None`` when no
    hour's close is known yet), and how many hours that is."""
    known = [r for r in rows if r["close"] is not None]
    result: dict[str, Any] = {"hours": len(known), "recorded": len(rows)}
    for name in _BOUNDS:
        result[name] = sum(r[f"inside_{name}"] for r in known) / len(known) if known else None
    return result


def since_days(days: int) -> datetime:
    return utcnow() - timedelta(days=days)


def record_all(settings: Settings, store: ModelStore, sessions_of: sessionmaker) -> int:
    """Fetch and record every served symbol's forecast; the number recorded (failures are
    logged, one line each, and the others still recorded)."""
    done = 0
    for symbol in gateway.served_symbols(store):
        try:
            answer = gateway.forecast(settings, store, symbol)
        except gateway.ForecastUnavailable as exc:
            log.warning("forecast recorder: %s: %s", symbol, exc)
            continue
        with sessions_of() as db:
            record(db, answer)
        done += 1
    return done


class Recorder:
    """A daemon thread that calls :func:`record_all` now and then every ``minutes``."""

    def __init__(self, settings: Settings, store: ModelStore, sessions_of: sessionmaker, minutes: float) -> None:
        self.args = (settings, store, sessions_of)
        self.seconds = minutes * 60
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="forecast-recorder", daemon=True)

    def start(self) -> Recorder:
        self.thread.start()
        return self

    def _loop(self) -> None:
        while not self.stopped.is_set():
            try:
                record_all(*self.args)
            except Exception as exc:  # the store unreadable, the database down: try again later
                log.warning("forecast recorder: %s: %s", type(exc).__name__, exc)
            self.stopped.wait(self.seconds)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=30)
