"""The console in real headless Chromium: sign in (with the keyboard alone), the symbol page's
chart against the sample and the served model, an API token from creation to revocation with
real HTTP calls in between, a member kept out of the admin pages, and a screenshot of every page
on a laptop and a phone."""

from __future__ import annotations

import re
import struct
from datetime import datetime

import pytest

from make_us_rich.console.settings import Settings
from make_us_rich.data import load_klines
from make_us_rich.predict_client import predict_next_close
from make_us_rich.scoring import QUANTILES

from .conftest import SYMBOL
from .helpers import http, screenshot_dir

pytestmark = pytest.mark.slow

DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
MEMBER = ("member@example.com", "a member password 1")
CHART_DAYS = Settings.model_fields["chart_days"].default


def sign_in(context, console, email: str, password: str):
    page = context.new_page()
    page.goto(f"{console.url}/login")
    page.fill('input[name="email"]', email)
    page.fill('input[name="password"]', password)
    with page.expect_navigation():
        page.click('button[type="submit"]')
    assert not page.url.startswith(f"{console.url}/login"), page.content()[:2000]
    return page


def drawn_chart(page, console) -> dict:
    page.goto(f"{console.url}/symbols/{SYMBOL}")
    page.wait_for_selector('#chart[data-state="drawn"]', timeout=60_000)
    return page.evaluate("window.mkrichChart")


def test_sign_in_with_the_keyboard_alone(browser, console):
    context = browser.new_context(**DESKTOP)
    page = context.new_page()
    page.goto(f"{console.url}/login")
    # a wrong password first: the form comes back with an error, not signed in
    page.fill('input[name="email"]', console.admin[0])
    page.fill('input[name="password"]', "not the password")
    with page.expect_navigation():
        page.press('input[name="password"]', "Enter")
    assert page.url.startswith(f"{console.url}/login")
    assert page.locator('[role="alert"]').is_visible()
    # then Tab to the fields, type, Enter: no mouse
    page.goto(f"{console.url}/login")
    for _ in range(10):
        if page.evaluate("document.activeElement && document.activeElement.name") == "email":
            break
        page.keyboard.press("Tab")
    else:
        pytest.fail("Tab never reaches the e-mail field")
    page.keyboard.type(console.admin[0])
    page.keyboard.press("Tab")
    page.keyboard.type(console.admin[1])
    page.keyboard.press("Enter")
    page.wait_for_url(f"{console.url}/")
    assert page.locator(f'a[href="/symbols/{SYMBOL}"]').count() >= 1
    # the session cookie is HttpOnly and SameSite=Lax, and page scripts cannot read it
    cookies = context.cookies()
    assert cookies and all(c["httpOnly"] and c["sameSite"] == "Lax" for c in cookies), cookies
    assert page.evaluate("document.cookie") == ""
    context.close()


