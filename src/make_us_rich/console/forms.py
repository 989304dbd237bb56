"""The console's forms as pydantic models: each field with its length limit, no control
character in any of them, each given at most once as text. A form is read only after its CSRF
token checks out (403 otherwise); a field it refuses is a 400 naming the field. Nothing has been
written to the database when either happens."""

from __future__ import annotations

from typing import Annotated, Any, Self, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from starlette.datastructures import FormData

from make_us_rich.console import auth
from make_us_rich.console.db import EMAIL_MAX, TOKEN_NAME_MAX
from make_us_rich.console.web import App, HTTPProblem, Member

MAX_FIELD = 2048
QUOTA_MAX = 10**9


class Form(BaseModel):
    """A submitted form: the fields a subclass declares, each at most its ``max_length``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*")
    @classmethod
    def _no_control_character(cls, value: str, info: ValidationInfo) -> str:
        auth.check_text(info.field_name, value)
        return value

    @classmethod
    def parse(cls, raw: FormData) -> Self:
        """The model of a submitted form; a 400 that names the field it refuses."""
        values = {}
        for name in cls.model_fields:
            items = raw.getlist(name)
            if len(items) > 1 or any(not isinstance(v, str) for v in items):
                raise HTTPProblem(400, f"field {name!r} must be given once, as text")
            if items:
                values[name] = items[0]
        try:
            return cls(**values)
        except ValidationError as exc:
            raise HTTPProblem(400, _message(exc.errors()[0])) from None


F = TypeVar("F", bound=Form)


def _message(error: dict[str, Any]) -> str:
    name = ".".join(str(part) for part in error["loc"])
    if error["type"] == "string_too_long":
        return f"field {name!r} is longer than {error['ctx']['max_length']} characters"
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    return f"field {name!r}: {error['msg']}"


def whole_number(value: str, default: int, what: str, high: int) -> int:
    """``value`` as a whole number from 0 to ``high`` (``default`` when empty)."""
    value = value.strip()
    if not value:
        return default
    if not value.isascii() or not value.isdigit() or len(value) > len(str(high)) or int(value) > high:
        raise auth.InvalidInput(f"{what} must be a whole number from 0 to {high}")
    return int(value)


class LoginForm(Form):
    email: str = Field("", max_length=EMAIL_MAX)
    password: str = Field("", max_length=auth.PASSWORD_MAX)
    next: str = Field("", max_length=512)


class EmptyForm(Form):
    """A form with only its CSRF token (sign out, revoke)."""


class TokenForm(Form):
    name: str = Field("", max_length=TOKEN_NAME_MAX)
    expires_days: str = Field("", max_length=8)

    def expiry(self) -> int | None:
        days = self.expires_days.strip()
        if not days:
            return None
        if not days.isascii() or not days.isdigit():
            raise auth.InvalidInput("expiry must be a number of days")
        return int(days)


class NewUserForm(Form):
    email: str = Field("", max_length=EMAIL_MAX)
    password: str = Field("", max_length=auth.PASSWORD_MAX)
    role: str = Field("", max_length=16)
    monthly_quota: str = Field("", max_length=12)

    def quota(self, default: int) -> int:
        return whole_number(self.monthly_quota, default, "the monthly quota", QUOTA_MAX)


class UserForm(Form):
    role: str = Field("", max_length=16)
    monthly_quota: str = Field("", max_length=12)
    disabled: str = Field("", max_length=8)

    def quota(self, default: int) -> int:
        return whole_number(self.monthly_quota, default, "the monthly quota", QUOTA_MAX)

    def is_disabled(self) -> bool:
        return self.disabled in ("1", "on", "true")


async def read_form(request: Request, app: App, seed: str | None, model: type[F]) -> F:
    """The body (read here, in the event loop; the route's blocking work then runs in a worker
    thread) as ``model``, after the CSRF check against ``seed``."""
    raw = await request.form(max_files=0, max_fields=len(model.model_fields) + 2, max_part_size=MAX_FIELD)
    token = raw.get("csrf")
    if not app.sessions.csrf_ok(seed, token if isinstance(token, str) else None):
        raise HTTPProblem(403, "the form's CSRF token is missing or wrong: reload the page and try again")
    return model.parse(raw)


def form(model: type[F]) -> Any:
    """``Depends`` on a signed-in user's form ``model`` (its CSRF token bound to the session)."""

    async def dependency(request: Request, app: App, who: Member) -> F:
        return await read_form(request, app, who.session, model)

    return Depends(dependency)


Token = Annotated[TokenForm, form(TokenForm)]
Empty = Annotated[EmptyForm, form(EmptyForm)]
NewUser = Annotated[NewUserForm, form(NewUserForm)]
UserUpdate = Annotated[UserForm, form(UserForm)]
