"""The request guard the predictor and the console share, below any framework: a deadline for a
request's line and headers (:func:`header_timeout_protocol`, uvicorn), its body read whole within
a size and a time limit before the app sees it (:func:`read_body`, :class:`BodyLimit`), and one
rate-limited log line per refused request (:class:`RejectionLog`).

uvicorn has no deadline for a connection that sends nothing or trickles its headers or body
(slowloris), and no body size limit; each of these is one place here, imports nothing else of the
project, and is tested through both servers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

log = logging.getLogger("make_us_rich.guard")

DEFAULT_BODY_TIMEOUT = 30.0  # seconds to receive a whole body
DEFAULT_HEADER_TIMEOUT = 10.0  # seconds to receive a request line and its headers (< 1 kB)
_CLOSE = [(b"connection", b"close")]


class RejectionLog:
    """One WARNING line per rejected request (status, method, path, reason), at most
    ``per_second`` lines a second; the lines left out are counted in the next one."""

    def __init__(self, per_second: int = 10) -> None:
        self.per_second = per_second
        self._window = 0
        self._count = 0
        self._skipped = 0

    def __call__(self, status: int, method: str, path: str, reason: str) -> None:
        now = int(time.monotonic())
        if now != self._window:
            self._window, self._count = now, 0
        self._count += 1
        if self._count > self.per_second:
            self._skipped += 1
            return
        more = f" ({self._skipped} more rejected requests not logged)" if self._skipped else ""
        self._skipped = 0
        log.warning("rejected %s %s: %d %s%s", method, path[:200], status, reason[:300], more)


#: One rate limit for every rejection line of a process, whether a guard or the protocol refuses.
REJECTIONS = RejectionLog()


class RequestRefused(Exception):
    """A request a guard answers itself (status, reason, headers) before the app sees it."""

    def __init__(self, status: int, reason: str, close: bool = False, headers: Sequence = ()) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason
        self.headers = [*headers, *(_CLOSE if close else [])]


async def send_json(send, status: int, payload: dict[str, Any], headers: Sequence = ()) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


async def _receive(receive, deadline: float, timeout: float):
    try:
        return await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        raise RequestRefused(408, f"request body not received within {timeout:g} s", close=True) from None


async def drain(receive, max_body: int, timeout: float, deadline: float | None = None) -> None:
    """Read and discard a refused body (up to 8x the limit, within the body timeout) so that the
    client, still sending, reads the refusal instead of a connection reset."""
    deadline = time.monotonic() + timeout if deadline is None else deadline
    left = 8 * max_body
    try:
        while left > 0:
            message = await _receive(receive, deadline, timeout)
            left -= len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body"):
                return
    except RequestRefused:
        return


async def read_body(scope, receive, max_body: int, timeout: float) -> bytes:
    """The request's whole body: at most ``max_body`` bytes, sized or chunked (413), within
    ``timeout`` seconds (408), a Content-Length that is a number (400)."""
    deadline = time.monotonic() + timeout
    length = dict(scope.get("headers") or []).get(b"content-length")
    if length is not None and not length.strip().isdigit():
        raise RequestRefused(400, "Content-Length must be a non-negative integer", close=True)
    if length is not None and int(length) > max_body:
        await drain(receive, max_body, timeout, deadline)
        raise RequestRefused(413, f"request body over {max_body} bytes", close=True)
    chunks, size = [], 0
    while True:
        message = await _receive(receive, deadline, timeout)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > max_body:
            await drain(receive, max_body, timeout, deadline)
            raise RequestRefused(413, f"request body over {max_body} bytes", close=True)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def replay(body: bytes, receive) -> Callable[[], Awaitable[dict]]:
    """An ASGI ``receive`` that gives ``body`` once (already read), then the client's messages
    (a disconnect)."""
    given = False

    async def replayed():
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class BodyLimit:
    """ASGI middleware: every HTTP request's body read whole by :func:`read_body` before the app
    sees it; a refusal is answered by ``answer(send, refusal)`` (default: JSON ``{"error": …}``)
    and logged once (:data:`REJECTIONS`)."""

    def __init__(self, app, max_body: int, timeout: float = DEFAULT_BODY_TIMEOUT, answer=None) -> None:
        self.app = app
        self.max_body = max_body
        self.timeout = timeout
        self.answer = answer or (lambda send, r: send_json(send, r.status, {"error": r.reason}, r.headers))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        try:
            body = await read_body(scope, receive, self.max_body, self.timeout)
        except RequestRefused as refusal:
            REJECTIONS(refusal.status, scope.get("method", ""), scope.get("path", ""), refusal.reason)
            return await self.answer(send, refusal)
        await self.app(scope, replay(body, receive), send)


def header_timeout_protocol(timeout: float = DEFAULT_HEADER_TIMEOUT):
    """uvicorn's HTTP protocol class with a deadline for each request's line and headers.

    uvicorn closes idle keep-alive connections but has no deadline for a connection that sends
    nothing, or a request whose headers trickle in (slowloris: each byte restarts nothing), so
    a few hundred such connections stay open for good. This one answers 408 and closes them
    ``timeout`` seconds after the connection opened or the request's first byte arrived. The
    body has its own deadline (:func:`read_body`).
    """
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    head = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    reason = f"request headers not received within {timeout:g} s"
    body = json.dumps({"error": reason}).encode()
    answer = head + b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body

    class HeaderTimeoutProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._header_timer is None and self._between_requests():
                self._arm()  # the first bytes of a new request on a kept-alive connection
            super().data_received(data)
            if not self._between_requests():
                self._disarm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _between_requests(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            self._header_timer = self.loop.call_later(timeout, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or not self._between_requests():
                return
            REJECTIONS(408, "-", "(request line and headers incomplete)", reason)
            self.transport.write(answer)
            self.transport.close()

    return HeaderTimeoutProtocol
