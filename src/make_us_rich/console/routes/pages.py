"""The pages of a signed-in user (symbols, a symbol's chart, the model registry, the API's
description) and the probes."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from sqlalchemy import text

from make_us_rich.console import forecasts, gateway, migrate, registry
from make_us_rich.console.web import App, Console, Db, HTTPProblem, Member
from make_us_rich.errors import ConfigError
from make_us_rich.store import StoreError

#: seconds a symbol's chart data (candles + forecast) is reused, so page views do not each call
#: Binance and the inference endpoint
CHART_TTL = 60.0

router = APIRouter(include_in_schema=False)


@router.get("/healthz", response_class=PlainTextResponse)
def healthz() -> str:
    return "ok"


@router.get("/readyz", response_class=PlainTextResponse)
def readyz(app: App):
    try:
        with app.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        at, want = migrate.current(app.engine), migrate.head()
    except Exception as exc:
        return PlainTextResponse(f"database unreachable: {type(exc).__name__}", status_code=503)
    if at != want:
        return PlainTextResponse(f"schema at {at}, head is {want}: run mkrich console migrate", status_code=503)
    return PlainTextResponse("ready")


def chart_data(app: Console, sym: str) -> dict[str, Any]:
    """Candles, test scores and the forecast of ``sym`` (every horizon served), made at most once every
    CHART_TTL seconds for everyone (page views do not each call Binance and the inference
    endpoint); each forecast obtained is recorded. :class:`gateway.ForecastUnavailable` when
    the klines or the forecast cannot be had."""
    with app.chart_lock:  # one refresh at a time: concurrent viewers wait for it, then share it
        cached = app.chart_cache.get(sym)
        if cached is not None and time.monotonic() - cached[0] < CHART_TTL:
            return cached[1]
        data: dict[str, Any] = {"symbol": sym, "candles": gateway.candles(app.settings, sym),
                "quality": registry.quality(app.store, sym)}
        data["forecast"] = gateway.forecast(app.settings, app.store, sym)
        with app.sessions_of() as db:
            forecasts.keep(db, data["forecast"])
        app.chart_cache[sym] = (time.monotonic(), data)
    return data


def replay(app: Console) -> str | None:
    """The data source when it is a replay (the bundled sample or a csv file), else None."""
    return None if app.settings.source == "binance" else app.settings.source


def _age_hours(iso: str | None) -> float | None:
    if not iso:
        return None
    when = datetime.fromisoformat(iso)
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return (datetime.now(UTC) - when).total_seconds() / 3600


@router.get("/", response_class=HTMLResponse)
def home(request: Request, app: App, who: Member):
    """Every served symbol in a row: last close, the 90 % interval of the next hour and of the
    longest horizon served, the serving model's version, age and gate decision."""
    try:
        symbols, error = gateway.served_symbols(app.store), None
    except gateway.ForecastUnavailable as exc:
        symbols, error = [], str(exc)
    rows, hour = [], None
    for sym in symbols:
        row: dict[str, Any] = {"symbol": sym, "gate": None}
        try:  # the serving model passed the gate; say so when a newer one did not
            newest = (app.store.versions(sym) or [{}])[-1]
            serving = (app.store.latest(sym) or {}).get("version")
            row["gate"] = "passed" if newest.get("version") == serving else \
                f"serving passed; newest {newest.get('status', 'unknown')} ({(newest.get('published') or '?')[:16]})"
        except Exception:  # a malformed manifest or pointer: the row says unknown
            row["gate"] = "unknown"
        try:
            f = chart_data(app, sym)["forecast"]
            row.update(last_close=f["last_close"], interval_90=f["interval_90"], longest=f["horizons"][-1],
                       version=f["model_version"], age=_age_hours(f["model_created"]), hour=f["forecast_time"])
            hour = hour or f["forecast_time"]
        except gateway.ForecastUnavailable as exc:
            row["error"] = str(exc)
        rows.append(row)
    return app.render(request, "home.html", {"rows": rows, "error": error, "replay": replay(app),
                                             "replay_hour": hour}, user=who.user, seed=who.session)


@router.get("/symbols/{symbol}", response_class=HTMLResponse)
def symbol_page(request: Request, app: App, who: Member, db: Db, symbol: str):
    sym = app.symbol(symbol)
    try:
        data, error = chart_data(app, sym), None
        candles, forecast = data["candles"], data["forecast"]
    except gateway.ForecastUnavailable as exc:
        candles, forecast, error = [], None, str(exc)
    start = datetime.fromtimestamp(candles[0]["time"], UTC).replace(tzinfo=None) if candles \
        else forecasts.since_days(app.settings.chart_days)
    rows = forecasts.history(db, sym, candles, since=start)
    longer = [(h, forecasts.coverage(forecasts.history(db, sym, candles, since=start, horizon=h)))
              for h in forecasts.recorded_horizons(db, sym, since=start) if h != 1]
    return app.render(request, "symbol.html", {
        "symbol": sym, "rows": list(reversed(rows)), "coverage": forecasts.coverage(rows), "error": error,
        "longer": longer,
        "replay": replay(app), "record_minutes": app.settings.record_minutes,
        "model": app.serving_model(sym), "forecast": forecast,
    }, user=who.user, seed=who.session)


@router.get("/symbols/{symbol}/chart.json")
def symbol_data(app: App, who: Member, db: Db, symbol: str):
    """What the symbol page draws, with the recorded forecasts of the candles' days against
    their closes. Not counted against a quota (it is the page, not the API)."""
    sym = app.symbol(symbol)
    try:
        data = chart_data(app, sym)
    except gateway.ForecastUnavailable as exc:
        raise HTTPProblem(502, str(exc)) from None
    start = datetime.fromtimestamp(data["candles"][0]["time"], UTC).replace(tzinfo=None) if data["candles"] else None
    rows = forecasts.history(db, sym, data["candles"], since=start)
    return JSONResponse({**data, "history": rows, "coverage": forecasts.coverage(rows)})


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request, app: App, who: Member):
    try:
        symbols, error = registry.registry(app.store), None
    except (StoreError, ConfigError) as exc:
        symbols, error = [], f"the model store cannot be read: {exc}"
    return app.render(request, "models.html", {"registry": symbols, "error": error, "store": app.store.uri},
                      user=who.user, seed=who.session)


@router.get("/models/{symbol}/{version}/{name}")
def model_plot(app: App, who: Member, symbol: str, version: str, name: str):
    try:
        data = registry.plot(app.store, app.symbol(symbol, served=False), version, name)
    except (FileNotFoundError, StoreError, ConfigError):
        raise HTTPProblem(404, "no such plot") from None
    return Response(data, media_type="image/png")


@router.get("/docs", response_class=HTMLResponse)
def api_docs(request: Request, app: App):
    """The OpenAPI description rendered on the server (CSP allows no CDN scripts)."""
    return app.render(request, "api_docs.html", {"spec": request.app.openapi()})
