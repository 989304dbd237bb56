"""The model server: KServe's ``ModelServer`` with one :class:`ForecastModel` per symbol.

Glue only: it adds two small ASGI middlewares (a request-body size limit -> 413, and an
optional bearer token on the inference routes -> 401), reports the loaded version in the v2
model metadata (``versions``), and adds ``GET /mkrich/status`` (versions and reload errors).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

from make_us_rich.serving.tensors import DEFAULT_MAX_BATCH

from make_us_rich.data import normalize_symbol
from make_us_rich.store import ModelStore

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 8 * 1024 * 1024  # 8 MiB: ~13,000 windows of 24 x 10 as JSON
TOKEN_ENV = "MKRICH_SERVING_TOKEN"


def _is_inference_path(path: str) -> bool:
    return (path.startswith("/v2/models/") and path.rstrip("/").endswith("/infer")) or (
        path.startswith("/v1/models/") and path.endswith(":predict")
    )


async def _send_json(send, status: int, payload: dict[str, Any], headers: Sequence = ()) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """Body size limit on every request; bearer token (if configured) on inference routes."""

    def __init__(self, app, max_body: int = DEFAULT_MAX_BODY, token: str | None = None) -> None:
        self.app = app
        self.max_body = max_body
        self.token = token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.token and _is_inference_path(scope.get("path", "")):
            given = headers.get(b"authorization", b"").decode("latin-1")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                return await _send_json(send, 401, {"error": "missing or wrong bearer token"},
                                        [(b"www-authenticate", b"Bearer")])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await self._drain(receive, int(length))
            return await _send_json(send, 413, {"error": f"request body over {self.max_body} bytes"})
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _TooLarge()
            return message

        try:
            return await self.app(scope, limited_receive, send)
        except _TooLarge:
            return await _send_json(send, 413, {"error": f"request body over {self.max_body} bytes"})


    async def _drain(self, receive, length: int) -> None:
        """Read and discard a refused body (up to 8x the limit) so that the client, still
        sending, reads the 413 instead of a connection reset. Nothing is kept in memory."""
        if length > 8 * self.max_body:
            return
        while True:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body"):
                return


class _TooLarge(Exception):
    pass


def build_models(store_uri: str, symbols: Sequence[str], reload_interval: float, max_batch: int):
    from make_us_rich.serving.predictor import ForecastModel

    store = ModelStore(store_uri)
    models = [
        ForecastModel(normalize_symbol(s), store, reload_interval=reload_interval, max_batch=max_batch)
        for s in symbols
    ]
    for model in models:
        model.load()
    return models


def serve(
    store_uri: str,
    symbols: Sequence[str],
    *,
    port: int = 8080,
    reload_interval: float = 30.0,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_body: int = DEFAULT_MAX_BODY,
    token: str | None = None,
) -> None:
    """Load the latest model of every symbol and serve them until stopped (blocking)."""
    import kserve
    from kserve.model_server import app
    from kserve.protocol.dataplane import DataPlane

    models = build_models(store_uri, symbols, reload_interval, max_batch)
    by_name = {m.name: m for m in models}
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None

    class VersionedDataPlane(DataPlane):
        async def model_metadata(self, model_name: str) -> dict:
            metadata = await super().model_metadata(model_name)
            model = by_name.get(model_name)
            if model is not None and model.current is not None:
                metadata["versions"] = [model.current.version]
                metadata["platform"] = "onnxruntime"
            return metadata

    @app.get("/mkrich/status")
    async def status() -> dict:
        return {"store": store_uri, "models": [m.status() for m in models]}

    app.add_middleware(GuardMiddleware, max_body=max_body, token=token)
    server = kserve.ModelServer(http_port=port, enable_grpc=False, workers=1)
    server.dataplane = VersionedDataPlane(model_registry=server.registered_models)
    for model in models:
        model.start_watcher()
    log.info("serving %s from %s on port %d (auth %s)", ", ".join(by_name), store_uri, port,
             "on" if token else "off")
    server.start(models)
