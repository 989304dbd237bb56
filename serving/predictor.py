"""The KServe predictor: a thin ``kserve.Model`` around the model store and onnxruntime.

Lifecycle as KServe defines it: ``load`` (latest model of the symbol from the store) ->
``preprocess`` (request -> validated float32 windows, :mod:`make_us_rich.serving.tensors`) ->
``predict`` (onnxruntime) -> ``postprocess`` (v2 ``InferResponse`` or v1 ``predictions``).

Hot reload: a background thread polls the store's ``latest.json``; a new version is loaded and
checked (checksum, signature, a probe inference) off the request path and swapped in with one
reference assignment. Each request takes the model reference once in ``preprocess`` and uses it
to the end, so in-flight requests finish on the model they started with. A broken new model is
refused: the server stays on the old one, logs why and reports it in ``status()``.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput
from make_us_rich.serving.tensors import (
    DEFAULT_MAX_BATCH,
    BadRequest,
    parse_v1_body,
    parse_v2_input,
)

from make_us_rich import contract
from make_us_rich.inference import check_signature, onnx_session
from make_us_rich.inference import predict as onnx_predict
from make_us_rich.store import ModelStore, StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    symbol: str
    version: str
    triton_version: int | None
    sequence_length: int
    n_features: int
    session: Any


def load_model(store: ModelStore, symbol: str, pointer: dict[str, Any] | None = None) -> LoadedModel:
    """Load (and check) the version ``pointer`` names, default: the store's latest."""
    pointer = pointer or store.latest(symbol)
    if pointer is None:
        raise StoreError(f"no accepted model for {symbol} in {store.uri}; train and publish one first")
    version = pointer["version"]
    data = store.read(symbol, version, contract.MODEL_FILE, pointer["checksums"][contract.MODEL_FILE])
    session = onnx_session(data)
    seq_len, n_features = int(pointer["sequence_length"]), len(pointer["features"])
    check_signature(session, seq_len, n_features)
    probe = onnx_predict(session, np.ones((2, seq_len, n_features), dtype=np.float32))
    if probe.shape != (2, 1) or not np.isfinite(probe).all():
        raise ValueError(f"model {version} answers a probe window with {probe.tolist()}")
    return LoadedModel(symbol, version, pointer.get("triton_version"), seq_len, n_features, session)


@dataclass(frozen=True)
class _Prepared:
    model: LoadedModel
    windows: np.ndarray
    request_id: str | None
    v2: bool


class ForecastModel(Model):
    """Serves the latest accepted forecaster of one symbol as ``<symbol>-close``."""

    def __init__(
        self,
        symbol: str,
        store: ModelStore,
        *,
        reload_interval: float = 30.0,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        super().__init__(contract.model_name(symbol))
        self.symbol = symbol
        self.store = store
        self.reload_interval = reload_interval
        self.max_batch = max_batch
        self.current: LoadedModel | None = None
        self.last_reload_error: str | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- lifecycle
    def load(self) -> bool:
        self.current = load_model(self.store, self.symbol)
        log.info("%s: serving version %s", self.name, self.current.version)
        self.ready = True
        return True

    def check_for_update(self) -> bool:
        """Load and swap in a new ``latest`` if there is one. Returns True when swapped."""
        try:
            pointer = self.store.latest(self.symbol)
        except Exception as exc:  # store unreachable: keep serving
            self.last_reload_error = f"cannot read latest: {exc}"
            log.warning("%s: %s", self.name, self.last_reload_error)
            return False
        if pointer is None or (self.current and pointer["version"] == self.current.version):
            return False
        try:
            new = load_model(self.store, self.symbol, pointer)
        except Exception as exc:
            self.last_reload_error = f"refused version {pointer['version']}: {exc}"
            log.error("%s: %s; still serving %s", self.name, self.last_reload_error,
                      self.current.version if self.current else None)
            return False
        old, self.current = self.current, new  # atomic swap; in-flight requests keep `old`
        self.last_reload_error = None
        log.info("%s: swapped %s -> %s", self.name, old.version if old else None, new.version)
        return True

    def start_watcher(self) -> None:
        if self.reload_interval <= 0 or self._watcher:
            return
        self._watcher = threading.Thread(target=self._watch, name=f"reload-{self.name}", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        super().stop()

    def _watch(self) -> None:
        while not self._stop.wait(self.reload_interval):
            self.check_for_update()

    def status(self) -> dict[str, Any]:
        m = self.current
        return {
            "model": self.name,
            "symbol": self.symbol,
            "version": m.version if m else None,
            "triton_version": m.triton_version if m else None,
            "last_reload_error": self.last_reload_error,
        }

    # -- metadata
    def get_input_types(self) -> list[dict[str, Any]]:
        m = self.current
        shape = [-1, m.sequence_length, m.n_features] if m else [-1, -1, -1]
        return [{"name": contract.INPUT_NAME, "datatype": contract.DATATYPE, "shape": shape}]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [{"name": contract.OUTPUT_NAME, "datatype": contract.DATATYPE, "shape": [-1, 1]}]

    # -- inference
    def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> _Prepared:
        model = self.current
        if model is None:
            raise InvalidInput(f"{self.name} has no model loaded yet")
        try:
            if isinstance(payload, InferRequest):
                if len(payload.inputs) != 1:
                    raise BadRequest(f"send exactly one input tensor named {contract.INPUT_NAME!r}")
                t = payload.inputs[0]
                raw = t._raw_data  # the v2 binary tensor extension, when used
                windows = parse_v2_input(
                    t.name, t.datatype, t.shape, None if raw is not None else t.data, raw,
                    model.sequence_length, model.n_features, self.max_batch,
                )
                return _Prepared(model, windows, payload.id, True)
            if isinstance(payload, bytes | bytearray):  # sent without a JSON content type
                try:
                    payload = json.loads(payload)
                except ValueError:
                    raise BadRequest("the request body is not JSON") from None
            windows = parse_v1_body(payload, model.sequence_length, model.n_features, self.max_batch)
            return _Prepared(model, windows, None, False)
        except BadRequest as exc:
            raise InvalidInput(str(exc)) from None

    def predict(self, payload: _Prepared, headers: dict[str, str] | None = None):
        return payload, onnx_predict(payload.model.session, payload.windows)

    def postprocess(self, result, headers: dict[str, str] | None = None):
        prepared, out = result
        if prepared.v2:
            output = InferOutput(name=contract.OUTPUT_NAME, shape=list(out.shape), datatype=contract.DATATYPE)
            output.set_data_from_numpy(out, binary_data=False)
            return InferResponse(
                response_id=prepared.request_id or str(uuid.uuid4()),
                model_name=self.name,
                model_version=prepared.model.version,
                infer_outputs=[output],
            )
        return {"predictions": out[:, 0].tolist(), "model_version": prepared.model.version}
