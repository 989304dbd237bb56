"""The prediction gateway against the real ``mkrich serve`` (KServe ModelServer) on loopback,
serving a model trained on the bundled sample; the last window from the sample replay or from
the fake Binance API. Quota, usage and the pages that show the forecast and the registry."""

from __future__ import annotations

import re
import threading

import pytest
from console_helpers import MEMBER, create_token, page_csrf, signed_in
from sqlalchemy import update

from make_us_rich.console import quota
from make_us_rich.console.db import User, session_factory
from make_us_rich.predict_client import predict_next_close
from make_us_rich.scoring import QUANTILES
from make_us_rich.store import ModelStore

pytest.importorskip("kserve")

#: the sample's last hour is 2023-12-31 23:00 UTC: the forecast is for the next one
FORECAST_HOUR = "2024-01-01T00:00:00+00:00"


def set_quota(engine, user_id: int, value: int) -> None:
    with session_factory(engine)() as db:
        db.execute(update(User).where(User.id == user_id).values(monthly_quota=value))
        db.commit()


def test_forecast_api_with_a_token(make_console, engine, users, console_store, model_server):
    console = make_console(store=console_store, inference_url=model_server)
    member = signed_in(console, MEMBER)
    token = create_token(member)
    with console.client() as api:
        answer = api.get("/api/v1/forecast/btc-eur", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    direct = predict_next_close(model_server, "BTCEUR", source="sample")
    latest = ModelStore(console_store).latest("BTCEUR")
    assert body["symbol"] == "BTCEUR" and body["forecast_time"] == FORECAST_HOUR
    assert list(body["quantiles"]) == [f"{q:g}" for q in QUANTILES] == ["0.05", "0.25", "0.5", "0.75", "0.95"]
    assert body["median"] == pytest.approx(direct["predicted_close"])
    assert body["quantiles"]["0.5"] == pytest.approx(body["median"], rel=1e-6)
    assert body["interval_90"] == [body["quantiles"]["0.05"], body["quantiles"]["0.95"]]
    assert body["interval_50"] == [body["quantiles"]["0.25"], body["quantiles"]["0.75"]]
    assert body["interval_90"][0] <= body["interval_50"][0] <= body["median"] <= body["interval_50"][1] <= body["interval_90"][1]
    assert body["last_close"] == pytest.approx(direct["last_close"])
    assert body["model_version"] == latest["version"] and body["model_created"] == latest["published"]
    page = member.get("/tokens").text
    row = re.search(rf'<tr data-token-prefix="{token[:12]}">.*?<td class="usage">(\d+)</td>', page, re.S)
    assert row and row.group(1) == "1"
    assert 'id="quota-used">1<' in page


def test_quota_exhausted_is_429_until_next_month(make_console, engine, users, console_store, model_server):
    console = make_console(store=console_store, inference_url=model_server)
    set_quota(engine, users["member"], 2)
    token = create_token(signed_in(console, MEMBER))
    headers = {"Authorization": f"Bearer {token}"}
    with console.client() as api:
        assert [api.get("/api/v1/forecast/BTCEUR", headers=headers).status_code for _ in range(2)] == [200, 200]
        refused = api.get("/api/v1/forecast/BTCEUR", headers=headers)
    assert refused.status_code == 429
    wait = int(refused.headers["retry-after"])
    assert abs(wait - quota.retry_after_seconds()) <= 5
    assert "quota of 2 calls is used up" in refused.json()["error"] and "next month" in refused.json()["error"]
    with session_factory(engine)() as db:
        assert quota.used(db, users["member"]) == 2


def test_concurrent_api_calls_get_exactly_the_units_left(make_console, engine, users, console_store, model_server):
    console = make_console(store=console_store, inference_url=model_server)
    set_quota(engine, users["member"], 3)
    token = create_token(signed_in(console, MEMBER))
    n = 8
    barrier = threading.Barrier(n)
    statuses: list[int] = []

    def call() -> None:
        with console.client() as api:
            barrier.wait()
            statuses.append(api.get("/api/v1/forecast/BTCEUR", headers={"Authorization": f"Bearer {token}"}).status_code)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] * 3 + [429] * 5
    with session_factory(engine)() as db:
        assert quota.used(db, users["member"]) == 3


