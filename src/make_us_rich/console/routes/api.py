"""The prediction API: ``GET /api/v1/forecast/{symbol}`` with a bearer token, counted against
the token owner's monthly quota."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from make_us_rich.console import forecasts, gateway, quota, tokens
from make_us_rich.console.db import ApiToken, User, utcnow
from make_us_rich.console.web import App, Db, HTTPProblem

router = APIRouter(prefix="/api/v1", tags=["forecast"])


def caller(request: Request, db: Db) -> tuple[ApiToken, User]:
    """The live token presented in ``Authorization: Bearer`` and its owner, else 401."""
    found = tokens.resolve(db, tokens.bearer(request.headers.get("authorization")))
    if found is None:
        raise HTTPProblem(401, "a valid API token is needed: Authorization: Bearer <token> "
                               "(create one on /tokens)", {"WWW-Authenticate": "Bearer"})
    db.commit()
    return found


@router.get("/forecast/{symbol}", responses={
    401: {"description": "missing, unknown, expired or revoked token"},
    400: {"description": "malformed symbol"}, 404: {"description": "no model serves this symbol"},
    429: {"description": "monthly quota exhausted (Retry-After: seconds to the next month, UTC)"},
    502: {"description": "the inference endpoint or the market data failed (no unit counted)"},
})
def api_forecast(app: App, db: Db, found: Annotated[tuple[ApiToken, User], Depends(caller)], symbol: str):
    """The next hour's forecast of ``symbol`` (median, quantiles, 50 % and 90 % intervals).
    Send ``Authorization: Bearer <token>``; each successful call counts one unit of the
    token owner's monthly quota."""
    token, owner = found
    sym = app.symbol(symbol)
    now = utcnow()
    if not quota.take(db, owner.id, now):
        wait = quota.retry_after_seconds(now)
        raise HTTPProblem(429, f"the monthly quota of {owner.monthly_quota} calls is used up; it "
                               f"resets at the start of next month (UTC), in {wait} s",
                          {"Retry-After": str(wait)})
    try:
        answer = gateway.forecast(app.settings, app.store, sym)
    except gateway.ForecastUnavailable as exc:
        quota.give_back(db, owner.id, now)
        raise HTTPProblem(502, str(exc)) from None
    except BaseException:
        quota.give_back(db, owner.id, now)  # only a forecast delivered costs a unit
        raise
    token.last_used_at = utcnow()
    db.commit()
    quota.count_token_call(db, token.id)
    forecasts.keep(db, answer)
    return answer
