"""The model server: KServe's ``ModelServer`` with one :class:`ForecastModel` per symbol.

Glue only: an ASGI middleware that guards every request before KServe sees it (below), the
loaded version in the v2 model metadata (``versions``), readiness and liveness that tell the
truth about the models and their reload loops, ``GET /mkrich/status`` (versions, reload state
and errors), and, when no symbols are given, discovery of symbols published later.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

from fastapi import Request

from make_us_rich.data import normalize_symbol
from make_us_rich.errors import ConfigError
from make_us_rich.serving import metrics
from make_us_rich.serving.tensors import DEFAULT_MAX_BATCH, BadRequest, check_binary_framing
from make_us_rich.store import UNIVERSAL_MODEL, ModelStore, StoreError

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 8 * 1024 * 1024  # 8 MiB: ~13,000 windows of 24 x 10 as JSON
DEFAULT_BODY_TIMEOUT = 30.0  # seconds to receive a whole body: a window is a few kB
DEFAULT_HEADER_TIMEOUT = 10.0  # seconds to receive a request line and its headers (< 1 kB)
TOKEN_ENV = "MKRICH_SERVING_TOKEN"
_BINARY_HEADER = b"inference-header-content-length"


def _is_inference_path(path: str) -> bool:
    return (path.startswith("/v2/models/") and path.rstrip("/").endswith("/infer")) or (
        path.startswith("/v1/models/") and path.endswith((":predict", ":explain"))
    )


def authorized(headers: dict[bytes, bytes], token: str | None) -> bool:
    """Whether the request carries ``Authorization: Bearer <token>`` (never, without a token)."""
    if not token:
        return False
    given = headers.get(b"authorization", b"")
    return hmac.compare_digest(given, f"Bearer {token}".encode())


def _is_repository_path(path: str) -> bool:
    return path.startswith(("/v2/repository", "/v1/repository"))


_MODEL = r"[^/:]+"
#: Every route this server answers, with its methods; anything else is refused by the guard
#: (404, 405, or 501 for the KServe routes below) before KServe can log a traceback for it.
ROUTES: tuple[tuple[re.Pattern[str], frozenset[str]], ...] = tuple(
    (re.compile(pattern), frozenset(methods)) for pattern, methods in (
        (r"/", ("GET",)),  # KServe's liveness
        (r"/metrics", ("GET",)),
        (r"/openapi\.json", ("GET",)),
        (r"/mkrich/status", ("GET",)),
        (r"/v1/models", ("GET",)),
        (rf"/v1/models/{_MODEL}", ("GET",)),
        (rf"/v1/models/{_MODEL}:predict", ("POST",)),
        (r"/v2", ("GET",)),
        (r"/v2/health/(live|ready)", ("GET",)),
        (r"/v2/models", ("GET",)),
        (rf"/v2/models/{_MODEL}", ("GET",)),
        (rf"/v2/models/{_MODEL}/ready", ("GET",)),
        (rf"/v2/models/{_MODEL}/infer", ("POST",)),
    )
)
#: Routes KServe registers that this server does not support: 501 with what to use instead.
UNSUPPORTED: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"/v2/models/{_MODEL}/versions/[^/]+(/ready|/infer)?"),
     "model versions are not addressable: each model serves its latest accepted version "
     "(GET /v2/models/<model> lists it in 'versions'); drop /versions/<v> from the path"),
    (re.compile(rf"/v1/models/{_MODEL}:explain"), "this model has no explainer; use :predict"),
)


def check_route(method: str, path: str) -> tuple[int, str, list] | None:
    """``None`` for a route the server answers, else (status, reason, headers) to refuse it with."""
    path = path.rstrip("/") or "/"
    for pattern, reason in UNSUPPORTED:
        if pattern.fullmatch(path):
            return 501, reason, []
    allowed = set().union(*(methods for pattern, methods in ROUTES if pattern.fullmatch(path)))
    if not allowed:
        return 404, "no such route; the routes are listed in the serving docs (docs/serving.md)", []
    if method not in allowed and not (method == "HEAD" and "GET" in allowed):
        return 405, f"method {method[:20]} not allowed; use {', '.join(sorted(allowed))}", [
            (b"allow", ", ".join(sorted(allowed)).encode())]
    return None


class RejectionLog:
    """One WARNING line per rejected request (status, method, path with the model, reason), at
    most ``per_second`` lines a second; the lines left out are counted in the next one."""

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


#: One rate limit for every rejection line, whether the guard or the HTTP protocol refuses.
REJECTIONS = RejectionLog()


def header_timeout_protocol(timeout: float):
    """uvicorn's HTTP protocol class with a deadline for each request's line and headers.

    uvicorn closes idle keep-alive connections but has no deadline for a connection that sends
    nothing, or a request whose headers trickle in (slowloris: each byte restarts nothing), so
    a few hundred such connections stay open for good. This one answers 408 and closes them
    ``timeout`` seconds after the connection opened or the request's first byte arrived. The
    body has its own deadline in :class:`GuardMiddleware`.
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