def test_inference_down_is_502_and_counts_nothing(make_console, engine, users, console_store):
    from make_us_rich.testing import free_port

    console = make_console(store=console_store, inference_url=f"http://127.0.0.1:{free_port()}")
    token = create_token(signed_in(console, MEMBER))
    with console.client() as api:
        answer = api.get("/api/v1/forecast/BTCEUR", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 502 and "inference endpoint" in answer.json()["error"]
    with session_factory(engine)() as db:
        assert quota.used(db, users["member"]) == 0


def test_live_klines_from_the_binance_api(make_console, users, console_store, model_server, fake_binance):
    console = make_console(store=console_store, inference_url=model_server, source="binance",
                           binance_api_url=fake_binance.api_url, end="2023-12-31T23:00Z")
    token = create_token(signed_in(console, MEMBER))
    with console.client() as api:
        answer = api.get("/api/v1/forecast/BTCEUR", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["forecast_time"] == FORECAST_HOUR
    assert fake_binance.klines_requests()  # the window came over HTTP


def test_symbol_page_and_its_chart_data(make_console, users, console_store, model_server):
    console = make_console(store=console_store, inference_url=model_server)
    member = signed_in(console, MEMBER)
    home = member.get("/").text
    assert 'href="/symbols/BTCEUR"' in home
    page = member.get("/symbols/BTCEUR")
    assert page.status_code == 200
    assert '<div id="chart" data-src="/symbols/BTCEUR/chart.json"' in page.text
    scripts = re.findall(r"<script[^>]*>", page.text)
    assert scripts == ['<script src="/static/vendor/lightweight-charts.standalone.production.js">',
                       '<script src="/static/chart.js">']
    assert member.get("/static/vendor/lightweight-charts.standalone.production.js").status_code == 200
    data = member.get("/symbols/BTCEUR/chart.json").json()
    candles = data["candles"]
    assert len(candles) == 7 * 24 and candles[-1]["time"] == 1704063600  # 2023-12-31 23:00 UTC
    assert {"open", "high", "low", "close", "time"} == set(candles[0])
    assert data["forecast"]["forecast_time"] == FORECAST_HOUR
    assert data["forecast"]["last_close"] == pytest.approx(candles[-1]["close"])
    pointer = ModelStore(console_store).latest("BTCEUR")
    assert data["quality"]["pinball_vs_empirical"] == pointer["metrics"]["ratio"]["pinball_vs_empirical"]
    assert 0 < data["quality"]["coverage_90"] <= 1
    assert 'id="quality-pinball"' in page.text
    # the table of the horizons beside the chart: each quantile at each served horizon
    assert [h["hours"] for h in data["forecast"]["horizons"]] == [1]
    for level in ("0.05", "0.25", "0.5", "0.75", "0.95"):
        row = re.search(rf'<tr data-level="{level}">(.*?)</tr>', page.text, re.S)
        cells = re.findall(r'<td class="num" data-hours="(\d+)">([^<]+)</td>', row.group(1))
        assert cells == [("1", f"{data['forecast']['quantiles'][level]:,.2f}")], level
    assert member.get("/symbols/DOGEEUR").status_code == 404
    assert member.get("/symbols/BTC'EUR").status_code == 400
    with console.client() as anonymous:
        assert anonymous.get("/symbols/BTCEUR/chart.json", headers={"Accept": "application/json"}).status_code == 401


def test_registry_page(make_console, users, console_store):
    console = make_console(store=console_store)
    member = signed_in(console, MEMBER)
    page = member.get("/models").text
    store = ModelStore(console_store)
    versions = store.versions("BTCEUR")
    latest = store.latest("BTCEUR")["version"]
    assert len(versions) == 2
    for v in versions:
        status = "serving" if v["version"] == latest else "rejected"
        assert f'data-version="{v["version"]}" data-status="{status}"' in page
    assert "90 % interval coverage" in page  # the gate's reasons
    assert "empirical" in page and "coverage 90 %" in page  # metrics beside the baselines
    plot = re.search(r'href="(/models/BTCEUR/[^"]+/fan_chart\.png)"', page)
    assert plot, "no link to the training plots"
    image = member.get(plot.group(1))
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert member.get(f"/models/BTCEUR/{latest}/model.onnx").status_code == 404
    assert member.get("/models/BTCEUR/..%2F..%2Fetc/fan_chart.png").status_code == 404
    assert page_csrf(member, "/models")


def test_a_garbled_inference_answer_counts_nothing(make_console, engine, users, console_store):
    """An endpoint that answers 200 with JSON that is no forecast: the call fails and the unit
    taken for it is given back (only a delivered forecast costs one)."""
    import http.server
    import threading

    class Garbled(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            self.rfile.read(int(self.headers.get("content-length") or 0))
            body = b'{"model_name": "btceur-close", "outputs": [{"name": "elsewhere"}]}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Garbled)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        console = make_console(store=console_store, inference_url=f"http://127.0.0.1:{server.server_port}")
        token = create_token(signed_in(console, MEMBER))
        with console.client() as api:
            answer = api.get("/api/v1/forecast/BTCEUR", headers={"Authorization": f"Bearer {token}"})
    finally:
        server.shutdown()
    assert answer.status_code >= 500, answer.text
    with session_factory(engine)() as db:
        assert quota.used(db, users["member"]) == 0


def test_forecast_api_horizons_and_the_horizon_parameter(make_console, engine, users, console_store, model_server):
    """Without ``horizon`` the answer lists every served horizon, the next hour first and equal
    to the top level (a model of one horizon: that one only); ``?horizon=1`` answers it alone;
    a horizon the model does not serve, or one that is no whole number of hours, is a 400 that
    says which to ask for, and counts nothing."""
    console = make_console(store=console_store, inference_url=model_server)
    token = create_token(signed_in(console, MEMBER))
    headers = {"Authorization": f"Bearer {token}"}
    with console.client() as api:
        body = api.get("/api/v1/forecast/BTCEUR", headers=headers).json()
        one = api.get("/api/v1/forecast/BTCEUR", params={"horizon": "1"}, headers=headers)
        refused = {raw: api.get(f"/api/v1/forecast/BTCEUR?{raw}", headers=headers)
                   for raw in ("horizon=24", "horizon=abc", "horizon=1.5", "horizon=0", "horizon=-4", "horizon=",
                               "horizon=%EF%BC%91", "horizon=99999999999999999999", "horizon=1&horizon=4")}
        spec = api.get("/openapi.json").json()
    (entry,) = body["horizons"]  # the served model forecasts the next hour only
    assert entry == {"hours": 1, "forecast_time": body["forecast_time"], "median": body["median"],
                     "quantiles": body["quantiles"], "interval_90": body["interval_90"],
                     "interval_50": body["interval_50"]}
    assert one.status_code == 200, one.text
    assert one.json() == {"symbol": "BTCEUR", "horizon": 1, **{k: v for k, v in body.items() if k not in ("symbol", "horizons")}}
    for raw, answer in refused.items():
        assert answer.status_code == 400, (raw, answer.text)
    assert refused["horizon=24"].json()["error"] == ("the model serving BTCEUR forecasts 1 hour(s) ahead, not 24: "
                                                     "use horizon= one of 1, or leave it out for all of them")
    for raw in ("horizon=abc", "horizon=1.5", "horizon=0", "horizon=-4", "horizon=%EF%BC%91"):
        assert "horizon must be a whole number of hours ahead, 1 to 720" in refused[raw].json()["error"], raw
    assert "give horizon= once" in refused["horizon=1&horizon=4"].json()["error"]
    with session_factory(engine)() as db:
        assert quota.used(db, users["member"]) == 2  # the two answered calls only
    (param,) = [p for p in spec["paths"]["/api/v1/forecast/{symbol}"]["get"]["parameters"] if p["name"] == "horizon"]
    assert param["in"] == "query" and param["schema"]["type"] == "integer" and "hours ahead" in param["description"]


def test_a_forecast_without_horizons_is_the_next_hour_only(model_server):
    """An answer of the client without ``horizons`` (an older client or server) gives the same
    horizons as one that lists the next hour alone."""
    from make_us_rich.console.gateway import horizons_of

    raw = predict_next_close(model_server, "BTCEUR", source="sample")
    old = {k: v for k, v in raw.items() if k != "horizons"}
    listed = {**raw, "horizons": [{"hours": 1, "for_hour": raw["for_hour"], "quantiles": raw["quantiles"]}]}
    assert horizons_of(old, "BTCEUR") == horizons_of(listed, "BTCEUR")
    (entry,) = horizons_of(old, "BTCEUR")
    assert entry["hours"] == 1 and entry["forecast_time"] == FORECAST_HOUR
    assert entry["quantiles"]["0.05"] == raw["quantiles"]["q05"] and entry["median"] == raw["predicted_close"]


def test_one_unreadable_manifest_leaves_the_other_symbols_on_the_registry_page(make_console, users, console_store,
                                                                              tmp_path):
    import json
    import shutil

    store_dir = tmp_path / "store"
    shutil.copytree(console_store, store_dir)
    store = ModelStore(store_dir)
    broken = store.versions("BTCEUR")[0]["version"]
    (store_dir / "models" / "BTCEUR" / broken / "manifest.json").write_text(json.dumps({"version": broken}))
    (store_dir / "models" / "ETHUSDT").mkdir(parents=True)
    shutil.copytree(store_dir / "models" / "BTCEUR" / store.latest("BTCEUR")["version"],
                    store_dir / "models" / "ETHUSDT" / "20240101T000000.000000Z-0123abcd")
    page = signed_in(make_console(store=store_dir), MEMBER).get("/models").text
    assert "BTCEUR's versions cannot be read" in page and "manifest.json is malformed" in page
    assert 'id="registry-ETHUSDT"' in page
