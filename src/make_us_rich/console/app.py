"""The console's web application: ``create_app(settings)``. Routes are thin: they check input,
call the modules (:mod:`.auth`, :mod:`.tokens`, :mod:`.quota`, :mod:`.gateway`,
:mod:`.registry`) and render a template or JSON."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from importlib import resources
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select, text
from starlette.concurrency import run_in_threadpool
from starlette.middleware.base import BaseHTTPMiddleware

from make_us_rich.console import auth, gateway, migrate, quota, registry, tokens
from make_us_rich.console.db import ROLES, ApiToken, User, make_engine, session_factory, utcnow
from make_us_rich.console.settings import Settings
from make_us_rich.data import normalize_symbol
from make_us_rich.errors import ConfigError
from make_us_rich.store import ModelStore, StoreError

log = logging.getLogger(__name__)

SESSION_COOKIE = "mkrich_session"
PRE_COOKIE = "mkrich_pre"
MAX_BODY = 64 * 1024
MAX_FIELD = 2048
#: password checks at once (Argon2 takes ~64 MiB and ~0.15 s each): the rest wait their turn
PASSWORD_CHECKS = 2
#: seconds a symbol's chart data (candles + forecast) is reused, so page views do not each call
#: Binance and the inference endpoint
CHART_TTL = 60.0
LOGIN_FIELDS = {"email": auth.EMAIL_MAX, "password": auth.PASSWORD_MAX, "next": 512}
TOKEN_FIELDS = {"name": 64, "expires_days": 8}
NEW_USER_FIELDS = {"email": auth.EMAIL_MAX, "password": auth.PASSWORD_MAX, "role": 16, "monthly_quota": 12}
USER_FIELDS = {"role": 16, "monthly_quota": 12, "disabled": 8}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
PACKAGE = resources.files("make_us_rich.console")


class HTTPProblem(Exception):
    """An answer other than the page: status, message for the person or script, headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class LoginRequired(Exception):
    """No valid session: pages redirect to /login, JSON callers get 401."""


