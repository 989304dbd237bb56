"""A Binance-compatible HTTP server on 127.0.0.1, serving real klines from memory.

It answers ``/api/v3/ping``, ``/api/v3/time``, ``/api/v3/exchangeInfo`` and ``/api/v3/klines``
the way Binance's public REST API does (``startTime``/``endTime``/``limit`` honoured, numbers as
strings, Binance error bodies such as ``{"code": -1121, "msg": "Invalid symbol."}``), so
``python-binance`` runs unmodified against it. Faults can be scripted: an HTTP status with
headers (429 + ``Retry-After``, 5xx) or a delay (client timeouts), consumed in order.

Request weight as Binance counts it: every answer carries ``X-MBX-USED-WEIGHT-1m`` (the weight
used in the current clock minute: klines 2, exchangeInfo 20, others 1); with ``weight_limit``
a request past the limit is answered 429 with ``Retry-After`` (the seconds to the next
minute), as Binance does, and ``exchangeInfo`` publishes it (else Binance's 6000); ``spend``
adds the weight of other clients of the same IP.

>>> with FakeBinance({"BTCEUR": klines}) as fake:                  # doctest: +SKIP
...     client = BinanceClient(api_url=fake.api_url)
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd

from make_us_rich.data.klines import DEFAULT_INTERVAL, INTERVALS, KLINE_COLUMNS
from make_us_rich.testing._server import LoopbackServer

DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1m"
WEIGHTS = {"/api/v3/klines": 2, "/api/v3/exchangeInfo": 20}  # every other path: 1
PUBLISHED_WEIGHT_LIMIT = 6000  # what Binance's exchangeInfo says today


@dataclass
class Fault:
    """One scripted misbehaviour for requests to ``path`` (``None``: any path), of ``symbol``
    only when given."""

    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    path: str | None = "/api/v3/klines"
    symbol: str | None = None


def _fmt(value: float) -> str:
    return "0" if not np.isfinite(value) else f"{value:.8f}"


class _Table:
    """One symbol's 1h (or other interval) klines as Binance JSON rows, indexed by open time."""

    def __init__(self, klines: pd.DataFrame, interval: str) -> None:
        self.interval = interval
        self.open_ms = klines["timestamp"].astype("int64").to_numpy() // 1_000_000
        close_ms = klines["close_time"].astype("int64").to_numpy() // 1_000_000
        floats = {c: klines[c].to_numpy(dtype="float64") for c in KLINE_COLUMNS if c not in
                  ("timestamp", "close_time", "trades")}
        trades = klines["trades"].fillna(0).astype("int64").to_numpy()
        self.rows = [
            [
                int(self.open_ms[i]),
                _fmt(floats["open"][i]),
                _fmt(floats["high"][i]),
                _fmt(floats["low"][i]),
                _fmt(floats["close"][i]),
                _fmt(floats["volume"][i]),
                int(close_ms[i]),
                _fmt(floats["quote_av"][i]),
                int(trades[i]),
                _fmt(floats["tb_base_av"][i]),
                _fmt(floats["tb_quote_av"][i]),
                "0",
            ]
            for i in range(len(self.open_ms))
        ]

    def select(self, start: int | None, end: int | None, limit: int) -> list[list[Any]]:
        lo = 0 if start is None else int(np.searchsorted(self.open_ms, start, side="left"))
        hi = len(self.open_ms) if end is None else int(np.searchsorted(self.open_ms, end, "right"))
        if start is None:  # Binance: without startTime, the latest `limit` candles up to endTime
            lo = max(lo, hi - limit)
        return self.rows[lo : min(hi, lo + limit)]


