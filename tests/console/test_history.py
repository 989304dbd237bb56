"""Forecasts against what happened (recorded forecasts, realized coverage), the home page's
table and replay banner, and the runs and model-history pages: on SQLite and PostgreSQL, with
real forecasts of the real ``mkrich serve`` on the bundled sample."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from console_helpers import ADMIN, MEMBER, create_token, settings_for, signed_in
from sqlalchemy import func, select

from make_us_rich.console import forecasts, gateway
from make_us_rich.console.db import Forecast, session_factory
from make_us_rich.data import load_klines
from make_us_rich.runs import find_run, model_history
from make_us_rich.store import ModelStore
from make_us_rich.testing import wait_until

pytest.importorskip("kserve")

#: the sample's last candle: 2023-12-31 23:00 UTC
LAST = datetime(2023, 12, 31, 23, tzinfo=UTC)


def count(engine) -> int:
    with session_factory(engine)() as db:
        return db.scalar(select(func.count()).select_from(Forecast))


def record_past(engine, db_url, store, inference_url, hours: int) -> list[dict]:
    """Real forecasts of the served model for past hours of the sample (windows ending earlier)."""
    made = []
    with session_factory(engine)() as db:
        for back in range(hours, 0, -1):
            end = (LAST - timedelta(hours=back)).isoformat()
            settings = settings_for(db_url, store, inference_url=inference_url, end=end)
            answer = gateway.forecast(settings, ModelStore(store), "BTCEUR")
            forecasts.record(db, answer)
            made.append(answer)
    return made


def test_recorded_forecasts_against_the_closes_that_came(make_console, engine, db_url, users, console_store,
                                                         model_server):
    made = record_past(engine, db_url, console_store, model_server, hours=8)
    assert count(engine) == 8
    # recording again (same symbol, hour and model version) changes nothing
    with session_factory(engine)() as db:
        for answer in made:
            forecasts.record(db, answer)
    assert count(engine) == 8
    # the realized coverage, computed by hand from the sample's closes
    klines = load_klines("sample", "BTCEUR")[0].set_index("timestamp")["close"]
    inside = {"50": 0, "90": 0}
    for answer in made:
        close = klines[datetime.fromisoformat(answer["forecast_time"])]
        inside["90"] += answer["interval_90"][0] <= close <= answer["interval_90"][1]
        inside["50"] += answer["interval_50"][0] <= close <= answer["interval_50"][1]
    console = make_console(store=console_store, inference_url=model_server)
    member = signed_in(console, MEMBER)
    data = member.get("/symbols/BTCEUR/chart.json").json()
    # the page's own forecast (for 2024-01-01 00:00, whose close the sample does not hold) is recorded too
    assert count(engine) == 9
    assert data["coverage"] == {"hours": 8, "recorded": 9, "90": inside["90"] / 8, "50": inside["50"] / 8}
    assert [r["time"] for r in data["history"]] == sorted(r["time"] for r in data["history"])
    assert data["history"][-1]["close"] is None and data["history"][-1]["inside_90"] is None
    assert data["history"][0]["close"] == pytest.approx(klines[datetime.fromisoformat(made[0]["forecast_time"])])
    page = member.get("/symbols/BTCEUR").text
    assert f"90 % interval {100 * inside['90'] / 8:.1f} %" in page
    assert f"50 % interval {100 * inside['50'] / 8:.1f} %" in page
    assert "1 recorded hour(s) have no known close yet" in page
    assert len(re.findall(r'<tr data-time="\d+">', page)) == 9
    assert 'id="replay-banner"' in page


def test_no_recorded_forecast_is_said_plainly(make_console, engine, users, console_store):
    """Without an inference endpoint nothing can be recorded: the page says so, and shows no
    number it does not have."""
    console = make_console(store=console_store, inference_url="http://127.0.0.1:9")
    member = signed_in(console, MEMBER)
    page = member.get("/symbols/BTCEUR")
    assert page.status_code == 200
    assert 'id="no-history"' in page.text and "realized-coverage" not in page.text
    assert "the periodic recorder is off" in page.text
    assert count(engine) == 0


def test_the_api_records_what_it_serves(make_console, engine, users, console_store, model_server):
    console = make_console(store=console_store, inference_url=model_server)
    member = signed_in(console, MEMBER)
    token = create_token(member)
    with console.client() as script:
        for _ in range(2):
            answer = script.get("/api/v1/forecast/BTCEUR", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200
    with session_factory(engine)() as db:
        (row,) = db.scalars(select(Forecast)).all()
    assert row.symbol == "BTCEUR" and row.model_version == answer.json()["model_version"]
    assert row.target_hour == datetime(2024, 1, 1)
    assert row.quantiles == pytest.approx(answer.json()["quantiles"])


def test_the_periodic_recorder_fills_the_history_once_per_hour_and_version(make_console, engine, users,
                                                                           console_store, model_server):
    make_console(store=console_store, inference_url=model_server, record_minutes=60)
    wait_until(lambda: count(engine) > 0, 60, 0.2, what="the recorder's first forecast")
    assert count(engine) == 1
    # another round (the same replay hour, the same model) adds nothing
    console = make_console(store=console_store, inference_url=model_server)
    assert forecasts.record_all(console.settings, ModelStore(console_store), session_factory(engine)) == 1
    assert count(engine) == 1


def test_home_page_is_a_table_of_the_served_symbols_with_a_replay_banner(make_console, users, console_store,
                                                                         model_server):
    console = make_console(store=console_store, inference_url=model_server)
    member = signed_in(console, MEMBER)
    page = member.get("/").text
    served = gateway.forecast(console.settings, ModelStore(console_store), "BTCEUR")
    assert 'id="replay-banner"' in page and "the hour forecast is 2024-01-01 00:00:00 UTC" in page
    row = re.search(r'<tr data-symbol="BTCEUR">(.*?)</tr>', page, re.S).group(1)
    assert f"{served['last_close']:,.2f}" in row
    assert f"{served['interval_90'][0]:,.2f} – {served['interval_90'][1]:,.2f}" in row
    assert '<td class="num longest" data-hours="1">–</td>' in row  # a model of the next hour only
    assert served["model_version"] in row and ">passed<" in row
    assert re.search(r">\d+\.\d h<", row)  # published minutes ago


def test_home_page_without_replay_has_no_banner(make_console, users, console_store, model_server, fake_binance):
    console = make_console(store=console_store, inference_url=model_server, source="binance",
                           binance_api_url=fake_binance.api_url, end="2023-12-31T23:00Z")
    page = signed_in(console, MEMBER).get("/").text
    assert 'id="replay-banner"' not in page and '<tr data-symbol="BTCEUR">' in page


def test_model_history_page(make_console, users, console_store):
    console = make_console(store=console_store)
    member = signed_in(console, MEMBER)
    page = member.get("/models/BTCEUR/history")
    assert page.status_code == 200
    history = model_history(str(console_store), "BTCEUR")
    for m in history:
        assert f'data-version="{m["version"]}"' in page.text
    # the charts: one point per version, oldest left, the drawn values those of the store
    pinball = re.search(r'id="chart-pinball".*?</figure>', page.text, re.S).group(0)
    values = [float(v) for v in re.findall(r'data-value="([^"]+)"', pinball)]
    assert values == pytest.approx([m["pinball_vs_empirical"] for m in history])
    coverage = re.search(r'id="chart-coverage".*?</figure>', page.text, re.S).group(0)
    assert [float(v) for v in re.findall(r'data-value="([^"]+)"', coverage)] == \
        pytest.approx([m["coverage90"] for m in history])
    assert "<script" not in pinball
    assert member.get("/models/DOGEEUR/history").status_code == 404
    assert member.get("/models/BTC'EUR/history").status_code == 400


def test_runs_pages(make_console, users, pipeline_run):
    """The list and the detail of a real run, as `mkrich runs` reads it; the step logs (each
    step's inputs) for administrators only."""
    root, run_id = pipeline_run
    run = find_run(root, run_id)
    console = make_console(runs_dir=str(root))
    member = signed_in(console, MEMBER)
    page = member.get("/runs").text
    assert f'<tr data-run="{run_id}">' in page
    outcome = run["symbols"]["BTCEUR"].get("published") or run["symbols"]["BTCEUR"]["gate"]
    assert f'data-symbol="BTCEUR">BTCEUR: {outcome}' in page
    assert f"sequence_length={run['parameters']['sequence_length']}" in page
    detail = member.get(f"/runs/{run_id}")
    assert detail.status_code == 200
    assert "<code>metrics.json</code>" in detail.text and "<td>train-lstm</td>" in detail.text
    assert f"{run['symbols']['BTCEUR']['pinball_vs_empirical']:.4f}" in detail.text
    assert "<summary>" not in detail.text and "shown to administrators" in detail.text
    admin = signed_in(console, ADMIN)
    assert "<summary>train-lstm (SUCCESS)</summary>" in admin.get(f"/runs/{run_id}").text
    assert member.get("/runs/hourly-training-nope").status_code == 404
    assert member.get("/runs/..%2F..%2Fetc").status_code == 404
    off = make_console(runs_dir="off")
    other = signed_in(off, MEMBER)
    page = other.get("/runs").text
    assert 'id="no-runs-folder"' in page and "Kubeflow Pipelines dashboard" in page
    assert other.get(f"/runs/{run_id}").status_code == 404


def test_universal_runs_and_the_universal_model_in_the_pages(make_console, users, pipeline_run, universal_runs,
                                                             tmp_path):
    """Real runs of both pipelines in one runs folder (links to the fixtures' run folders): the
    list gives each run's kind; a universal run's page its training (warm start, time budget)
    and its per-symbol gate table with the store's versions; the symbol and model-history pages
    say that a universal model serves the symbol and which symbols share it."""
    per_symbol_root, per_symbol_id = pipeline_run
    root, store_dir, (first, second) = universal_runs
    both = tmp_path / "runs"
    both.mkdir()
    for folder in (per_symbol_root / per_symbol_id, root / first, root / second):
        (both / folder.name).symlink_to(folder, target_is_directory=True)
    store = ModelStore(store_dir)
    console = make_console(runs_dir=str(both), store=store_dir)
    member = signed_in(console, MEMBER)

    page = member.get("/runs").text
    kinds = dict(re.findall(r'<tr data-run="([^"]+)">\s*<td><a [^>]*>[^<]*</a></td>\s*<td class="kind">([^<]+)</td>', page))
    assert kinds == {per_symbol_id: "per-symbol", first: "universal", second: "universal"}
    assert f'<a href="/runs/{first}">{first.removeprefix("universal-training-")}</a>' in page

    detail = member.get(f"/runs/{first}")
    assert detail.status_code == 200 and "universal-training (universal)" in detail.text
    assert '<dd id="warm-start">trained in full (no accepted universal model in the store)</dd>' in detail.text
    run = find_run(root, first)
    assert f'<dd id="time-budget">{run["training"]["time_budget"]:g} s, not exhausted</dd>' in detail.text
    rows = dict(re.findall(r'<tr data-symbol="([A-Z]+)">(.*?)</tr>', detail.text, re.S))
    assert list(rows) == ["BTCEUR", "BTCUSDT", "ETHUSDT"]
    for symbol in ("BTCEUR", "BTCUSDT"):
        manifest = store.versions(symbol)[0]
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", rows[symbol], re.S)]
        ratio, intervals = manifest["metrics"]["ratio"], manifest["metrics"]["model"]["intervals"]
        assert cells == [symbol, "passed", "accepted", f"{ratio['pinball_vs_empirical']:.4f}",
                         f"{ratio['pinball_vs_har']:.4f}", f"{intervals['90']['coverage']:.4f}",
                         f"{intervals['50']['coverage']:.4f}", f"{ratio['median_rmse_vs_persistence']:.4f}",
                         manifest["version"]]
    assert "not evaluated: no bundled sample for ETHUSDT" in rows["ETHUSDT"]
    assert "<code>metrics.json</code>" in detail.text and 'id="rejected"' not in detail.text

    later = member.get(f"/runs/{second}").text
    assert "warm start from " in re.search(r'<dd id="warm-start">(.*?)</dd>', later).group(1)
    assert '<dd id="time-budget">300 s, ' in later and "2 rejected, 1 not evaluated" in later
    reasons = store.versions("BTCEUR")[-1]["gate"]["reasons"]
    assert f"<strong>BTCEUR</strong>: {'; '.join(reasons)}" in later.replace("&lt;", "<").replace("&gt;", ">")

    serving = store.latest("BTCEUR")["version"]
    for path in ("/symbols/BTCEUR", "/models/BTCEUR/history"):
        answer = member.get(path)
        assert answer.status_code == 200, path
        said = re.search(r'<p id="model-kind" data-kind="([^"]+)">(.*?)</p>', answer.text, re.S)
        assert said and said.group(1) == "universal", path
        text = " ".join(said.group(2).split())
        assert f"universal model</strong> (version <code>{serving}</code>)" in text
        assert "shared by 2 served symbol(s) (BTCEUR, BTCUSDT)" in text and "pooled data of 2 (BTCEUR, BTCUSDT)" in text
    history = member.get("/models/BTCEUR/history").text
    assert history.count('<td class="kind">universal (2 symbols)</td>') == len(store.versions("BTCEUR")) == 2

    per_symbol = make_console(store=find_run(per_symbol_root, per_symbol_id)["store"])
    page = signed_in(per_symbol, MEMBER).get("/models/BTCEUR/history").text
    assert 'data-kind="per-symbol">Served by a <strong>per-symbol model</strong> of BTCEUR' in page


def test_history_pages_need_a_session(make_console, console_store):
    console = make_console(store=console_store)
    with console.client() as anonymous:
        for path in ("/runs", "/runs/x", "/models/BTCEUR/history"):
            answer = anonymous.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/login"), path