class _QuietClientErrors(logging.Filter):
    """KServe logs a full traceback for every 4xx (and 501) it raises; :class:`RejectionLog`
    already wrote the one line such a request deserves."""

    def filter(self, record: logging.LogRecord) -> bool:
        from kserve.errors import InvalidInput, ModelNotFound, UnsupportedProtocol

        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, InvalidInput | ModelNotFound | UnsupportedProtocol | NotImplementedError)


async def _send_json(send, status: int, payload: dict[str, Any], headers: Sequence = ()) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


_CLOSE = [(b"connection", b"close")]


class RequestRefused(Exception):
    """A request the guard answers itself (status, reason, headers) before KServe sees it; a
    model version the server will not load is :class:`~make_us_rich.serving.predictor.ModelRefused`."""

    def __init__(self, status: int, reason: str, close: bool = False, headers: Sequence = ()) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason
        self.headers = [*headers, *(_CLOSE if close else [])]


class GuardMiddleware:
    """Everything a request must pass before KServe parses it:

    * the model repository routes (``/v2/repository/...`` load/unload) are turned off (403):
      the store decides what is served, and KServe's ``load`` cannot bring back a model that
      ``unload`` removed, so even a caller holding the token could only break the server;
    * the bearer token (if configured) on the inference routes (401);
    * only the routes in :data:`ROUTES` reach KServe: others get 404, 405 (wrong method) or
      501 (:data:`UNSUPPORTED`: versioned routes, ``:explain``), with one log line, where
      KServe logged a traceback each;
    * the body is read here, whole, within ``max_body`` bytes (413, chunked or not) and
      ``body_timeout`` seconds (408): a client that stops sending mid-body is cut off;
    * the binary tensor extension's framing is checked (400) before KServe slices with it.

    Every 4xx/5xx answer gets one rate-limited log line (:class:`RejectionLog`).
    """

    def __init__(self, app, max_body: int = DEFAULT_MAX_BODY, token: str | None = None,
                 body_timeout: float = DEFAULT_BODY_TIMEOUT, known=lambda name: False) -> None:
        self.app = app
        self.known = known  # model name -> served?, for the metrics' model label
        self.max_body = max_body
        self.token = token
        self.body_timeout = body_timeout
        self.rejections = REJECTIONS

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        method, path = scope.get("method", ""), scope.get("path", "")
        answer: dict[str, Any] = {}
        if _is_inference_path(path):
            started = time.perf_counter()
            try:
                return await self._guard(scope, receive, send, method, path, answer)
            finally:
                model = metrics.request_label(path, self.known)
                metrics.REQUESTS.labels(model, str(answer.get("status", 500))).inc()
                metrics.LATENCY.labels(model).observe(time.perf_counter() - started)
        return await self._guard(scope, receive, send, method, path, answer)

    async def _guard(self, scope, receive, send, method: str, path: str, answer: dict[str, Any]):
        async def watched_send(message):
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body" and answer.get("status", 200) >= 400:
                answer["body"] = answer.get("body", b"") + message.get("body", b"")[:1000]
            await send(message)

        try:
            body = await self._admit(scope, receive)
        except RequestRefused as refusal:
            self.rejections(refusal.status, method, path, refusal.reason)
            answer["status"] = refusal.status
            return await _send_json(send, refusal.status, {"error": refusal.reason}, refusal.headers)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        try:
            await self.app(scope, replay, watched_send)
        finally:
            if answer.get("status", 200) >= 400:
                self.rejections(answer["status"], method, path, _reason(answer.get("body", b"")))

    async def _admit(self, scope, receive) -> bytes:
        path = scope.get("path", "")
        if _is_repository_path(path):
            raise RequestRefused(403, "the model repository API is disabled: the model store decides "
                               "what is served (publish with `mkrich publish`)")
        headers = dict(scope.get("headers") or [])
        if self.token and _is_inference_path(path) and not authorized(headers, self.token):
            raise RequestRefused(401, "missing or wrong bearer token", headers=[(b"www-authenticate", b"Bearer")])
        refused = check_route(scope.get("method", ""), path)
        if refused:
            await self._drain(receive, time.monotonic() + self.body_timeout)
            raise RequestRefused(refused[0], refused[1], headers=refused[2])
        deadline = time.monotonic() + self.body_timeout
        length = headers.get(b"content-length")
        if length is not None and not length.strip().isdigit():
            raise RequestRefused(400, "Content-Length must be a non-negative integer", close=True)
        if length is not None and int(length) > self.max_body:
            await self._drain(receive, deadline)
            raise RequestRefused(413, f"request body over {self.max_body} bytes", close=True)
        chunks, size = [], 0
        while True:
            message = await self._receive(receive, deadline)
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                await self._drain(receive, deadline)
                raise RequestRefused(413, f"request body over {self.max_body} bytes", close=True)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if _is_inference_path(path) and _BINARY_HEADER in headers:
            try:
                check_binary_framing(headers[_BINARY_HEADER], body)
            except BadRequest as exc:
                raise RequestRefused(400, str(exc)) from None
        return body

    async def _receive(self, receive, deadline: float):
        try:
            return await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise RequestRefused(408, f"request body not received within {self.body_timeout:g} s", close=True) from None

    async def _drain(self, receive, deadline: float) -> None:
        """Read and discard a refused body (up to 8x the limit, within the body timeout) so that
        the client, still sending, reads the 413 instead of a connection reset."""
        left = 8 * self.max_body
        try:
            while left > 0:
                message = await self._receive(receive, deadline)
                left -= len(message.get("body", b""))
                if message["type"] != "http.request" or not message.get("more_body"):
                    return
        except RequestRefused:
            return


