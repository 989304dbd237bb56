"""Sign in and out. The sign-in form's CSRF token is bound to a signed pre-session cookie."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from make_us_rich.console import auth
from make_us_rich.console.db import utcnow
from make_us_rich.console.forms import Empty, LoginForm, read_form
from make_us_rich.console.web import (
    PRE_COOKIE,
    SESSION_COOKIE,
    App,
    Db,
    HTTPProblem,
    Member,
    client_address,
    safe_next,
)

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)


async def pre_nonce(request: Request, app: App) -> str | None:
    return app.sessions.pre_nonce(request.cookies.get(PRE_COOKIE))


Nonce = Annotated[str | None, Depends(pre_nonce)]


def _count_refused(app, address: str) -> None:
    with app.sessions_of() as db:
        auth.record_failure(db, app.settings, [auth.ThrottleKeys.of("", address).address])
        db.commit()


async def login_form(request: Request, app: App, nonce: Nonce) -> LoginForm:
    """The sign-in form; a refused one (a control character, an oversized field) is an attempt
    too, counted for the client's address."""
    try:
        return await read_form(request, app, nonce, LoginForm)
    except HTTPProblem as exc:
        if exc.status == 400:
            await run_in_threadpool(_count_refused, app, client_address(request))
        raise


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, app: App, nonce: Nonce, next: str = "/"):
    cookie = None
    if nonce is None:
        nonce, cookie = app.sessions.new_pre()
    response = app.render(request, "login.html", {"next": safe_next(next), "error": None, "email": ""},
                          seed=nonce)
    if cookie:
        app.set_cookie(response, PRE_COOKIE, cookie)
    return response


@router.post("/login", response_class=HTMLResponse)
def sign_in(request: Request, app: App, db: Db, form: Annotated[LoginForm, Depends(login_form)],
            nonce: Nonce) -> Response:
    address = client_address(request)
    with app.password_checks:
        started = time.monotonic()
        result = auth.authenticate(db, app.settings, form.email, form.password, address)
        if result.user is None:
            context = {"next": safe_next(form.next), "error": "Wrong e-mail or password.", "email": form.email}
            status, headers = 401, {}
            if result.retry_after:
                wait = int(result.retry_after + 0.999)
                until = utcnow() + timedelta(seconds=wait)
                context["error"] = f"Too many failed sign-ins: try again in {wait} s (at {until:%H:%M:%S} UTC)."
                status, headers = 429, {"Retry-After": str(wait)}
            log.info("sign-in refused from %s (%.0f ms)", address, 1000 * (time.monotonic() - started))
            response = app.render(request, "login.html", context, status=status, seed=nonce)
            response.headers.update(headers)
            return response
        cookie = app.sessions.start(db, result.user, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse(safe_next(form.next), status_code=303)
    app.set_cookie(response, SESSION_COOKIE, cookie)
    response.delete_cookie(PRE_COOKIE, path="/")
    return response


@router.post("/logout")
def sign_out(request: Request, app: App, db: Db, who: Member, form: Empty) -> Response:
    app.sessions.end(db, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