def test_symbol_page_draws_the_served_forecast_on_the_sample(browser, console):
    context = browser.new_context(**DESKTOP)
    page = sign_in(context, console, *console.admin)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    chart = drawn_chart(page, console)
    candles, forecast = chart["candles"], chart["forecast"]
    # the candles are the last days of the bundled sample, as they are
    klines = load_klines("sample", SYMBOL)[0].tail(CHART_DAYS * 24)
    assert len(candles) == CHART_DAYS * 24
    assert [c["time"] for c in candles] == [int(t.timestamp()) for t in klines["timestamp"]]
    assert [c["close"] for c in candles] == pytest.approx(klines["close"].tolist())
    assert all(c["low"] <= min(c["open"], c["close"]) <= max(c["open"], c["close"]) <= c["high"] for c in candles)
    # the forecast is of the hour after the last candle, as the served model gives it
    assert forecast["time"] == candles[-1]["time"] + 3600
    assert datetime.fromisoformat(forecast["forecast_time"]).timestamp() == forecast["time"]
    assert forecast["last_close"] == pytest.approx(candles[-1]["close"])
    served = predict_next_close(console.inference_url, SYMBOL, source="sample")
    assert forecast["median"] == pytest.approx(served["predicted_close"], rel=1e-6)
    assert forecast["model_version"] == served["model_version"]
    assert sorted(forecast["quantiles"], key=float) == [f"{q:g}" for q in QUANTILES]
    levels = [forecast["quantiles"][f"{q:g}"] for q in QUANTILES]
    assert levels == sorted(levels)
    lo90, hi90 = forecast["interval_90"]
    lo50, hi50 = forecast["interval_50"]
    assert lo90 <= lo50 <= forecast["median"] <= hi50 <= hi90
    assert lo90 < hi90
    # the fan as the chart holds it: from the last close through every horizon the served model
    # gives (the next hour first), each level at the hour it is for, on a time axis that runs on
    # to the longest horizon (24 h past the last candle)
    horizons = served["horizons"]
    assert [h["hours"] for h in forecast["horizons"]] == [h["hours"] for h in horizons] == [1, 4, 24]
    assert horizons[0]["quantiles"] == served["quantiles"]
    last = candles[-1]
    times = [last["time"], *(int(datetime.fromisoformat(h["for_hour"]).timestamp()) for h in horizons)]
    assert times[1:] == [last["time"] + 3600 * h["hours"] for h in horizons]
    assert chart["axisEnd"] == last["time"] + 3600 * horizons[-1]["hours"]
    columns = {"5 %": "q05", "25 %": "q25", "median": "q50", "75 %": "q75", "95 %": "q95"}
    assert set(chart["lines"]) == set(columns)
    for name, column in columns.items():
        drawn = chart["lines"][name]
        assert [p["time"] for p in drawn] == times, name
        assert [p["value"] for p in drawn] == pytest.approx(
            [last["close"], *(h["quantiles"][column] for h in horizons)], rel=1e-6), name
    for band, (lo, hi) in {"90": ("q05", "q95"), "50": ("q25", "q75")}.items():
        drawn = chart["fan"][band]
        assert [p["time"] for p in drawn] == times, band
        assert [p["low"] for p in drawn] == pytest.approx([last["close"], *(h["quantiles"][lo] for h in horizons)], rel=1e-6)
        assert [p["high"] for p in drawn] == pytest.approx([last["close"], *(h["quantiles"][hi] for h in horizons)], rel=1e-6)
    # the table beside the chart: every horizon's hour and quantiles, as served
    for h in horizons:
        cell = page.locator(f'#horizons-table td[data-time][data-hours="{h["hours"]}"]')
        assert cell.get_attribute("data-time") == h["for_hour"]
        for level, column in zip(("0.05", "0.25", "0.5", "0.75", "0.95"), ("q05", "q25", "q50", "q75", "q95"), strict=True):
            shown = page.inner_text(f'#horizons-table tr[data-level="{level}"] td[data-hours="{h["hours"]}"]')
            assert float(shown.replace(",", "")) == pytest.approx(h["quantiles"][column], abs=0.006), (h["hours"], level)
        label = page.locator(f'.fan-label[data-hours="{h["hours"]}"]')
        assert label.is_visible() and f'+{h["hours"]} h' in label.inner_text()
    # the numbers beside the chart are the drawn ones
    shown = page.inner_text("#median").replace(",", "").replace("\u202f", "").replace("\xa0", "")
    assert float(shown) == pytest.approx(forecast["median"], abs=0.01)
    assert page.inner_text("#model-version") == forecast["model_version"]
    # which kind of model serves it (the universal model of three horizons here; a per-symbol one: tests/console)
    assert page.get_attribute("#model-kind", "data-kind") == "universal"
    assert forecast["model_version"] in page.inner_text("#model-kind")
    # the attribution of the chart library, as text (its logo would need an inline style)
    assert page.locator('a[href="https://www.tradingview.com/"]').count() == 1
    page.screenshot(path=screenshot_dir() / "chart-forecast.png")
    assert errors == []  # no script error, no CSP violation
    context.close()


