"""Administrators manage users: create, disable, role, monthly quota."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from make_us_rich.console import auth, quota
from make_us_rich.console.db import ROLES, User
from make_us_rich.console.forms import NewUser, UserUpdate
from make_us_rich.console.web import Admin, App, Db, HTTPProblem, SignedIn, row_id

router = APIRouter(prefix="/admin", include_in_schema=False)


def user_id(user_id: str) -> int:
    return row_id(user_id, "no such user")


def users_page(request: Request, app, db, who: SignedIn, error: str | None = None,
               status: int = 200) -> HTMLResponse:
    users = db.scalars(select(User).order_by(User.email)).all()
    usage = {u.id: quota.used(db, u.id) for u in users}
    return app.render(request, "admin_users.html", {
        "users": users, "usage": usage, "roles": ROLES, "error": error,
        "default_quota": app.settings.default_quota,
    }, user=who.user, seed=who.session, status=status)


@router.get("/users", response_class=HTMLResponse)
def admin_users(request: Request, app: App, db: Db, who: Admin):
    return users_page(request, app, db, who)


@router.post("/users", response_class=HTMLResponse)
def create_user(request: Request, app: App, db: Db, who: Admin, form: NewUser) -> Response:
    try:
        auth.create_user(db, form.email, form.password, form.role or "member",
                         form.quota(app.settings.default_quota))
    except auth.InvalidInput as exc:
        db.rollback()
        return users_page(request, app, db, who, error=str(exc), status=400)
    db.commit()
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/users/{user_id}", response_class=HTMLResponse)
def update_user(request: Request, ident: Annotated[int, Depends(user_id)], app: App, db: Db, who: Admin,
                form: UserUpdate) -> Response:
    target = db.get(User, ident)
    if target is None:
        raise HTTPProblem(404, "no such user")
    try:
        role = form.role or target.role
        if role not in ROLES:
            raise auth.InvalidInput(f"role must be one of {', '.join(ROLES)}")
        monthly = form.quota(target.monthly_quota)
        disabled = form.is_disabled()
        if target.id == who.user.id and (disabled or role != "admin"):
            raise auth.InvalidInput("you cannot disable yourself or drop your own admin role")
    except auth.InvalidInput as exc:
        return users_page(request, app, db, who, error=str(exc), status=400)
    target.role, target.monthly_quota, target.disabled = role, monthly, disabled
    db.commit()
    return RedirectResponse("/admin/users", status_code=303)