def _reason(body: bytes) -> str:
    try:
        payload = json.loads(body)
    except ValueError:
        return body[:300].decode("utf-8", "replace")
    if isinstance(payload, dict):
        return str(payload.get("error") or payload.get("detail") or payload)
    return str(payload)


def build_models(store_uri: str, symbols: Sequence[str] | None, reload_interval: float, max_batch: int):
    """Load a model per symbol; ``symbols=None``: every symbol with a ``latest`` in the store."""
    from make_us_rich.serving.predictor import ForecastModel

    store = ModelStore(store_uri)
    if symbols is None:
        symbols = store.symbols()
        if not symbols:
            raise StoreError(f"no accepted model of any symbol in {store.uri}; train and publish one "
                             "first (mkrich run, or mkrich train + mkrich publish)")
    models = [
        ForecastModel(normalize_symbol(s), store, reload_interval=reload_interval, max_batch=max_batch)
        for s in symbols
    ]
    for model in models:
        model.load()
    universal = universal_model(models, store, reload_interval, max_batch)
    if universal is not None:
        models.append(universal)
    return models


def universal_model(models: list, store: ModelStore, reload_interval: float, max_batch: int):
    """The ``universal`` model when a served symbol uses a universal model, else ``None``."""
    from make_us_rich.serving.predictor import UniversalForecastModel

    if not any(m.current is not None and m.current.shared for m in models):
        return None
    universal = UniversalForecastModel(models, store, reload_interval=reload_interval, max_batch=max_batch)
    universal.load()
    return universal


class Discovery:
    """With no ``--symbols``: every ``reload_interval`` seconds, serve the symbols that got a
    first accepted model since. A symbol that fails to load is retried at the next round and
    reported in ``errors``; nothing stops the loop."""

    def __init__(self, models: list, register, reload_interval: float, max_batch: int) -> None:
        self.models = models
        self.register = register
        self.reload_interval = reload_interval
        self.max_batch = max_batch
        self.errors: dict[str, str] = {}
        self._stop = threading.Event()

    def check(self) -> None:
        from make_us_rich.serving.predictor import ForecastModel

        store = self.models[0].store
        try:
            known = {m.symbol for m in self.models if m.symbol != UNIVERSAL_MODEL}
            for symbol in (s for s in store.symbols() if s not in known):
                model = ForecastModel(symbol, store, reload_interval=self.reload_interval, max_batch=self.max_batch)
                try:
                    model.load()
                except Exception as exc:
                    if self.errors.get(symbol) != str(exc):
                        log.error("cannot serve %s yet: %s", symbol, exc)
                    self.errors[symbol] = str(exc)
                    continue
                self.errors.pop(symbol, None)
                self.register(model)
                self.models.append(model)
                model.start_watcher()
                log.warning("now serving %s (published after the start)", model.name)
            if not any(m.symbol == UNIVERSAL_MODEL for m in self.models):
                universal = universal_model(self.models, store, self.reload_interval, self.max_batch)
                if universal is not None:
                    self.register(universal)
                    self.models.append(universal)
                    universal.start_watcher()
                    log.warning("now serving %s (a symbol uses a universal model)", universal.name)
        except Exception as exc:
            self.errors["*"] = f"cannot list the symbols of {store.uri}: {exc}"
        else:
            self.errors.pop("*", None)

    def start(self) -> None:
        def loop():
            while not self._stop.wait(self.reload_interval):
                self.check()

        threading.Thread(target=loop, name="discover-symbols", daemon=True).start()