def test_symbol_page_draws_the_recorded_forecasts_against_the_closes(browser, console):
    """The recorded forecasts of the sample's last hours, as bands over the candles and as a
    table with the realized coverage, both from what the page holds."""
    context = browser.new_context(**DESKTOP)
    page = sign_in(context, console, *console.admin)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    chart = drawn_chart(page, console)
    closes = {c["time"]: c["close"] for c in chart["candles"]}
    bands = chart["bands"]
    assert set(bands) == {"interval_90 low", "interval_90 high", "interval_50 low", "interval_50 high"}
    hours = [p["time"] for p in bands["interval_90 low"]]
    # the recorded hours over the candles (the next hour is the fan right of them)
    assert len(hours) == console.recorded and hours[-1] == chart["candles"][-1]["time"]
    inside = sum(lo["value"] <= closes[lo["time"]] <= hi["value"]
                 for lo, hi in zip(bands["interval_90 low"], bands["interval_90 high"], strict=True)
                 if lo["time"] in closes)
    coverage = chart["coverage"]
    assert coverage["hours"] == console.recorded and coverage["90"] == pytest.approx(inside / console.recorded)
    page.reload()  # the table is rendered on the server: the page again, after the chart recorded its hour
    page.wait_for_selector('#chart[data-state="drawn"]', timeout=60_000)
    assert page.locator("#history tbody tr").count() == console.recorded + 1
    text = page.inner_text("#realized-coverage")
    assert f"90 % interval {100 * coverage['90']:.1f} %" in text and f"over the {console.recorded} recorded" in text
    assert page.locator("#replay-banner").is_visible()
    assert errors == []
    context.close()


def test_token_from_creation_to_revocation(browser, console):
    context = browser.new_context(**DESKTOP)
    page = sign_in(context, console, *console.admin)
    page.goto(f"{console.url}/tokens")
    page.fill('form#create-token input[name="name"]', "browser test")
    with page.expect_navigation():
        page.click('form#create-token button[type="submit"]')
    token = page.inner_text("#new-token").strip()
    assert re.fullmatch(r"mkr_[A-Za-z0-9_-]{40,}", token), token
    row = page.locator("tr[data-token-prefix]").filter(has_text="browser test")
    prefix = row.get_attribute("data-token-prefix")
    assert token.startswith(prefix) and len(prefix) < len(token) / 2
    assert row.locator(".usage").inner_text() == "0"
    # shown once: not on the page any more once reloaded
    page.goto(f"{console.url}/tokens")
    assert token not in page.content()

    url = f"{console.url}/api/v1/forecast/{SYMBOL}"
    for calls in (1, 2):
        status, _, body = http("GET", url, {"Authorization": f"Bearer {token}"})
        assert status == 200, body
        assert body["symbol"] == SYMBOL
        assert body["interval_90"][0] <= body["median"] <= body["interval_90"][1]
        page.goto(f"{console.url}/tokens")
        row = page.locator(f'tr[data-token-prefix="{prefix}"]')
        assert row.locator(".usage").inner_text() == str(calls)
    assert http("GET", url, {"Authorization": f"Bearer {token[:-2]}xx"})[0] == 401
    assert http("GET", url)[0] == 401

    with page.expect_navigation():
        row.locator("form.revoke button[type=submit]").click()
    row = page.locator(f'tr[data-token-prefix="{prefix}"]')
    assert "revoked" in row.locator(".state").inner_text()
    assert row.locator("form.revoke").count() == 0
    status, _, body = http("GET", url, {"Authorization": f"Bearer {token}"})
    assert status == 401, body
    context.close()


