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


#: the longest horizon a request may name, hours: the longest a model may have (a month,
#: ``make_us_rich.horizons.MAX_HORIZON``; not imported: that module needs scipy, which the
#: console's install lacks)
MAX_HORIZON = 720

HORIZON_PARAMETER = {
    "name": "horizon", "in": "query", "required": False,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_HORIZON},
    "description": "hours ahead: the forecast of the close that many hours after the last candle "
                   "alone (`horizon` and `forecast_time` say which). Left out: the next hour at the top "
                   "level and every horizon the model serves under `horizons`. A horizon the model "
                   "does not serve is a 400 that names the served ones.",
    "example": 24,
}


def requested_horizon(request: Request) -> int | None:
    """The ``?horizon=`` of ``request`` in hours (``None`` without one), else 400."""
    values = request.query_params.getlist("horizon")
    if not values:
        return None
    if len(values) > 1:
        raise HTTPProblem(400, "give horizon= once (hours ahead, e.g. horizon=24), or leave it out for every horizon")
    raw = values[0].strip()
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_HORIZON:
        raise HTTPProblem(400, f"horizon must be a whole number of hours ahead, 1 to {MAX_HORIZON} "
                               f"(e.g. horizon=24), not {values[0][:20]!r}")
    return int(raw)


@router.get("/forecast/{symbol}", openapi_extra={"parameters": [HORIZON_PARAMETER]}, responses={
    401: {"description": "missing, unknown, expired or revoked token"},
    400: {"description": "malformed symbol, a horizon that is not a whole number of hours, or one the "
                         "model does not serve (the answer names the served ones; no unit counted)"},
    404: {"description": "no model serves this symbol"},
    429: {"description": "monthly quota exhausted (Retry-After: seconds to the next month, UTC)"},
    502: {"description": "the inference endpoint or the market data failed (no unit counted)"},
})
def api_forecast(request: Request, app: App, db: Db, found: Annotated[tuple[ApiToken, User], Depends(caller)],
                 symbol: str):
    """The forecast of `symbol`: the next hour's (median, quantiles, 50 % and 90 % intervals),
    and under `horizons` the same for every horizon the model serves (1 h first; e.g. 1, 4 and
    24 hours ahead, each with the hour it is for); `?horizon=24` answers that horizon alone.
    Send `Authorization: Bearer <token>`; each successful call counts one unit of the
    token owner's monthly quota."""
    token, owner = found
    sym = app.symbol(symbol)
    hours = requested_horizon(request)
    if hours is not None:
        try:
            gateway.check_horizon(app.store, sym, hours)
        except gateway.UnknownHorizonError as exc:
            raise HTTPProblem(400, str(exc)) from None
        except gateway.ForecastUnavailable as exc:
            raise HTTPProblem(502, str(exc)) from None
    now = utcnow()
    if not quota.take(db, owner.id, now):
        wait = quota.retry_after_seconds(now)
        raise HTTPProblem(429, f"the monthly quota of {owner.monthly_quota} calls is used up; it "
                               f"resets at the start of next month (UTC), in {wait} s",
                          {"Retry-After": str(wait)})
    try:
        answer = gateway.forecast(app.settings, app.store, sym)
        forecasts.keep(db, answer)
        if hours is not None:
            answer = gateway.at_horizon(answer, hours)
    except gateway.ForecastUnavailable as exc:
        quota.give_back(db, owner.id, now)
        raise HTTPProblem(502, str(exc)) from None
    except gateway.UnknownHorizonError as exc:  # the store names it, the endpoint does not serve it
        quota.give_back(db, owner.id, now)
        raise HTTPProblem(502, f"the inference endpoint does not answer a horizon its model serves: {exc}") from None
    except BaseException:
        quota.give_back(db, owner.id, now)  # only a forecast delivered costs a unit
        raise
    token.last_used_at = utcnow()
    db.commit()
    quota.count_token_call(db, token.id)
    return answer