def serve(
    store_uri: str,
    symbols: Sequence[str] | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    reload_interval: float = 30.0,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_body: int = DEFAULT_MAX_BODY,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    token: str | None = None,
    on_listen=None,
) -> None:
    """Load the latest model of every symbol (``None``: all of the store, and those published
    later) and serve them on ``host:port`` until stopped (blocking). ``on_listen(models)`` is
    called once the models are loaded, before the server listens."""
    if body_timeout <= 0:
        raise ConfigError(f"body timeout must be > 0 seconds, got {body_timeout}")
    if header_timeout <= 0:
        raise ConfigError(f"header timeout must be > 0 seconds, got {header_timeout}")
    import kserve
    from kserve.model_server import app
    from kserve.protocol.dataplane import DataPlane

    models = build_models(store_uri, symbols, reload_interval, max_batch)
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None

    def by_name(name: str):
        return next((m for m in models if m.name == name), None)

    class VersionedDataPlane(DataPlane):
        async def model_metadata(self, model_name: str) -> dict:
            metadata = await super().model_metadata(model_name)
            model = by_name(model_name)
            if model is not None and model.current is not None:
                metadata["versions"] = [model.current.version]
                metadata["platform"] = "onnxruntime"
            return metadata

        async def ready(self) -> bool:
            """Ready only if every served model is loaded, registered and still reloading."""
            return all(
                self._model_registry.get_model(m.name) is m and m.ready and m.current is not None
                and m.reload_state() != "dead"
                for m in models
            )

        async def live(self) -> dict[str, str]:
            """A dead reload loop is only cured by a restart. A stalled one is not turned into
            a failing liveness: it usually waits on the store, and a restarted server could not
            even load its model during a store outage."""
            dead = [m.name for m in models if m.reload_state() == "dead"]
            return {"status": f"reload loop dead: {', '.join(dead)}" if dead else "alive"}

    class LoopbackModelServer(kserve.ModelServer):
        def setup_event_loop(self):  # start() has built the REST server: bind it to `host`
            self._rest_server.config.host = host
            self._rest_server.config.http = header_timeout_protocol(header_timeout)
            super().setup_event_loop()

    server = LoopbackModelServer(http_port=port, enable_grpc=False, workers=1)
    server.dataplane = VersionedDataPlane(model_registry=server.registered_models)
    discovery = Discovery(models, server.register_model, reload_interval, max_batch) if symbols is None else None

    @app.get("/mkrich/status")
    async def status(request: Request) -> dict:
        """Open, for probes and dashboards; the internals (store URI, the reload errors' full
        text, which name paths and endpoints) only with the token, else only their kind."""
        detail = authorized(dict(request.scope.get("headers") or []), token)
        errors = discovery.errors if discovery else {}
        from make_us_rich.serving.predictor import live_sessions

        answer = {"models": [m.status(detail) for m in models], "sessions": live_sessions(),
                  "discovery_errors": errors if detail else {
                      k: "the model store cannot be listed" if k == "*" else "cannot be served yet"
                      for k in errors}}
        return {"store": store_uri, **answer} if detail else answer

    app.add_middleware(GuardMiddleware, max_body=max_body, token=token, body_timeout=body_timeout,
                       known=lambda name: by_name(name) is not None)
    logging.getLogger("kserve").addFilter(_QuietClientErrors())
    for model in models:
        model.start_watcher()
    if discovery and reload_interval > 0:
        discovery.start()
    if on_listen:
        on_listen(models)
    log.info("serving %s from %s on %s:%d (auth %s)", ", ".join(m.name for m in models), store_uri,
             host, port, "on" if token else "off")
    server.start(models)
