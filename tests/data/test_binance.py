"""python-binance against a Binance-compatible HTTP server on 127.0.0.1 (real HTTP, real client).

The server serves real klines (BTCUSDT 2023: tests/fixtures + the bundled sample); faults are scripted on it.
Waits are recorded through the client's ``sleep`` hook (which still sleeps, briefly)."""

from __future__ import annotations

import math
import time

import pandas as pd
import pytest

from make_us_rich.data import load_klines, validate_klines
from make_us_rich.data.binance import MAX_LIMIT, BinanceClient
from make_us_rich.errors import ConfigError, FetchError, UnknownSymbolError
from make_us_rich.testing.fake_binance import FakeBinance, Fault

START, END = "2023-01-01T00:00:00Z", "2023-12-31T23:00:00Z"


class RecordingSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(min(seconds, 0.01))


def client_for(fake: FakeBinance, **kw) -> tuple[BinanceClient, RecordingSleep]:
    sleep = RecordingSleep()
    kw = {"backoff_base": 0.05, "backoff_max": 0.2, "timeout": 2.0, **kw}
    return BinanceClient(api_url=fake.api_url, sleep=sleep, **kw), sleep


def test_one_year_pages_without_duplicates_or_holes(fake_binance, btcusdt_2023):
    client, sleep = client_for(fake_binance)
    df = client.get_data("BTC/USDT", "1h", START, END)
    pd.testing.assert_frame_equal(df, btcusdt_2023)  # every candle, once, exactly as served
    requests = fake_binance.klines_requests()
    assert len(requests) == math.ceil(len(btcusdt_2023) / MAX_LIMIT)
    assert {r["limit"] for r in requests} == {str(MAX_LIMIT)}
    assert all(r["endTime"] == str(int(pd.Timestamp(END).value // 10**6)) for r in requests)
    # each page starts one hour after the last candle of the previous page
    starts = [int(r["startTime"]) for r in requests]
    assert starts[1] - starts[0] == MAX_LIMIT * 3_600_000
    assert sleep.waits == []


def test_end_time_makes_a_reproducible_window(fake_binance):
    client, _ = client_for(fake_binance)
    five = client.get_five_days_data("BTCUSDT", end="2023-06-30T12:00Z")
    assert len(five) == 5 * 24
    assert five["timestamp"].iloc[-1] == pd.Timestamp("2023-06-30T12:00Z")
    assert five["timestamp"].iloc[0] == pd.Timestamp("2023-06-25T13:00Z")
    again = client.get_five_days_data("BTCUSDT", end="2023-06-30T12:00Z")
    pd.testing.assert_frame_equal(five, again)
    year = client.get_one_year_data("BTCUSDT", end=END)
    assert year["timestamp"].iloc[0] == pd.Timestamp("2023-01-01T00:00Z")
    assert len(year) == 8759  # 365 days minus the real outage hour of 2023-03-24


def test_429_honours_retry_after(fake_binance, btcusdt_2023):
    fake_binance.add_fault(status=429, headers={"Retry-After": "3"})
    client, sleep = client_for(fake_binance)
    df = client.get_data("BTCUSDT", "1h", START, "2023-01-10T00:00Z")
    assert sleep.waits == [pytest.approx(3.0, abs=0.2)]  # from the 429, less the time since
    assert len(df) == 9 * 24 + 1
    assert len(fake_binance.klines_requests()) == 2


def test_418_ban_longer_than_allowed_is_a_clear_error(fake_binance):
    fake_binance.add_fault(status=418, headers={"Retry-After": "7200"})
    client, sleep = client_for(fake_binance, max_retry_after=60)
    with pytest.raises(FetchError, match=r"BTCUSDT 1h klines .*HTTP 418.*wait 7200 s") as err:
        client.get_data("BTCUSDT", "1h", START, END)
    assert "max_retry_after=60" in str(err.value)
    assert sleep.waits == []


def test_500_then_success(fake_binance):
    fake_binance.add_fault(status=500, times=2)
    client, sleep = client_for(fake_binance)
    df = client.get_data("BTCUSDT", "1h", START, "2023-01-02T00:00Z")
    assert len(df) == 25
    assert sleep.waits == [0.05, 0.1]  # bounded exponential backoff


def test_persistent_5xx_fails_naming_symbol_range_and_cause(fake_binance):
    fake_binance.add_fault(status=503, times=10)
    client, sleep = client_for(fake_binance, max_retries=3)
    with pytest.raises(FetchError) as err:
        client.get_data("BTCUSDT", "1h", START, "2023-01-02T00:00Z")
    msg = str(err.value)
    assert "BTCUSDT 1h klines 2023-01-01T00:00Z .. 2023-01-02T00:00Z" in msg
    assert "after 4 attempts" in msg and "HTTP 503" in msg
    assert sleep.waits == [0.05, 0.1, 0.2]  # capped at backoff_max
    assert len(fake_binance.klines_requests()) == 4


def test_timeout_is_retried(fake_binance):
    fake_binance.add_fault(Fault(status=200, body=[], delay=1.0))
    client, sleep = client_for(fake_binance, timeout=0.3)
    df = client.get_data("BTCUSDT", "1h", START, "2023-01-01T05:00Z")
    assert len(df) == 6
    assert len(sleep.waits) == 1


def test_unknown_symbol_fails_at_once(fake_binance):
    client, sleep = client_for(fake_binance)
    with pytest.raises(UnknownSymbolError, match="does not know the symbol 'DOGEEUR'"):
        client.get_data("DOGE/EUR", "1h", START, END)
    assert len(fake_binance.klines_requests()) == 1 and sleep.waits == []


def test_bad_interval_and_range_fail_before_any_request(fake_binance):
    client, _ = client_for(fake_binance)
    with pytest.raises(ConfigError, match="unknown kline interval '7h'"):
        client.get_data("BTCUSDT", "7h", START, END)
    with pytest.raises(ConfigError, match="is after end"):
        client.get_data("BTCUSDT", "1h", END, START)
    assert fake_binance.klines_requests() == []


def test_gaps_and_duplicates_from_the_api_are_caught(btcusdt_2023):
    march = btcusdt_2023[btcusdt_2023["timestamp"].dt.month == 3].reset_index(drop=True)
    served = pd.concat([march.drop(index=range(100, 110)), march.iloc[[200]]]).sort_values(
        "timestamp", kind="stable"
    )
    with FakeBinance({"BTCUSDT": served}) as fake:
        client, _ = client_for(fake)
        raw = client.get_data("BTCUSDT", "1h", "2023-03-01", "2023-03-31T23:00Z")
    assert len(raw) == len(served)  # what the API said, nothing hidden
    klines, report = validate_klines(raw, max_missing_fraction=0.05)
    assert report.duplicates_dropped == 1
    assert report.missing_candles == 10 + 1  # the 10 removed + the real outage hour 03-24 13:00
    assert len(klines) == len(march) - 10


def test_api_key_comes_from_the_environment(monkeypatch, fake_binance):
    monkeypatch.setenv("BINANCE_API_KEY", "key-from-env")
    client, _ = client_for(fake_binance)
    client.get_data("BTCUSDT", "1h", START, "2023-01-01T01:00Z")
    assert fake_binance.headers[-1].get("X-MBX-APIKEY") == "key-from-env"


def test_load_klines_from_binance(fake_binance, monkeypatch):
    monkeypatch.setenv("BINANCE_API_URL", fake_binance.api_url)
    klines, report = load_klines("binance", "BTCEUR", days=2, end="2023-12-31T23:00Z")
    assert len(klines) == 48 and report.rows_out == 48


def test_fake_speaks_binance_to_python_binance(fake_binance):
    """python-binance's own calls for ping, server time and exchange info work unmodified."""
    from binance.client import Client
    from binance.exceptions import BinanceAPIException

    client = Client(ping=False)
    client.API_URL = fake_binance.api_url
    assert client.ping() == {}
    assert abs(client.get_server_time()["serverTime"] - time.time() * 1000) < 60_000
    assert client.get_symbol_info("BTCEUR")["symbol"] == "BTCEUR"
    with pytest.raises(BinanceAPIException) as err:
        client.get_exchange_info() and client.get_klines(symbol="NOPEEUR", interval="1h")
    assert (err.value.status_code, err.value.code) == (400, -1121)
    page = client.get_klines(symbol="BTCUSDT", interval="1h", endTime=1672542000000, limit=3)
    assert [row[0] for row in page] == [1672531200000 + h * 3_600_000 for h in (1, 2, 3)]


def test_the_still_open_candle_is_dropped(btcusdt_2023):
    """Binance returns the current, unfinished candle; only finished hours come back."""
    # Pretend "now" is 2023-06-30 12:34: the 12:00 candle is still open.
    now = pd.Timestamp("2023-06-30T12:34:00Z").timestamp()
    with FakeBinance({"BTCUSDT": btcusdt_2023}) as fake:
        client, _ = client_for(fake, now=lambda: now)
        df = client.get_data("BTCUSDT", "1h", "2023-06-30T00:00Z")  # end defaults to now
        assert df["timestamp"].iloc[-1] == pd.Timestamp("2023-06-30T11:00Z")
        assert len(df) == 12
        five = client.get_five_days_data("BTCUSDT")
        assert five["timestamp"].iloc[-1] == pd.Timestamp("2023-06-30T11:00Z")
        # an explicit end at the open candle's open time still excludes it
        at = client.get_data("BTCUSDT", "1h", "2023-06-30T00:00Z", "2023-06-30T12:00Z")
        assert at["timestamp"].iloc[-1] == pd.Timestamp("2023-06-30T11:00Z")


def test_ping_reaches_the_api_or_says_what_to_do(fake_binance):
    import socket

    BinanceClient(api_url=fake_binance.api_url).ping()
    assert [path for path, _ in fake_binance.requests] == ["/api/v3/ping"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(FetchError, match=r"unreachable .*BINANCE_API_URL.*--source sample"):
        BinanceClient(api_url=f"http://127.0.0.1:{closed}/api", timeout=2.0).ping()
