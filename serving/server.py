"""The model server: KServe's ``ModelServer`` with one :class:`ForecastModel` per symbol.

Glue only, at module level: uvicorn serves :class:`GuardMiddleware` (every request checked before
KServe sees it) around :class:`ServerApp` (``GET /mkrich/status`` — versions, reload state and
errors — then KServe's own app, untouched); :class:`VersionedDataPlane` puts the loaded version in
the v2 model metadata and makes readiness and liveness tell the truth about the models and their
reload loops; :class:`Discovery` serves symbols published later when no symbols are given. The
header and body deadlines and the rejection log are :mod:`make_us_rich.asgi`, shared with the
console.
"""
from __future__ import annotations

import hmac
import json
import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

from kserve import ModelServer
from kserve.model_server import app as kserve_app
from kserve.protocol.dataplane import DataPlane

from make_us_rich.asgi import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    REJECTIONS,
    RequestRefused,
    drain,
    header_timeout_protocol,
    read_body,
    replay,
    send_json,
)
from make_us_rich.data import normalize_symbol
from make_us_rich.errors import ConfigError
from make_us_rich.serving import metrics
from make_us_rich.serving.tensors import DEFAULT_MAX_BATCH, BadRequest, check_binary_framing
from make_us_rich.store import UNIVERSAL_MODEL, ModelStore, StoreError

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 8 * 1024 * 1024  # 8 MiB: ~13,000 windows of 24 x 10 as JSON
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


class _QuietClientErrors(logging.Filter):
    """KServe logs a full traceback for every 4xx (and 501) it raises; :class:`RejectionLog`
    already wrote the one line such a request deserves."""

    def filter(self, record: logging.LogRecord) -> bool:
        from kserve.errors import InvalidInput, ModelNotFound, UnsupportedProtocol

        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, InvalidInput | ModelNotFound | UnsupportedProtocol | NotImplementedError)


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
            return await send_json(send, refusal.status, {"error": refusal.reason}, refusal.headers)
        try:
            await self.app(scope, replay(body, receive), watched_send)
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
            await drain(receive, self.max_body, self.body_timeout)
            raise RequestRefused(refused[0], refused[1], headers=refused[2])
        body = await read_body(scope, receive, self.max_body, self.body_timeout)
        if _is_inference_path(path) and _BINARY_HEADER in headers:
            try:
                check_binary_framing(headers[_BINARY_HEADER], body)
            except BadRequest as exc:
                raise RequestRefused(400, str(exc)) from None
        return body


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


class VersionedDataPlane(DataPlane):
    """KServe's data plane, told the truth about ``models``: the loaded version in the v2
    metadata (``versions``), ready only when every served model is loaded and reloading, not
    live only when a reload loop died."""

    def __init__(self, models: list, model_registry) -> None:
        super().__init__(model_registry=model_registry)
        self.models = models

    def by_name(self, name: str):
        return next((m for m in self.models if m.name == name), None)

    async def model_metadata(self, model_name: str) -> dict:
        metadata = await super().model_metadata(model_name)
        model = self.by_name(model_name)
        if model is not None and model.current is not None:
            metadata["versions"] = [model.current.version]
            metadata["platform"] = "onnxruntime"
        return metadata

    async def ready(self) -> bool:
        return all(
            self.model_registry.get_model(m.name) is m and m.ready and m.current is not None
            and m.reload_state() != "dead"
            for m in self.models
        )

    async def live(self) -> dict[str, str]:
        """A dead reload loop is only cured by a restart. A stalled one is not turned into a
        failing liveness: it usually waits on the store, and a restarted server could not even
        load its model during a store outage."""
        dead = [m.name for m in self.models if m.reload_state() == "dead"]
        return {"status": f"reload loop dead: {', '.join(dead)}" if dead else "alive"}


class ServerApp:
    """The ASGI app uvicorn serves: ``GET /mkrich/status``, everything else KServe's own app,
    left as KServe builds it (no route or middleware of ours is added to it)."""

    def __init__(self, kserve_app, models: list, store_uri: str, token: str | None, discovery) -> None:
        self.kserve_app = kserve_app
        self.models = models
        self.store_uri = store_uri
        self.token = token
        self.discovery = discovery

    def status(self, headers: dict[bytes, bytes]) -> dict[str, Any]:
        """Open, for probes and dashboards; the internals (store URI, the reload errors' full
        text, which name paths and endpoints) only with the token, else only their kind."""
        from make_us_rich.serving.predictor import live_sessions

        detail = authorized(headers, self.token)
        errors = self.discovery.errors if self.discovery else {}
        answer = {"models": [m.status(detail) for m in self.models], "sessions": live_sessions(),
                  "discovery_errors": errors if detail else {
                      k: "the model store cannot be listed" if k == "*" else "cannot be served yet"
                      for k in errors}}
        return {"store": self.store_uri, **answer} if detail else answer

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and (scope.get("path", "").rstrip("/") or "/") == "/mkrich/status":
            return await send_json(send, 200, self.status(dict(scope.get("headers") or [])))
        return await self.kserve_app(scope, receive, send)


class LoopbackModelServer(ModelServer):
    """KServe's ``ModelServer`` serving ``app`` on ``host`` with a deadline for the request
    headers (KServe's REST server listens on 0.0.0.0 and serves its own global app)."""

    def __init__(self, app, host: str, header_timeout: float, **options) -> None:
        super().__init__(**options)
        self.app, self.host, self.header_timeout = app, host, header_timeout

    def setup_event_loop(self):
        # start() has built the REST server (KServe keeps it private); configure it before it listens
        config = self._rest_server.config
        config.host, config.http, config.app = self.host, header_timeout_protocol(self.header_timeout), self.app
        super().setup_event_loop()


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
    models = build_models(store_uri, symbols, reload_interval, max_batch)
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    discovery = Discovery(models, lambda m: server.register_model(m), reload_interval, max_batch) \
        if symbols is None else None
    app = GuardMiddleware(ServerApp(kserve_app, models, store_uri, token, discovery), max_body=max_body,
                          token=token, body_timeout=body_timeout,
                          known=lambda name: any(m.name == name for m in models))
    server = LoopbackModelServer(app, host, header_timeout, http_port=port, enable_grpc=False, workers=1)
    server.dataplane = VersionedDataPlane(models, server.registered_models)
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
