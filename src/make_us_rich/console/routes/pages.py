"""The pages of a signed-in user (symbols, a symbol's chart, the model registry, the API's
description) and the probes."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from sqlalchemy import text

from make_us_rich.console import gateway, migrate, registry
from make_us_rich.console.web import App, HTTPProblem, Member
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


@router.get("/", response_class=HTMLResponse)
def home(request: Request, app: App, who: Member):
    try:
        symbols, error = gateway.served_symbols(app.store), None
    except gateway.ForecastUnavailable as exc:
        symbols, error = [], str(exc)
    return app.render(request, "home.html", {"symbols": symbols, "error": error}, user=who.user, seed=who.session)


@router.get("/symbols/{symbol}", response_class=HTMLResponse)
def symbol_page(request: Request, app: App, who: Member, symbol: str):
    return app.render(request, "symbol.html", {"symbol": app.symbol(symbol)}, user=who.user, seed=who.session)


@router.get("/symbols/{symbol}/chart.json")
def symbol_data(app: App, who: Member, symbol: str):
    """What the symbol page draws. Not counted against a quota (it is the page, not the
    API), so it is made at most once per symbol every CHART_TTL seconds, for everyone."""
    sym = app.symbol(symbol)
    with app.chart_lock:  # one refresh at a time: concurrent viewers wait for it, then share it
        cached = app.chart_cache.get(sym)
        if cached is not None and time.monotonic() - cached[0] < CHART_TTL:
            return JSONResponse(cached[1])
        try:
            data = {"symbol": sym, "candles": gateway.candles(app.settings, sym),
                    "quality": registry.quality(app.store, sym)}
            data["forecast"] = gateway.forecast(app.settings, app.store, sym)
        except gateway.ForecastUnavailable as exc:
            raise HTTPProblem(502, str(exc)) from None
        app.chart_cache[sym] = (time.monotonic(), data)
    return JSONResponse(data)


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