def test_admin_creates_a_member_who_cannot_open_admin_pages(browser, console):
    admin = browser.new_context(**DESKTOP)
    page = sign_in(admin, console, *console.admin)
    page.goto(f"{console.url}/admin/users")
    page.fill('form#create-user input[name="email"]', MEMBER[0])
    page.fill('form#create-user input[name="password"]', MEMBER[1])
    page.select_option('form#create-user select[name="role"]', "member")
    with page.expect_navigation():
        page.click('form#create-user button[type="submit"]')
    assert page.locator(f'tr[data-user="{MEMBER[0]}"]').count() == 1
    admin.close()

    member = browser.new_context(**DESKTOP)
    page = sign_in(member, console, *MEMBER)
    assert page.locator('a[href="/admin/users"]').count() == 0  # no link to it either
    response = page.goto(f"{console.url}/admin/users")
    assert response.status == 403
    assert page.locator(f'tr[data-user="{console.admin[0]}"]').count() == 0
    # a POST to the admin route, with the member's valid CSRF token, is refused as well
    page.goto(f"{console.url}/tokens")
    csrf = page.get_attribute('form#create-token input[name="csrf"]', "value")
    posted = page.request.post(f"{console.url}/admin/users", form={
        "csrf": csrf, "email": "intruder@example.com", "password": "intruder password 1", "role": "admin",
        "monthly_quota": "5"})
    assert posted.status == 403
    # the member sees only their own tokens
    page.goto(f"{console.url}/tokens")
    assert page.locator("tr[data-token-prefix]").count() == 0
    member.close()
    admin = browser.new_context(**DESKTOP)
    page = sign_in(admin, console, *console.admin)
    page.goto(f"{console.url}/admin/users")
    assert page.locator('tr[data-user="intruder@example.com"]').count() == 0
    admin.close()


PAGES = {  # name -> path (signed in as the admin)
    "login": "/login",
    "symbols": "/",
    "symbol": f"/symbols/{SYMBOL}",
    "models": "/models",
    "tokens": "/tokens",
    "users": "/admin/users",
    "api": "/docs",
    "runs": "/runs",
    "run": "/runs/{run_id}",
    "run-universal": "/runs/{universal_run_id}",
    "history": f"/models/{SYMBOL}/history",
}


def _png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", header[16:24])


@pytest.mark.parametrize(("device", "options"), [("desktop", DESKTOP), ("phone", PHONE)])
def test_screenshot_of_every_page(browser, console, device, options):
    folder = screenshot_dir()
    context = browser.new_context(**options)
    page = context.new_page()
    page.goto(f"{console.url}/login")
    page.screenshot(path=folder / f"login-{device}.png")
    page = sign_in(context, console, *console.admin)
    errors: list[str] = []  # a script error or a CSP violation on any page
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    for name, path in PAGES.items():
        if name == "login":
            continue
        if name == "tokens":  # with a token just made: the shown-once box, its secret masked
            page.goto(f"{console.url}/tokens")
            page.fill('form#create-token input[name="name"]', f"laptop script - {device}")
            page.click('form#create-token button[type="submit"]')
            page.wait_for_selector("#new-token")
        else:
            response = page.goto(f"{console.url}{path.format(run_id=console.run_id, universal_run_id=console.universal_run_id)}")
            assert response.status == 200, (name, response.status)
        if name == "runs":  # both kinds of run
            kinds = page.locator("#runs td.kind").all_inner_texts()
            assert sorted(kinds) == ["per-symbol", "universal", "universal"], kinds
        if name == "run-universal":  # the per-symbol gate table of the warm-started, rejected run
            assert page.locator("#symbols tbody tr").count() == 3
            assert page.locator('#symbols tr[data-symbol="BTCEUR"] .status').inner_text() == "rejected"
            assert page.locator("#warm-start").inner_text().startswith("warm start from ")
        if name == "symbol":
            page.wait_for_selector('#chart[data-state="drawn"]', timeout=60_000)
        # readable without sideways scrolling (wide tables scroll inside their own box)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (name, device, overflow)
        mask = [page.locator("#new-token")] if name == "tokens" else []
        page.screenshot(path=folder / f"{name}-{device}.png", mask=mask, mask_color="#9aa4b1")
        if name == "symbol":  # the recorded forecasts against the closes, below the chart
            page.locator("#against").screenshot(path=folder / f"forecasts-{device}.png")
    context.close()
    assert errors == []
    for name in PAGES:
        width, height = _png_size(folder / f"{name}-{device}.png")
        assert (width, height) == (options["viewport"]["width"], options["viewport"]["height"])