class FakeBinance(LoopbackServer):
    """Serve ``{symbol: klines}`` (validated 12-column frames, one interval) on loopback."""

    def __init__(
        self,
        klines: dict[str, pd.DataFrame],
        *,
        interval: str = DEFAULT_INTERVAL,
        host: str = "127.0.0.1",
        port: int = 0,
        server_time: int | None = None,
        weight_limit: int | None = None,
        clock: Any = time.time,
    ) -> None:
        self.interval = interval
        self.weight_limit, self.clock = weight_limit, clock
        self._minute, self._used = -1, 0
        self.rejected = 0  # requests answered 429 for passing weight_limit
        self.tables = {sym: _Table(df, interval) for sym, df in klines.items()}
        self.faults: deque[Fault] = deque()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.headers: list[dict[str, str]] = []  # request headers, in the order received
        self.server_time = server_time
        self._lock = threading.Lock()
        super().__init__(type("Handler", (_Handler,), {"fake": self}), host, port)

    @property
    def api_url(self) -> str:
        """What ``BinanceClient(api_url=...)`` / ``BINANCE_API_URL`` takes."""
        return f"{self.url}/api"

    # -- scripting
    def add_fault(self, fault: Fault | None = None, /, times: int = 1, **kwargs: Any) -> None:
        """Queue ``times`` copies of a fault (``Fault(**kwargs)`` when none is given)."""
        f = fault or Fault(**kwargs)
        with self._lock:
            self.faults.extend([f] * times)

    def spend(self, weight: int) -> None:
        """Count ``weight`` in this minute, as if another client of the same IP had used it."""
        self._charge(weight)

    def used_weight(self) -> int:
        with self._lock:
            return self._used if int(self.clock() // 60) == self._minute else 0

    def _charge(self, weight: int) -> tuple[int, float | None]:
        """Count a request's weight: (weight used this minute, seconds to wait when it is
        over ``weight_limit`` and refused)."""
        with self._lock:
            now = self.clock()
            minute = int(now // 60)
            if minute != self._minute:
                self._minute, self._used = minute, 0
            self._used += weight
            if self.weight_limit is not None and self._used > self.weight_limit:
                self.rejected += 1
                return self._used, (minute + 1) * 60 - now
            return self._used, None

    def klines_requests(self) -> list[dict[str, str]]:
        return [q for p, q in self.requests if p == "/api/v3/klines"]

    def _take_fault(self, path: str, symbol: str | None = None) -> Fault | None:
        """The first queued fault for this request (one of another symbol waits its turn)."""
        with self._lock:
            for i, fault in enumerate(self.faults):
                if fault.path in (None, path) and fault.symbol in (None, symbol):
                    del self.faults[i]
                    return fault
                if fault.symbol is None:
                    break  # faults for any symbol stay in order
        return None

    # -- endpoints: (status, body, headers)
    def handle(self, path: str, q: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        now = self.server_time if self.server_time is not None else int(time.time() * 1000)
        if path == "/api/v3/ping":
            return 200, {}, {}
        if path == "/api/v3/time":
            return 200, {"serverTime": now}, {}
        if path == "/api/v3/exchangeInfo":
            syms = [q["symbol"]] if "symbol" in q else sorted(self.tables)
            if any(s not in self.tables for s in syms):
                return 400, {"code": -1121, "msg": "Invalid symbol."}, {}
            return 200, {
                "timezone": "UTC",
                "serverTime": now,
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                "limit": self.weight_limit or PUBLISHED_WEIGHT_LIMIT}],
                "symbols": [
                    {"symbol": s, "status": "TRADING", "baseAsset": s[:3], "quoteAsset": s[3:]}
                    for s in syms
                ],
            }, {}
        if path == "/api/v3/klines":
            return self._klines(q)
        return 404, {"code": -1000, "msg": f"Unknown path {path}"}, {}

    def _klines(self, q: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        if "symbol" not in q or "interval" not in q:
            return 400, {"code": -1102, "msg": "Mandatory parameter was not sent."}, {}
        if q["interval"] not in INTERVALS:
            return 400, {"code": -1120, "msg": "Invalid interval."}, {}
        table = self.tables.get(q["symbol"])
        if table is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}, {}
        if q["interval"] != table.interval:
            return 400, {"code": -1120, "msg": "This fake serves one interval only."}, {}
        try:
            limit = int(q.get("limit", DEFAULT_LIMIT))
            start = int(q["startTime"]) if "startTime" in q else None
            end = int(q["endTime"]) if "endTime" in q else None
        except ValueError:
            return 400, {"code": -1100, "msg": "Illegal characters found in a parameter."}, {}
        limit = max(1, min(limit, MAX_LIMIT))
        return 200, table.select(start, end, limit), {}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeBinance
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.fake.requests.append((parts.path, query))
        self.fake.headers.append(dict(self.headers.items()))
        used, refused = self.fake._charge(WEIGHTS.get(parts.path, 1))
        weight = {WEIGHT_HEADER: str(used)}
        fault = self.fake._take_fault(parts.path, query.get("symbol"))
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            body = fault.body
            if body is None:
                body = {"code": -1003, "msg": "Too many requests."} if fault.status in (
                    418, 429) else None
            self._send(fault.status, body, {**weight, **fault.headers})
            return
        if refused is not None:
            self._send(429, {"code": -1003, "msg": "Too much request weight used; current limit is "
                             f"{self.fake.weight_limit} request weight per 1 MINUTE."},
                       {**weight, "Retry-After": str(max(1, round(refused)))})
            return
        status, body, headers = self.fake.handle(parts.path, query)
        self._send(status, body, {**weight, **headers})

    def _send(self, status: int, body: Any, headers: dict[str, str]) -> None:
        data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass
