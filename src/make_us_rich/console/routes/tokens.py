"""A user's API tokens: list, create (the secret shown once), revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from make_us_rich.console import auth, quota, tokens
from make_us_rich.console.db import ApiToken, utcnow
from make_us_rich.console.forms import Empty, Token
from make_us_rich.console.web import App, Db, HTTPProblem, Member, SignedIn, row_id

router = APIRouter(include_in_schema=False)
NOT_FOUND = "no such active token of yours"


def token_id(token_id: str) -> int:
    return row_id(token_id, NOT_FOUND)


def tokens_page(request: Request, app, db, who: SignedIn, new_token: str | None = None,
                error: str | None = None, status: int = 200) -> HTMLResponse:
    user = who.user
    rows = db.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())).all()
    return app.render(request, "tokens.html", {
        "tokens": rows, "usage": quota.token_usage(db, [r.id for r in rows]), "new_token": new_token,
        "error": error, "used": quota.used(db, user.id), "quota": user.monthly_quota, "now": utcnow(),
    }, user=user, seed=who.session, status=status)


@router.get("/tokens", response_class=HTMLResponse)
def tokens_list(request: Request, app: App, db: Db, who: Member):
    return tokens_page(request, app, db, who)


@router.post("/tokens", response_class=HTMLResponse)
def create_token(request: Request, app: App, db: Db, who: Member, form: Token) -> Response:
    try:
        _row, secret = tokens.create(db, who.user, form.name, form.expiry())
    except auth.InvalidInput as exc:
        db.rollback()
        return tokens_page(request, app, db, who, error=str(exc), status=400)
    db.commit()
    return tokens_page(request, app, db, who, new_token=secret, status=201)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(ident: Annotated[int, Depends(token_id)], db: Db, who: Member, form: Empty) -> Response:
    if not tokens.revoke(db, who.user, ident):
        db.rollback()
        raise HTTPProblem(404, NOT_FOUND)
    db.commit()
    return RedirectResponse("/tokens", status_code=303)
