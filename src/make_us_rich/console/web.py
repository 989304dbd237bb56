"""What the console's routers share: the application's state, the answers other than a page
(:class:`HTTPProblem`, :class:`LoginRequired`), the security headers, and the dependencies
(``Depends``) for the database session, the signed-in user and the administrator check."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker
from starlette.middleware.base import BaseHTTPMiddleware

from make_us_rich.console import auth, gateway, registry
from make_us_rich.console.db import User
from make_us_rich.console.settings import Settings
from make_us_rich.data import normalize_symbol
from make_us_rich.errors import ConfigError, UnknownSymbolError
from make_us_rich.store import ModelStore

SESSION_COOKIE = "mkrich_session"
PRE_COOKIE = "mkrich_pre"
MAX_BODY = 64 * 1024
BODY_TIMEOUT = 10.0  # seconds to receive a body: the console's are forms of a few hundred bytes
#: password checks at once (Argon2 takes ~64 MiB and ~0.15 s each): the rest wait their turn
PASSWORD_CHECKS = 2
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
#: the largest id of an INTEGER column (a 32-bit signed integer on PostgreSQL)
MAX_ROW_ID = 2**31 - 1


class HTTPProblem(Exception):
    """An answer other than the page: status, message for the person or script, headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class LoginRequired(Exception):
    """No valid session: pages redirect to /login, JSON callers get 401."""


#: seconds the console keeps what it found of the model serving a symbol
MODEL_TTL = 60.0


@dataclass
class Console:
    """The application's state (``app.state.console``), made once by ``create_app``."""

    settings: Settings
    engine: Engine
    sessions_of: sessionmaker
    sessions: auth.Sessions
    store: ModelStore
    templates: Jinja2Templates
    password_checks: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(PASSWORD_CHECKS))
    chart_cache: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    chart_lock: threading.Lock = field(default_factory=threading.Lock)
    model_cache: dict[str, tuple[float, dict[str, Any] | None]] = field(default_factory=dict)

    def render(self, request: Request, name: str, context: dict[str, Any], status: int = 200,
               user: User | None = None, seed: str | None = None) -> HTMLResponse:
        ctx = {"user": user, "csrf": self.sessions.csrf_token(seed) if seed else "", **context}
        return self.templates.TemplateResponse(request, name, ctx, status_code=status)

    def set_cookie(self, response: Response, name: str, value: str) -> None:
        response.set_cookie(name, value, max_age=self.sessions.max_age, httponly=True, samesite="lax",
                            secure=self.settings.secure_cookies, path="/")

    def serving_model(self, symbol: str) -> dict[str, Any] | None:
        """:func:`registry.serving_model`, kept :data:`MODEL_TTL` seconds: finding the symbols
        that share a universal model reads every served symbol's pointer."""
        import time

        cached = self.model_cache.get(symbol)
        if cached is not None and time.monotonic() - cached[0] < MODEL_TTL:
            return cached[1]
        info = registry.serving_model(self.store, symbol)
        self.model_cache[symbol] = (time.monotonic(), info)
        return info

    def symbol(self, raw: str, served: bool = True) -> str:
        """``raw`` as a symbol (served by a model unless ``served=False``), else 400/404/503."""
        try:
            return gateway.check_symbol(raw, self.store) if served else normalize_symbol(raw)
        except UnknownSymbolError as exc:
            raise HTTPProblem(404, str(exc)) from None
        except ConfigError as exc:
            raise HTTPProblem(400, str(exc)) from None
        except gateway.ForecastUnavailable as exc:
            raise HTTPProblem(503, str(exc)) from None


async def console(request: Request) -> Console:
    return request.app.state.console


App = Annotated[Console, Depends(console)]


def database(app: App) -> Iterator[DbSession]:
    """One database session per request, closed after it."""
    db = app.sessions_of()
    try:
        yield db
    finally:
        db.close()


Db = Annotated[DbSession, Depends(database)]


@dataclass
class SignedIn:
    """The signed-in user and the session's raw id (what the forms' CSRF tokens are bound to)."""

    user: User
    session: str


def signed_in(request: Request, app: App, db: Db) -> SignedIn:
    found = app.sessions.user(db, request.cookies.get(SESSION_COOKIE))
    if found is None:
        raise LoginRequired()
    return SignedIn(*found)


Member = Annotated[SignedIn, Depends(signed_in)]


def administrator(who: Member) -> SignedIn:
    if who.user.role != "admin":
        raise HTTPProblem(403, "this page is for administrators")
    return who


Admin = Annotated[SignedIn, Depends(administrator)]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def row_id(raw: str, missing: str) -> int:
    """A row id from the URL; anything that cannot be one (too large for the column, signed,
    not a number) is a row that does not exist: 404."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not 0 < int(raw) <= MAX_ROW_ID:
        raise HTTPProblem(404, missing)
    return int(raw)


_LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9/_.~%?=&-]{0,500}")


def safe_next(target: str | None) -> str:
    """Only a local path is a place to go after signing in (no open redirect: no ``//host``,
    no backslash, no whitespace or control character that a browser would drop)."""
    if not target or not _LOCAL_PATH.fullmatch(target) or "//" in target:
        return "/"
    return target


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


class SecurityHeaders(BaseHTTPMiddleware):
    """Refuses chunked bodies, and puts the security headers on every answer (errors, static
    files and :class:`~make_us_rich.asgi.BodyLimit`'s refusals of oversized or slow bodies)."""

    async def dispatch(self, request: Request, call_next):
        length = request.headers.get("content-length")
        response: Response
        if request.method in ("POST", "PUT", "PATCH") and length is None and \
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
