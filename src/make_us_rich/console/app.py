"""The console's web application: ``create_app(settings)`` puts together the routers (one per
area: :mod:`.routes.auth`, :mod:`.routes.pages`, :mod:`.routes.tokens`, :mod:`.routes.admin`,
:mod:`.routes.api`), the security headers and the error answers. Routes are thin: they take
their database session, user and form from dependencies (:mod:`.web`, :mod:`.forms`), call the
modules (:mod:`.auth`, :mod:`.tokens`, :mod:`.quota`, :mod:`.gateway`, :mod:`.registry`) and
render a template or JSON."""

from __future__ import annotations

from contextlib import asynccontextmanager
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from make_us_rich.asgi import BodyLimit
from make_us_rich.console import auth, forecasts
from make_us_rich.console.db import make_engine, session_factory
from make_us_rich.console.routes import admin, api, history, pages, tokens
from make_us_rich.console.routes import auth as sign_in
from make_us_rich.console.settings import Settings
from make_us_rich.console.web import (
    BODY_TIMEOUT,
    MAX_BODY,
    PACKAGE,
    Console,
    HTTPProblem,
    LoginRequired,
    SecurityHeaders,
    wants_json,
)
from make_us_rich.store import ModelStore


def create_app(settings: Settings) -> FastAPI:
    """The console on ``settings.db_url`` (migrated separately: :func:`migrate.upgrade`)."""
    engine = make_engine(settings.db_url)
    state = Console(settings=settings, engine=engine, sessions_of=session_factory(engine),
                    sessions=auth.Sessions(settings), store=ModelStore(settings.store),
                    templates=Jinja2Templates(directory=str(PACKAGE / "templates")))

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        recorder = None
        if settings.record_minutes > 0:
            recorder = forecasts.Recorder(settings, state.store, state.sessions_of, settings.record_minutes).start()
        yield
        if recorder is not None:
            recorder.stop()

    app = FastAPI(title="make-us-rich console", version="1", docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Forecasts of the served models, with an API token and a monthly quota.")
    app.state.console = state
    app.state.settings = settings
    app.state.engine = engine
    app.state.secure_cookies = settings.secure_cookies
    app.add_middleware(BodyLimit, max_body=MAX_BODY, timeout=BODY_TIMEOUT)  # inside SecurityHeaders: its refusals get the headers
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=str(PACKAGE / "static")), name="static")
    for router in (pages.router, history.router, sign_in.router, tokens.router, admin.router, api.router):
        app.include_router(router)

    @app.exception_handler(HTTPProblem)
    async def _problem(request: Request, exc: HTTPProblem):
        if wants_json(request):
            return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)
        return state.templates.TemplateResponse(
            request, "error.html", {"user": None, "csrf": "", "status": exc.status, "message": exc.message},
            status_code=exc.status, headers=exc.headers)

    @app.exception_handler(auth.InvalidInput)
    async def _invalid(request: Request, exc: auth.InvalidInput):
        return await _problem(request, HTTPProblem(400, str(exc)))

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired):
        if wants_json(request):
            return JSONResponse({"error": "sign in first"}, status_code=401)
        target = request.url.path if request.method == "GET" else "/"
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    return app