class SecurityHeaders(BaseHTTPMiddleware):
    """Refuses oversized or unsized bodies before any route reads them, and puts the security
    headers on every answer (errors and static files included)."""

    async def dispatch(self, request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            response: Response = PlainTextResponse(f"request body over {MAX_BODY} bytes", status_code=413)
        elif request.method in ("POST", "PUT", "PATCH") and length is None and \
                request.headers.get("transfer-encoding"):
            response = PlainTextResponse("send a Content-Length (chunked bodies are refused)", status_code=411)
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.path.startswith(("/api/", "/login", "/tokens", "/admin")):
            response.headers.setdefault("Cache-Control", "no-store")
        if request.url.scheme == "https" or getattr(request.app.state, "secure_cookies", False):
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response


def create_app(settings: Settings) -> FastAPI:
    """The console on ``settings.db_url`` (migrated separately: :func:`migrate.upgrade`)."""
    engine = make_engine(settings.db_url)
    Db = session_factory(engine)
    sessions = auth.Sessions(settings)
    store = ModelStore(settings.store)
    templates = Jinja2Templates(directory=str(PACKAGE / "templates"))
    app = FastAPI(title="make-us-rich console", version="1", docs_url=None, redoc_url=None,
                  description="Forecasts of the served models, with an API token and a monthly quota.")
    app.state.settings = settings
    app.state.engine = engine
    app.state.secure_cookies = settings.secure_cookies
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=str(PACKAGE / "static")), name="static")

    @contextmanager
    def database() -> Iterator[Any]:
        db = Db()
        try:
            yield db
        finally:
            db.close()

    # ------------------------------------------------------------------ helpers
    def client_address(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def current(request: Request, db) -> tuple[User, str]:
        found = sessions.user(db, request.cookies.get(SESSION_COOKIE))
        if found is None:
            raise LoginRequired()
        return found

    def set_cookie(response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax",
                            secure=settings.secure_cookies, path="/")

    def render(request: Request, name: str, context: dict[str, Any], status: int = 200,
               user: User | None = None, seed: str | None = None) -> HTMLResponse:
        ctx = {"user": user, "csrf": sessions.csrf_token(seed) if seed else "", **context}
        return templates.TemplateResponse(request, name, ctx, status_code=status)

    async def with_form(request: Request, fields: dict[str, int], handler, *args):
        """Read the form's body here, then run ``handler(request, form, *args)`` - which checks
        it (:func:`check_form`) and does the blocking work (database, Argon2) - in a worker
        thread, so that one slow request never stalls the others or the probes."""
        form = await request.form(max_files=0, max_fields=len(fields) + 2, max_part_size=MAX_FIELD)
        return await run_in_threadpool(handler, request, form, *args)

    def check_form(form, seed: str | None, fields: dict[str, int]) -> dict[str, str]:
        """The form's fields (each at most its length) after the CSRF check: 403 without a valid
        token, 400 for an oversized or repeated field; nothing has been written yet."""
        if not sessions.csrf_ok(seed, form.get("csrf") if isinstance(form.get("csrf"), str) else None):
            raise HTTPProblem(403, "the form's CSRF token is missing or wrong: reload the page and try again")
        values = {}
        for name, limit in fields.items():
            items = form.getlist(name)
            if len(items) > 1 or any(not isinstance(v, str) for v in items):
                raise HTTPProblem(400, f"field {name!r} must be given once, as text")
            value = items[0] if items else ""
            if len(value) > limit:
                raise HTTPProblem(400, f"field {name!r} is longer than {limit} characters")
            try:
                auth.check_text(name, value)
            except auth.InvalidInput as exc:
                raise HTTPProblem(400, str(exc)) from None
            values[name] = value
        return values

    def require_admin(user: User) -> None:
        if user.role != "admin":
            raise HTTPProblem(403, "this page is for administrators")

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")

    # ------------------------------------------------------------------ errors
    @app.exception_handler(HTTPProblem)
    async def _problem(request: Request, exc: HTTPProblem):
        if wants_json(request):
            return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)
        return templates.TemplateResponse(request, "error.html", {"user": None, "csrf": "", "status": exc.status,
                                                                  "message": exc.message},
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

    # ------------------------------------------------------------------ probes
    @app.get("/healthz", response_class=PlainTextResponse, include_in_schema=False)
    def healthz() -> str:
        return "ok"

    @app.get("/readyz", response_class=PlainTextResponse, include_in_schema=False)
    def readyz():
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            at, want = migrate.current(engine), migrate.head()
        except Exception as exc:
            return PlainTextResponse(f"database unreachable: {type(exc).__name__}", status_code=503)
        if at != want:
            return PlainTextResponse(f"schema at {at}, head is {want}: run mkrich console migrate",
                                     status_code=503)
        return PlainTextResponse("ready")

    # ------------------------------------------------------------------ sign in / out
    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str = "/"):
        nonce = sessions.pre_nonce(request.cookies.get(PRE_COOKIE))
        cookie = None
        if nonce is None:
            nonce, cookie = sessions.new_pre()
        response = render(request, "login.html", {"next": _safe_next(next), "error": None, "email": ""},
                          seed=nonce)
        if cookie:
            set_cookie(response, PRE_COOKIE, cookie, sessions.max_age)
        return response

    password_checks = threading.BoundedSemaphore(PASSWORD_CHECKS)

    @app.post("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login(request: Request):
        return await with_form(request, LOGIN_FIELDS, sign_in)

    def sign_in(request: Request, raw_form) -> Response:
        nonce = sessions.pre_nonce(request.cookies.get(PRE_COOKIE))
        address = client_address(request)
        try:
            form = check_form(raw_form, nonce, LOGIN_FIELDS)
        except HTTPProblem as exc:
            if exc.status == 400:  # a refused form is an attempt too: counted for the address
                with database() as db:
                    auth.record_failure(db, settings, [auth.ThrottleKeys.of("", address).address])
                    db.commit()
            raise
        with password_checks, database() as db:
            started = time.monotonic()
            result = auth.authenticate(db, settings, form["email"], form["password"], address)
            if result.user is None:
                context = {"next": _safe_next(form["next"]), "error": "Wrong e-mail or password.",
                           "email": form["email"]}
                headers = {}
                status = 401
                if result.retry_after:
                    wait = int(result.retry_after + 0.999)
                    until = utcnow() + timedelta(seconds=wait)
                    context["error"] = (f"Too many failed sign-ins: try again in {wait} s "
                                        f"(at {until:%H:%M:%S} UTC).")
                    headers["Retry-After"] = str(wait)
                    status = 429
                log.info("sign-in refused from %s (%.0f ms)", client_address(request),
                         1000 * (time.monotonic() - started))
                response = render(request, "login.html", context, status=status, seed=nonce)
                response.headers.update(headers)
                return response
            cookie = sessions.start(db, result.user, request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse(_safe_next(form["next"]), status_code=303)
        set_cookie(response, SESSION_COOKIE, cookie, sessions.max_age)
        response.delete_cookie(PRE_COOKIE, path="/")
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request):
        return await with_form(request, {}, sign_out)

    def sign_out(request: Request, raw_form) -> Response:
        with database() as db:
            user, raw = current(request, db)
            check_form(raw_form, raw, {})
            sessions.end(db, request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # ------------------------------------------------------------------ pages
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request):
        with database() as db:
            user, raw = current(request, db)
        try:
            symbols, error = gateway.served_symbols(store), None
        except gateway.ForecastUnavailable as exc:
            symbols, error = [], str(exc)
        return render(request, "home.html", {"symbols": symbols, "error": error}, user=user, seed=raw)

    @app.get("/symbols/{symbol}", response_class=HTMLResponse, include_in_schema=False)
    def symbol_page(request: Request, symbol: str):
        with database() as db:
            user, raw = current(request, db)
        sym = _symbol_or_problem(symbol)
        return render(request, "symbol.html", {"symbol": sym}, user=user, seed=raw)

    chart_cache: dict[str, tuple[float, dict[str, Any]]] = {}
    chart_lock = threading.Lock()

    @app.get("/symbols/{symbol}/chart.json", include_in_schema=False)
    def symbol_data(request: Request, symbol: str):
        """What the symbol page draws. Not counted against a quota (it is the page, not the
        API), so it is made at most once per symbol every CHART_TTL seconds, for everyone."""
        with database() as db:
            current(request, db)
        sym = _symbol_or_problem(symbol)
        with chart_lock:  # one refresh at a time: concurrent viewers wait for it, then share it
            cached = chart_cache.get(sym)
            if cached is not None and time.monotonic() - cached[0] < CHART_TTL:
                return JSONResponse(cached[1])
            try:
                data = {"symbol": sym, "candles": gateway.candles(settings, sym),
                        "quality": registry.quality(store, sym)}
                data["forecast"] = gateway.forecast(settings, store, sym)
            except gateway.ForecastUnavailable as exc:
                raise HTTPProblem(502, str(exc)) from None
            chart_cache[sym] = (time.monotonic(), data)
        return JSONResponse(data)

    @app.get("/models", response_class=HTMLResponse, include_in_schema=False)
    def models_page(request: Request):
        with database() as db:
            user, raw = current(request, db)
        try:
            symbols, error = registry.registry(store), None
        except (StoreError, ConfigError) as exc:
            symbols, error = [], f"the model store cannot be read: {exc}"
        return render(request, "models.html", {"registry": symbols, "error": error, "store": store.uri},
                      user=user, seed=raw)

    @app.get("/models/{symbol}/{version}/{name}", include_in_schema=False)
    def model_plot(request: Request, symbol: str, version: str, name: str):
        with database() as db:
            current(request, db)
        try:
            data = registry.plot(store, _symbol_or_problem(symbol, served=False), version, name)
        except (FileNotFoundError, StoreError, ConfigError):
            raise HTTPProblem(404, "no such plot") from None
        return Response(data, media_type="image/png")

    def tokens_page(request: Request, db, user: User, raw: str, new_token: str | None = None,
                    error: str | None = None, status: int = 200):
        rows = db.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())).all()
        usage = quota.token_usage(db, [r.id for r in rows])
        return render(request, "tokens.html", {
            "tokens": rows, "usage": usage, "new_token": new_token, "error": error,
            "used": quota.used(db, user.id), "quota": user.monthly_quota, "now": utcnow(),
        }, user=user, seed=raw, status=status)

    @app.get("/tokens", response_class=HTMLResponse, include_in_schema=False)
    def tokens_list(request: Request):
        with database() as db:
            user, raw = current(request, db)
            return tokens_page(request, db, user, raw)

    @app.post("/tokens", response_class=HTMLResponse, include_in_schema=False)
    async def tokens_create(request: Request):
        return await with_form(request, TOKEN_FIELDS, create_token)

    def create_token(request: Request, raw_form) -> Response:
        with database() as db:
            user, raw = current(request, db)
            form = check_form(raw_form, raw, TOKEN_FIELDS)
            days = form["expires_days"].strip()
            try:
                expires = int(days) if days else None
                _row, secret = tokens.create(db, user, form["name"], expires)
            except (ValueError, ConfigError) as exc:
                db.rollback()
                message = str(exc) if isinstance(exc, ConfigError) else "expiry must be a number of days"
                return tokens_page(request, db, user, raw, error=message, status=400)
            db.commit()
            return tokens_page(request, db, user, raw, new_token=secret, status=201)

    @app.post("/tokens/{token_id}/revoke", include_in_schema=False)
    async def tokens_revoke(request: Request, token_id: str):
        return await with_form(request, {}, revoke_token, _row_id(token_id, "no such active token of yours"))

    def revoke_token(request: Request, raw_form, token_id: int) -> Response:
        with database() as db:
            user, raw = current(request, db)
            check_form(raw_form, raw, {})
            if not tokens.revoke(db, user, token_id):
                db.rollback()
                raise HTTPProblem(404, "no such active token of yours")
            db.commit()
        return RedirectResponse("/tokens", status_code=303)

    # ------------------------------------------------------------------ admin
    def admin_page(request: Request, db, user: User, raw: str, error: str | None = None, status: int = 200):
        users = db.scalars(select(User).order_by(User.email)).all()
        usage = {u.id: quota.used(db, u.id) for u in users}
        return render(request, "admin_users.html", {"users": users, "usage": usage, "roles": ROLES,
                                                    "error": error, "default_quota": settings.default_quota},
                      user=user, seed=raw, status=status)

    @app.get("/admin/users", response_class=HTMLResponse, include_in_schema=False)
    def admin_users(request: Request):
        with database() as db:
            user, raw = current(request, db)
            require_admin(user)
            return admin_page(request, db, user, raw)

    @app.post("/admin/users", response_class=HTMLResponse, include_in_schema=False)
    async def admin_create(request: Request):
        return await with_form(request, NEW_USER_FIELDS, create_user)

    def create_user(request: Request, raw_form) -> Response:
        with database() as db:
            user, raw = current(request, db)
            require_admin(user)
            form = check_form(raw_form, raw, NEW_USER_FIELDS)
            try:
                auth.create_user(db, form["email"], form["password"], form["role"] or "member",
                                 _int(form["monthly_quota"], settings.default_quota))
            except ConfigError as exc:
                db.rollback()
                return admin_page(request, db, user, raw, error=str(exc), status=400)
            db.commit()
        return RedirectResponse("/admin/users", status_code=303)

    @app.post("/admin/users/{user_id}", response_class=HTMLResponse, include_in_schema=False)
    async def admin_update(request: Request, user_id: str):
        return await with_form(request, USER_FIELDS, update_user, _row_id(user_id, "no such user"))

    def update_user(request: Request, raw_form, user_id: int) -> Response:
        with database() as db:
            user, raw = current(request, db)
            require_admin(user)
            form = check_form(raw_form, raw, USER_FIELDS)
            target = db.get(User, user_id)
            if target is None:
                raise HTTPProblem(404, "no such user")
            try:
                role = form["role"] or target.role
                if role not in ROLES:
                    raise auth.InvalidInput(f"role must be one of {', '.join(ROLES)}")
                monthly = _int(form["monthly_quota"], target.monthly_quota)
                disabled = form["disabled"] in ("1", "on", "true")
                if target.id == user.id and (disabled or role != "admin"):
                    raise auth.InvalidInput("you cannot disable yourself or drop your own admin role")
            except ConfigError as exc:
                return admin_page(request, db, user, raw, error=str(exc), status=400)
            target.role, target.monthly_quota, target.disabled = role, monthly, disabled
            db.commit()
        return RedirectResponse("/admin/users", status_code=303)

    # ------------------------------------------------------------------ API
    @app.get("/api/v1/forecast/{symbol}", tags=["forecast"], responses={
        401: {"description": "missing, unknown, expired or revoked token"},
        400: {"description": "malformed symbol"}, 404: {"description": "no model serves this symbol"},
        429: {"description": "monthly quota exhausted (Retry-After: seconds to the next month, UTC)"},
        502: {"description": "the inference endpoint or the market data failed (no unit counted)"},
    })
    def api_forecast(request: Request, symbol: str):
        """The next hour's forecast of ``symbol`` (median, quantiles, 50 % and 90 % intervals).
        Send ``Authorization: Bearer <token>``; each successful call counts one unit of the
        token owner's monthly quota."""
        presented = tokens.bearer(request.headers.get("authorization"))
        with database() as db:
            found = tokens.resolve(db, presented)
            if found is None:
                raise HTTPProblem(401, "a valid API token is needed: Authorization: Bearer <token> "
                                       "(create one on /tokens)", {"WWW-Authenticate": "Bearer"})
            token, owner = found
            db.commit()
            try:
                sym = gateway.check_symbol(symbol, store)
            except gateway.UnknownSymbol as exc:
                raise HTTPProblem(404, str(exc)) from None
            except ConfigError as exc:
                raise HTTPProblem(400, str(exc)) from None
            except gateway.ForecastUnavailable as exc:
                raise HTTPProblem(503, str(exc)) from None
            now = utcnow()
            if not quota.take(db, owner.id, now):
                wait = quota.retry_after_seconds(now)
                raise HTTPProblem(429, f"the monthly quota of {owner.monthly_quota} calls is used up; it "
                                       f"resets at the start of next month (UTC), in {wait} s",
                                  {"Retry-After": str(wait)})
            try:
                answer = gateway.forecast(settings, store, sym)
            except gateway.ForecastUnavailable as exc:
                quota.give_back(db, owner.id, now)
                raise HTTPProblem(502, str(exc)) from None
            except BaseException:
                quota.give_back(db, owner.id, now)  # only a forecast delivered costs a unit
                raise
            token.last_used_at = utcnow()
            db.commit()
            quota.count_token_call(db, token.id)
        return answer

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def api_docs(request: Request):
        """The OpenAPI description rendered on the server (CSP allows no CDN scripts)."""
        return render(request, "api_docs.html", {"spec": app.openapi()})

    def _symbol_or_problem(raw: str, served: bool = True) -> str:
        try:
            return gateway.check_symbol(raw, store) if served else normalize_symbol(raw)
        except gateway.UnknownSymbol as exc:
            raise HTTPProblem(404, str(exc)) from None
        except ConfigError as exc:
            raise HTTPProblem(400, str(exc)) from None
        except gateway.ForecastUnavailable as exc:
            raise HTTPProblem(503, str(exc)) from None

    return app


_LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9/_.~%?=&-]{0,500}")


def _safe_next(target: str | None) -> str:
    """Only a local path is a place to go after signing in (no open redirect: no ``//host``,
    no backslash, no whitespace or control character that a browser would drop)."""
    if not target or not _LOCAL_PATH.fullmatch(target) or "//" in target:
        return "/"
    return target


#: the largest id of an INTEGER column (a 32-bit signed integer on PostgreSQL)
MAX_ROW_ID = 2**31 - 1


def _row_id(raw: str, missing: str) -> int:
    """A row id from the URL; anything that cannot be one (too large for the column, signed,
    not a number) is a row that does not exist: 404."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not 0 < int(raw) <= MAX_ROW_ID:
        raise HTTPProblem(404, missing)
    return int(raw)


def _int(value: str, default: int) -> int:
    value = (value or "").strip()
    if not value:
        return default
    if not value.isdigit() or len(value) > 10:
        raise auth.InvalidInput("the monthly quota must be a whole number from 0 to 1000000000")
    number = int(value)
    if number > 10**9:
        raise auth.InvalidInput("the monthly quota must be a whole number from 0 to 1000000000")
    return number
