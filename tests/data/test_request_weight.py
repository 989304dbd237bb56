"""Binance's request-weight limit, for real: python-binance against the fake Binance server on
127.0.0.1, which counts weight per minute, sends ``X-MBX-USED-WEIGHT-1m`` and answers 429 +
``Retry-After`` past its limit. The server and the client share a virtual clock that the
client's sleep advances, so a wait for the next minute takes no time."""

from __future__ import annotations

import json
import threading

import pytest
import requests

from make_us_rich.data.binance import KLINES_WEIGHT, BinanceClient, WeightBudget
from make_us_rich.errors import ConfigError
from make_us_rich.stages import fetch_many_stage
from make_us_rich.testing.fake_binance import WEIGHT_HEADER, FakeBinance, Fault

START, END = "2023-01-01T00:00:00Z", "2023-12-31T23:00:00Z"  # 9 pages of 1000 hours


class Clock:
    """Virtual time from 12:00:10 on a whole minute; ``sleep`` advances it."""

    def __init__(self) -> None:
        self.now, self.waits, self.lock = 1_700_000_000.0 - 1_700_000_000 % 60 + 10, [], threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.waits.append(seconds)
            self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def market(btcusdt_2023, sample_btceur, clock):
    """BTCUSDT 2023 and two more names for it (three symbols), weight limit 1200 per minute."""
    with FakeBinance({"BTCUSDT": btcusdt_2023, "ETHUSDT": btcusdt_2023, "SOLUSDT": btcusdt_2023},
                     weight_limit=1200, clock=clock) as fake:
        yield fake


def test_every_answer_says_the_weight_used_this_minute(market):
    url = f"{market.api_url}/v3/klines"
    first = requests.get(url, params={"symbol": "BTCUSDT", "interval": "1h", "limit": 5}, timeout=5)
    second = requests.get(url, params={"symbol": "NOPE", "interval": "1h"}, timeout=5)
    assert (first.headers[WEIGHT_HEADER], second.headers[WEIGHT_HEADER]) == ("2", "4")
    assert second.status_code == 400  # errors count too, as on Binance
    market.spend(1195)
    refused = requests.get(url, params={"symbol": "BTCUSDT", "interval": "1h", "limit": 5}, timeout=5)
    assert refused.status_code == 429 and refused.headers[WEIGHT_HEADER] == "1201"
    assert refused.headers["Retry-After"] == "50"  # the seconds to the next minute
    assert refused.json()["code"] == -1003 and market.rejected == 1


def test_client_waits_for_the_next_minute_instead_of_passing_the_limit(market, clock):
    market.spend(1070)  # another process of the same IP; the budget learns it from the header
    budget = WeightBudget(1200, margin=0.1, clock=clock, sleep=clock.sleep)
    client = BinanceClient(api_url=market.api_url, sleep=clock.sleep, budget=budget)
    df = client.get_data("BTCUSDT", "1h", START, END)
    assert len(df) == 8759
    assert market.rejected == 0  # never a 429
    (wait,) = clock.waits  # one wait, into the next minute
    assert 49 < wait < 52
    assert budget.peak <= budget.ceiling == 1080
    assert budget.stats()["waited_seconds"] == pytest.approx(wait, abs=0.1)


def test_a_429_pauses_and_retries_after_retry_after(market, clock):
    market.spend(1195)
    budget = WeightBudget(100_000, clock=clock, sleep=clock.sleep)  # a budget too generous
    client = BinanceClient(api_url=market.api_url, sleep=clock.sleep, budget=budget)
    df = client.get_data("BTCUSDT", "1h", START, END)
    assert len(df) == 8759
    assert market.rejected == 1 and budget.pauses == 1
    assert clock.waits == [pytest.approx(50, abs=1)]  # the server's Retry-After


def test_fetch_many_shares_one_budget_and_names_the_symbol_that_failed(market, tmp_path):
    # SOLUSDT: a ban longer than a client waits; ETHUSDT: a short 429 (everyone pauses, then goes on)
    market.add_fault(Fault(status=418, headers={"Retry-After": "7200"}, symbol="SOLUSDT"))
    market.add_fault(Fault(status=429, headers={"Retry-After": "2"}, symbol="ETHUSDT"))
    market.spend(900)
    index = fetch_many_stage("binance", ["BTCUSDT", "ETHUSDT", "SOLUSDT"], tmp_path / "market",
                             concurrency=3, api_url=market.api_url, start=START, end=END,
                             lookback_days=None, weight_limit=1200)
    assert sorted(index["symbols"]) == ["BTCUSDT", "ETHUSDT"]
    assert list(index["failed"]) == ["SOLUSDT"]
    assert "HTTP 418" in index["failed"]["SOLUSDT"] and "7200" in index["failed"]["SOLUSDT"]
    assert market.rejected == 0  # the shared budget kept the three threads under the limit
    weight = index["request_weight"]
    assert weight["weight_limit"] == 1200 and weight["rate_limit_pauses"] == 1
    assert weight["peak_used"] <= weight["ceiling"]
    assert weight["waited_seconds"] >= 1.9  # the 429's pause (slept for real), at least
    assert json.loads((tmp_path / "market" / "market.json").read_text())["failed"] == index["failed"]


def test_a_budget_that_cannot_hold_one_request_is_refused():
    with pytest.raises(ConfigError, match="request weight limit"):
        WeightBudget(KLINES_WEIGHT - 1)
    with pytest.raises(ConfigError, match="margin"):
        WeightBudget(1200, margin=1.0)


def test_fetch_many_takes_the_limit_binance_publishes(btcusdt_2023, tmp_path, monkeypatch):
    monkeypatch.delenv("BINANCE_WEIGHT_LIMIT", raising=False)
    with FakeBinance({"BTCUSDT": btcusdt_2023, "ETHUSDT": btcusdt_2023}, weight_limit=600) as fake:
        index = fetch_many_stage("binance", ["BTCUSDT", "ETHUSDT"], tmp_path / "market", concurrency=2,
                                 api_url=fake.api_url, start=START, end=END, lookback_days=None)
        assert fake.rejected == 0
    weight = index["request_weight"]
    assert (weight["published"], weight["weight_limit"], weight["ceiling"]) == (600, 600, 540)
    assert sorted(index["symbols"]) == ["BTCUSDT", "ETHUSDT"]
    monkeypatch.setenv("BINANCE_WEIGHT_LIMIT", "1000")  # the setting wins, Binance is not asked
    with FakeBinance({"BTCUSDT": btcusdt_2023}) as fake:
        index = fetch_many_stage("binance", ["BTCUSDT"], tmp_path / "again", api_url=fake.api_url,
                                 start="2023-12-01T00:00Z", end=END, lookback_days=None)
        assert [p for p, _ in fake.requests if p.endswith("exchangeInfo")] == []
    assert (index["request_weight"]["published"], index["request_weight"]["weight_limit"]) == (None, 1000)
