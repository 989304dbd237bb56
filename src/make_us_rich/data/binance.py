"""Hourly (or any interval) klines from Binance's public REST API, through ``python-binance``.

Klines are public: API keys are optional and read from ``BINANCE_API_KEY`` /
``BINANCE_API_SECRET`` when set. ``BINANCE_API_URL`` (e.g. ``https://api.binance.us/api`` or a
local test server ``http://127.0.0.1:PORT/api``) overrides the endpoint.

Long ranges are paged (1000 klines per request) from the start time forward; each page starts
one interval after the last candle received, so pages neither overlap nor leave holes. The end
time is inclusive of the candle that *opens* at it and defaults to now: give it explicitly for a
reproducible window (the scheduled pipeline passes its scheduled time). The candle that is still
open (close time in the future) is dropped: only finished hours are returned.

Request weight: Binance limits each IP to a request weight per minute (the limit it publishes
in ``exchangeInfo``, 6000 today, else 1200; ``BINANCE_WEIGHT_LIMIT`` or ``weight_limit``
override it; a klines page of 1000 weighs 2) and answers 429,
then 418 (a ban) to a client that goes on. Every client has a :class:`WeightBudget` (shared by
the threads of one fetch of many symbols): it counts the weight it spends, reads the IP's
weight used this minute from the ``X-MBX-USED-WEIGHT-1m`` header of each answer (which
includes other processes of the same IP), and waits for the next minute before a request would
take the minute past ``1 - margin`` of the limit.

Faults: HTTP 429/418 pause every client of the budget for ``Retry-After`` (refusing waits over
``max_retry_after``), 5xx, connection errors and timeouts retry with bounded exponential backoff;
after ``max_retries`` a :class:`~make_us_rich.errors.FetchError` names the symbol, range and
cause. An unknown symbol or interval fails at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pandas as pd

from make_us_rich.data.klines import (
    DEFAULT_INTERVAL,
    interval_ms,
    klines_from_binance,
    normalize_symbol,
    to_epoch_ms,
    to_utc_timestamp,
)
from make_us_rich.errors import ConfigError, FetchError, UnknownSymbolError

log = logging.getLogger(__name__)

MAX_LIMIT = 1000  # klines per request, Binance's maximum
_INVALID_SYMBOL = -1121
_INVALID_INTERVAL = -1120
_RETRY_STATUS = {429, 418}

TimeLike = str | int | float | datetime | pd.Timestamp

WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1m"
#: request weight per minute and IP; Binance's published limit is higher today (6000), this is
#: the conservative default of older and regional endpoints (``BINANCE_WEIGHT_LIMIT`` overrides)
DEFAULT_WEIGHT_LIMIT = 1200
WEIGHT_LIMIT_ENV = "BINANCE_WEIGHT_LIMIT"
KLINES_WEIGHT = 2  # GET /api/v3/klines, any limit up to 1000
EXCHANGE_INFO_WEIGHT = 20


class WeightBudget:
    """The request weight one IP may spend per (clock) minute, shared by threads: ``acquire``
    before a request (waits for the next minute when the request would pass ``1 - margin`` of
    ``limit``, or while a 429/418's ``Retry-After`` pause lasts), ``observe`` each answer's
    headers (Binance's count of the minute, other processes of the IP included), ``pause`` on a
    429/418. ``waited`` is the seconds spent waiting, ``peak`` the highest weight seen used."""

    def __init__(self, limit: int | None = None, *, margin: float = 0.1,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        if limit is None:
            limit = int(os.environ.get(WEIGHT_LIMIT_ENV) or DEFAULT_WEIGHT_LIMIT)
        if limit < KLINES_WEIGHT or not 0 <= margin < 1:
            raise ConfigError(f"request weight limit must be >= {KLINES_WEIGHT} and margin in [0, 1), "
                              f"got {limit} and {margin}")
        self.limit, self.ceiling = int(limit), max(KLINES_WEIGHT, int(limit * (1 - margin)))
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._minute, self._used, self._paused_until = -1, 0, 0.0
        self.waited, self.peak, self.pauses = 0.0, 0, 0

    def acquire(self, weight: int, *, max_wait: float = 120.0, what: str = "a request") -> None:
        """Reserve ``weight`` in the current minute, waiting as long as needed (at most
        ``max_wait`` for a 429/418 pause: a longer one is a FetchError)."""
        while True:
            paused = None
            with self._lock:
                now = self._clock()
                if now < self._paused_until:
                    paused, wait = self._paused_until, self._paused_until - now
                    if wait > max_wait:
                        raise FetchError(f"{what}: Binance asked us to pause {wait:.0f} s (HTTP 429/418), "
                                         f"more than max_retry_after={max_wait:.0f} s; retry later")
                else:
                    self._roll(now)
                    if self._used + weight <= self.ceiling:
                        self._used += weight
                        self.peak = max(self.peak, self._used)
                        return
                    wait = (self._minute + 1) * 60.0 - now + 0.5  # into the next minute, clock skew aside
                    log.info("request weight %d/%d this minute: waiting %.1f s for the next one",
                             self._used, self.limit, wait)
            self.waited += wait
            self._sleep(wait)
            with self._lock:  # the pause was slept (unless a later 429 extended it)
                if paused is not None and self._paused_until == paused:
                    self._paused_until = 0.0

    def observe(self, headers: Any) -> None:
        """Take Binance's count of this minute's weight (``X-MBX-USED-WEIGHT-1m``)."""
        value = (headers or {}).get(WEIGHT_HEADER)
        if value is None:
            return
        try:
            used = int(value)
        except ValueError:
            return
        with self._lock:
            self._roll(self._clock())
            self._used = max(self._used, used)
            self.peak = max(self.peak, used)

    def pause(self, seconds: float) -> None:
        """Every client of this budget waits ``seconds`` (a 429/418's Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            self.pauses += 1

    def _roll(self, now: float) -> None:
        minute = int(now // 60)
        if minute != self._minute:
            self._minute, self._used = minute, 0

    def stats(self) -> dict[str, Any]:
        return {"weight_limit": self.limit, "ceiling": self.ceiling, "peak_used": self.peak,
                "waited_seconds": round(self.waited, 1), "rate_limit_pauses": self.pauses}


class BinanceClient:
    """Fetch klines as the 12-column DataFrame of :mod:`make_us_rich.data.klines`.

    >>> client = BinanceClient()                                    # doctest: +SKIP
    >>> df = client.get_data("BTC/EUR", "1h", "2023-01-01", "2023-02-01")  # doctest: +SKIP
    """

    def __init__(
        self,
        api_key: str | None = None,
        api_secret: str | None = None,
        *,
        api_url: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        max_retry_after: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
        budget: WeightBudget | None = None,
    ) -> None:
        from binance.client import Client  # python-binance, the "data" extra

        self.api_url = (api_url or os.environ.get("BINANCE_API_URL") or "").rstrip("/") or None
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._now = now
        self.budget = budget if budget is not None else WeightBudget(sleep=sleep)
        self._client = Client(
            api_key if api_key is not None else os.environ.get("BINANCE_API_KEY"),
            api_secret if api_secret is not None else os.environ.get("BINANCE_API_SECRET"),
            requests_params={"timeout": timeout},
            ping=False,  # no network in the constructor; the first request shows problems
        )
        if self.api_url:
            self._client.API_URL = self.api_url

    # ------------------------------------------------------------------ public API
    def ping(self) -> None:
        """One quick request, so that an unreachable API fails at once with what to do instead
        of after the retries of a fetch (or inside a pipeline step)."""
        import requests
        from binance.exceptions import BinanceAPIException, BinanceRequestException

        try:
            self._client.ping()
        except (requests.RequestException, BinanceAPIException, BinanceRequestException) as exc:
            raise FetchError(
                f"Binance API at {self._client.API_URL} is unreachable ({type(exc).__name__}); "
                "check the network, or set BINANCE_API_URL (e.g. https://api.binance.us/api), "
                "or run offline on the bundled sample (SOURCE=sample / --source sample)"
            ) from None

    def check_symbol(self, symbol: str, interval: str = DEFAULT_INTERVAL) -> None:
        """Ask for one candle, without retries: an unknown symbol or interval fails here, before
        a pipeline starts (``mkrich run``'s preflight)."""
        import requests
        from binance.exceptions import BinanceAPIException, BinanceRequestException

        sym = normalize_symbol(symbol)
        try:
            self._klines(f"checking {sym}", symbol=sym, interval=interval, limit=1)
        except BinanceAPIException as exc:
            _raise_for_code(exc, sym, interval)
            raise FetchError(f"Binance answered HTTP {exc.status_code} for {sym}: {exc.message}"
                             f"{_HINT}") from None
        except (requests.RequestException, BinanceRequestException) as exc:
            raise FetchError(f"Binance API at {self._client.API_URL}: {_short_cause(exc)}"
                             f"{_HINT}") from None

    def get_data(
        self,
        symbol: str,
        interval: str = DEFAULT_INTERVAL,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        *,
        progress: bool = False,
    ) -> pd.DataFrame:
        """Klines of ``symbol`` whose open time is in ``[start, end]`` (``end`` default: now).

        ``start`` defaults to 1000 candles before ``end``. Returns the typed 12-column frame,
        sorted, without duplicates; not yet validated (see :func:`validate_klines`).
        """
        sym = normalize_symbol(symbol)
        step = interval_ms(interval)
        end_ms = to_epoch_ms(end) if end is not None else int(self._now() * 1000)
        start_ms = to_epoch_ms(start) if start is not None else end_ms - step * MAX_LIMIT
        if start_ms > end_ms:
            raise ConfigError(
                f"start {to_utc_timestamp(start_ms)} is after end {to_utc_timestamp(end_ms)}"
            )
        label = f"{sym} {interval} klines {_iso(start_ms)} .. {_iso(end_ms)}"
        expected = (end_ms - start_ms) // step + 1

        rows: list[list[Any]] = []
        cursor = start_ms
        with _progress(expected, label, enabled=progress) as bar:
            while cursor <= end_ms:
                page = self._request_page(sym, interval, cursor, end_ms, label)
                if not page:
                    break
                # Defensive: keep only candles in range and after what we already have.
                last = rows[-1][0] if rows else cursor - 1
                page = [r for r in page if last < int(r[0]) <= end_ms]
                if not page:
                    break
                rows.extend(page)
                bar.update(len(page))
                cursor = int(page[-1][0]) + step
        # Binance also returns the candle that is still open (its close_time is in the future):
        # it is not a finished hour and must not be trained on or predicted from.
        now_ms = int(self._now() * 1000)
        if rows and int(rows[-1][6]) > now_ms:
            rows = [r for r in rows if int(r[6]) <= now_ms]
            log.info("dropped the still-open candle of %s", label)
        log.info("fetched %d candles for %s", len(rows), label)
        return klines_from_binance(rows)

    def get_five_days_data(
        self, symbol: str, interval: str = DEFAULT_INTERVAL, end: TimeLike | None = None, **kw: Any
    ) -> pd.DataFrame:
        """The last five days of klines up to ``end`` (default: now)."""
        return self.get_days_data(symbol, 5, interval=interval, end=end, **kw)

    def get_one_year_data(
        self, symbol: str, interval: str = DEFAULT_INTERVAL, end: TimeLike | None = None, **kw: Any
    ) -> pd.DataFrame:
        """The last 365 days of klines up to ``end`` (default: now)."""
        return self.get_days_data(symbol, 365, interval=interval, end=end, **kw)

    def get_days_data(
        self,
        symbol: str,
        days: float,
        interval: str = DEFAULT_INTERVAL,
        end: TimeLike | None = None,
        **kw: Any,
    ) -> pd.DataFrame:
        """The last ``days`` days of klines: open times in ``(end - days, end]``."""
        if days <= 0:
            raise ConfigError(f"days must be > 0, got {days}")
        end_ts = to_utc_timestamp(end) if end is not None else pd.Timestamp(self._now(), unit="s", tz="UTC")
        start_ts = end_ts - pd.Timedelta(days=days) + pd.Timedelta(milliseconds=1)
        return self.get_data(symbol, interval, start_ts, end_ts, **kw)

    # ------------------------------------------------------------------ internals
    def _request_page(
        self, symbol: str, interval: str, start_ms: int, end_ms: int, label: str
    ) -> list[list[Any]]:
        import requests
        from binance.exceptions import BinanceAPIException, BinanceRequestException

        attempt = 0
        while True:
            attempt += 1
            try:
                return self._klines(
                    f"fetching {label}",
                    symbol=symbol,
                    interval=interval,
                    startTime=start_ms,
                    endTime=end_ms,
                    limit=MAX_LIMIT,
                )
            except BinanceAPIException as exc:
                _raise_for_code(exc, symbol, interval)
                status = exc.status_code
                if status in _RETRY_STATUS:
                    wait = _retry_after(exc.response)
                    if wait is None:
                        wait = self._backoff(attempt)
                    elif wait > self.max_retry_after:
                        raise FetchError(
                            f"fetching {label}: Binance rate-limited us (HTTP {status}) and "
                            f"asks to wait {wait:.0f} s, more than max_retry_after="
                            f"{self.max_retry_after:.0f} s; retry later or lower the request rate"
                        ) from None
                    cause = f"HTTP {status} rate limit"
                    if attempt <= self.max_retries:  # every client of the budget waits, not only this one
                        log.warning("%s: %s; every request pauses %.1f s (retry %d/%d)", symbol, cause,
                                    wait, attempt, self.max_retries)
                        self.budget.pause(wait)
                        continue
                elif status >= 500:
                    wait, cause = self._backoff(attempt), f"HTTP {status} ({exc.message})"
                else:
                    raise FetchError(
                        f"fetching {label}: Binance answered HTTP {status} "
                        f"(code {exc.code}): {exc.message}"
                    ) from None
            except (requests.Timeout, requests.ConnectionError) as exc:
                kind = "timeout" if isinstance(exc, requests.Timeout) else "connection error"
                wait, cause = self._backoff(attempt), f"{kind}: {_short_cause(exc)}"
            except BinanceRequestException as exc:  # 2xx with a body that is not JSON
                wait, cause = self._backoff(attempt), f"invalid response: {exc.message}"

            if attempt > self.max_retries:
                raise FetchError(
                    f"fetching {label} from {self._client.API_URL} failed after {attempt} "
                    f"attempts ({cause}){_HINT}"
                )
            log.warning("%s: %s; retry %d/%d in %.1f s", symbol, cause, attempt,
                        self.max_retries, wait)
            self._sleep(wait)

    def published_weight_limit(self, symbol: str) -> int | None:
        """The request weight per minute Binance publishes (``exchangeInfo``'s ``rateLimits``,
        asked for one symbol: a small answer), or None when it cannot be had."""
        import requests
        from binance.exceptions import BinanceAPIException, BinanceRequestException

        self.budget.acquire(EXCHANGE_INFO_WEIGHT, max_wait=self.max_retry_after, what="exchangeInfo")
        try:
            info = self._client._get("exchangeInfo", data={"symbol": normalize_symbol(symbol)})
        except (requests.RequestException, BinanceAPIException, BinanceRequestException) as exc:
            log.info("no published request-weight limit (%s)", _short_cause(exc))
            return None
        for limit in info.get("rateLimits") or []:
            if (limit.get("rateLimitType"), limit.get("interval"), limit.get("intervalNum", 1)) == (
                    "REQUEST_WEIGHT", "MINUTE", 1):
                return int(limit["limit"])
        return None

    def _klines(self, what: str, **params: Any) -> list[list[Any]]:
        """One klines request within the weight budget; the answer's weight header (error or
        not) updates it."""
        self.budget.acquire(KLINES_WEIGHT, max_wait=self.max_retry_after, what=what)
        self._client.response = None
        try:
            return self._client.get_klines(**params)
        finally:
            response = self._client.response
            if response is not None:
                self.budget.observe(response.headers)

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))


#: what to do when Binance cannot be reached, appended to the final error
_HINT = ("; check the network, set BINANCE_API_URL (e.g. https://api.binance.us/api), or work "
         "offline on the bundled sample (--source sample)")


def _raise_for_code(exc: Any, symbol: str, interval: str) -> None:
    """Binance's answers that no retry can change: an unknown symbol or interval."""
    if exc.code == _INVALID_SYMBOL:
        raise UnknownSymbolError(
            f"Binance does not know the symbol {symbol!r} ({exc.message}); check "
            "the pair (crypto + quote, e.g. BTCEUR) on the exchange"
        ) from None
    if exc.code == _INVALID_INTERVAL:
        raise ConfigError(f"Binance rejected the interval {interval!r}: {exc.message}") from None


def _short_cause(exc: BaseException) -> str:
    """The root cause of a requests/urllib3 error in a few words ("connection refused", "read
    timed out"), not the 400 characters of its repr with the URL and the object addresses."""
    import re

    seen: BaseException | None = exc
    text = str(exc)
    while seen is not None:  # requests wraps urllib3's MaxRetryError, which wraps the cause
        reason = getattr(seen, "reason", None)
        if isinstance(reason, BaseException):
            seen, text = reason, str(reason)
            continue
        if seen.args and isinstance(seen.args[0], BaseException):
            seen, text = seen.args[0], str(seen.args[0])
            continue
        break
    # "<urllib3.connection.HTTPConnection object at 0x..>: " or "HTTPConnection(host=.., port=..): "
    text = re.sub(r"^(<[^>]*>|\w+\(host=[^)]*\)):\s*", "", text)
    text = re.sub(r"^Failed to establish a new connection:\s*", "", text)
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    text = re.sub(r"\s*\(Caused by .*$|\s*\(read timeout=.*$", "", text)
    text = (text or type(exc).__name__)[:120]
    return text[:1].lower() + text[1:]


def _retry_after(response: Any) -> float | None:
    value = getattr(response, "headers", {}).get("Retry-After") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%MZ")


@contextlib.contextmanager
def _progress(total: int, label: str, *, enabled: bool) -> Iterator[Any]:
    """The progress bar of a fetch; while it is shown, log lines (a retry) are written above it
    instead of through it."""
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=label, unit="candle", disable=not enabled, leave=False) as bar:
        root = logging.getLogger()
        console = [h for h in root.handlers if type(h) is logging.StreamHandler
                   and h.stream in (sys.stdout, sys.stderr)]
        if not enabled or not console:
            yield bar
            return
        saved = root.handlers[:]
        root.handlers = [h for h in saved if h not in console] + [_AboveBar(h, type(bar)) for h in console]
        try:
            yield bar
        finally:
            root.handlers = saved


class _AboveBar(logging.Handler):
    """A console handler's records written through ``tqdm.write``: the bar is cleared, the line
    written, the bar redrawn below it."""

    def __init__(self, console: logging.StreamHandler, tqdm_class: Any) -> None:
        super().__init__(console.level)
        self.console, self.tqdm_class = console, tqdm_class
        self.setFormatter(console.formatter)
        self.filters = console.filters[:]

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.tqdm_class.write(self.format(record), file=self.console.stream)
        except Exception:
            self.handleError(record)
