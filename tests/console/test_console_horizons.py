"""Forecast horizons in the console and its API (issue 22), against the real ``mkrich serve``
serving a tiny real universal model of the 1, 4 and 24 hour horizons: every served horizon in
the answer, ``?horizon=`` alone, an unserved horizon refused with the served ones named, the
symbol page's table and the home page's column, and each horizon recorded and compared with the
close of the hour it was for."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from console_helpers import MEMBER, create_token, settings_for, signed_in

from make_us_rich.console import forecasts, gateway, quota
from make_us_rich.console.db import session_factory
from make_us_rich.data import load_klines
from make_us_rich.predict_client import predict_next_close
from make_us_rich.store import ModelStore

pytest.importorskip("kserve")

#: the sample's last candle: 2023-12-31 23:00 UTC
LAST = datetime(2023, 12, 31, 23, tzinfo=UTC)
LEVELS = {"0.05": "q05", "0.25": "q25", "0.5": "q50", "0.75": "q75", "0.95": "q95"}


def test_every_served_horizon_and_one_alone(make_console, engine, users, horizon_store, horizon_server):
    console = make_console(store=horizon_store, inference_url=horizon_server)
    token = create_token(signed_in(console, MEMBER))
    headers = {"Authorization": f"Bearer {token}"}
    with console.client() as api:
        body = api.get("/api/v1/forecast/BTCEUR", headers=headers).json()
        alone = {h: api.get(f"/api/v1/forecast/BTCEUR?horizon={h}", headers=headers) for h in (1, 4, 24)}
        unserved = api.get("/api/v1/forecast/BTCEUR?horizon=12", headers=headers)
    served = predict_next_close(horizon_server, "BTCEUR", source="sample")
    assert [h["hours"] for h in served["horizons"]] == [1, 4, 24]
    assert [h["hours"] for h in body["horizons"]] == [1, 4, 24]
    last = datetime.fromisoformat(body["last_time"])
    for mine, theirs in zip(body["horizons"], served["horizons"], strict=True):
        assert mine["forecast_time"] == theirs["for_hour"] == (last + timedelta(hours=mine["hours"])).isoformat()
        assert mine["quantiles"] == {level: pytest.approx(theirs["quantiles"][col], rel=1e-9) for level, col in LEVELS.items()}
        q = mine["quantiles"]
        assert mine["interval_90"] == [q["0.05"], q["0.95"]] and mine["interval_50"] == [q["0.25"], q["0.75"]]
        assert mine["median"] == (body["median"] if mine["hours"] == 1 else q["0.5"])
    # the next hour is the top level, as before
    first = body["horizons"][0]
    assert {k: first[k] for k in ("forecast_time", "median", "quantiles", "interval_90", "interval_50")} == \
        {k: body[k] for k in ("forecast_time", "median", "quantiles", "interval_90", "interval_50")}
    # one horizon alone: the top level's shape for that horizon
    for hours, answer in alone.items():
        assert answer.status_code == 200, answer.text
        entry = next(h for h in body["horizons"] if h["hours"] == hours)
        one = answer.json()
        assert one["horizon"] == hours and "horizons" not in one
        assert {k: one[k] for k in ("forecast_time", "median", "quantiles", "interval_90", "interval_50")} == \
            {k: entry[k] for k in ("forecast_time", "median", "quantiles", "interval_90", "interval_50")}
        assert (one["last_time"], one["last_close"], one["model_version"]) == \
            (body["last_time"], body["last_close"], body["model_version"])
    assert unserved.status_code == 400
    assert unserved.json()["error"] == ("the model serving BTCEUR forecasts 1, 4, 24 hour(s) ahead, not 12: "
                                        "use horizon= one of 1, 4, 24, or leave it out for all of them")
    with session_factory(engine)() as db:
        assert quota.used(db, users["member"]) == 4  # the refused call is not counted
        # the console keeps every horizon, each for the hour it is for (once, however often fetched)
        assert forecasts.recorded_horizons(db, "BTCEUR") == [1, 4, 24]
        for h in body["horizons"]:
            rows = forecasts.history(db, "BTCEUR", [], horizon=h["hours"])
            assert [r["hour"] for r in rows] == [h["forecast_time"]]
            assert rows[0]["interval_90"] == h["interval_90"] and rows[0]["median"] == h["quantiles"]["0.5"]


def test_an_unserved_horizon_is_refused_before_anything_upstream(make_console, engine, users, horizon_store):
    """Refused from the store's pointer, before Binance or the inference endpoint are asked: with
    an endpoint that cannot be reached, an unserved horizon is still a 400 naming the served ones
    (a call that asked upstream first would be a 502, whose unit is given back: a free call),
    and a served one a 502; neither costs a unit."""
    from make_us_rich.testing import free_port

    console = make_console(store=horizon_store, inference_url=f"http://127.0.0.1:{free_port()}")
    token = create_token(signed_in(console, MEMBER))
    headers = {"Authorization": f"Bearer {token}"}
    with console.client() as api:
        unserved = api.get("/api/v1/forecast/BTCEUR?horizon=12", headers=headers)
        served = api.get("/api/v1/forecast/BTCEUR?horizon=24", headers=headers)
    assert unserved.status_code == 400 and "forecasts 1, 4, 24 hour(s) ahead, not 12" in unserved.json()["error"]
    assert served.status_code == 502, served.text
    with session_factory(engine)() as db:
        assert quota.used(db, users["member"]) == 0


def test_recorded_horizons_against_the_closes_that_came(make_console, engine, db_url, users, horizon_store,
                                                        horizon_server):
    """Real forecasts of the past 30 hours of the sample at 1, 4 and 24 hours: each horizon's
    realized coverage on the symbol page, counted by hand from the sample's closes at the hour
    each forecast was for (a 24-hour forecast made 10 hours ago: not known yet)."""
    made = []
    with session_factory(engine)() as db:
        for back in range(30, 0, -1):
            settings = settings_for(db_url, horizon_store, inference_url=horizon_server,
                                    end=(LAST - timedelta(hours=back)).isoformat())
            made.append(gateway.forecast(settings, ModelStore(horizon_store), "BTCEUR"))
            forecasts.record(db, made[-1])
    closes = load_klines("sample", "BTCEUR")[0].set_index("timestamp")["close"]
    console = make_console(store=horizon_store, inference_url=horizon_server)
    page = signed_in(console, MEMBER).get("/symbols/BTCEUR").text
    for hours in (4, 24):
        known = inside90 = inside50 = 0
        for answer in made:
            h = next(e for e in answer["horizons"] if e["hours"] == hours)
            when = datetime.fromisoformat(h["forecast_time"])
            if when > LAST:
                continue
            known += 1
            inside90 += h["interval_90"][0] <= closes[when] <= h["interval_90"][1]
            inside50 += h["interval_50"][0] <= closes[when] <= h["interval_50"][1]
        assert known == (27 if hours == 4 else 7)
        row = re.search(rf'<tr data-hours="{hours}">(.*?)</tr>', page, re.S).group(1)
        # the page's own forecast (for the hour after the last candle) is recorded too: 31 in all
        cells = re.findall(r'<td class="num">([^<]+)</td>', row)
        assert cells == ["31", str(known), f"{100 * inside90 / known:.1f} %", f"{100 * inside50 / known:.1f} %"], hours


def test_symbol_page_lists_every_horizon(make_console, users, horizon_store, horizon_server):
    console = make_console(store=horizon_store, inference_url=horizon_server)
    member = signed_in(console, MEMBER)
    home = member.get("/").text
    page = member.get("/symbols/BTCEUR")
    assert page.status_code == 200
    data = member.get("/symbols/BTCEUR/chart.json").json()
    horizons = data["forecast"]["horizons"]
    assert [h["hours"] for h in horizons] == [1, 4, 24]
    header = re.findall(r'<th scope="col" data-hours="(\d+)">(\d+) h</th>', page.text)
    assert header == [("1", "1"), ("4", "4"), ("24", "24")]
    times = re.findall(r'<td data-hours="(\d+)" data-time="([^"]+)">', page.text)
    assert times == [(str(h["hours"]), h["forecast_time"]) for h in horizons]
    for level in LEVELS:
        row = re.search(rf'<tr data-level="{level}">(.*?)</tr>', page.text, re.S)
        cells = re.findall(r'<td class="num" data-hours="(\d+)">([^<]+)</td>', row.group(1))
        assert cells == [(str(h["hours"]), f"{h['quantiles'][level]:,.2f}") for h in horizons], level
    # the home page's table gives the longest horizon's 90 % interval beside the next hour's
    lo, hi = horizons[-1]["interval_90"]
    assert f'<td class="num longest" data-hours="24">in 24 h: {lo:,.2f} – {hi:,.2f}</td>' in home
