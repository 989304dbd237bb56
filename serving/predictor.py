"""The KServe predictor: a thin ``kserve.Model`` around the model store and onnxruntime.

Lifecycle as KServe defines it: ``load`` (latest model of the symbol from the store) ->
``preprocess`` (request -> validated float32 windows, :mod:`make_us_rich.serving.tensors`) ->
``predict`` (onnxruntime; forecasts that are not finite, ordered and plausible are refused, never
answered nor counted in the metrics) -> ``postprocess`` (v2 ``InferResponse`` or v1 ``predictions``).

Hot reload: a background thread polls the store's ``latest.json``; a new version with the same
serving contract (:func:`make_us_rich.contract.contract_changes`) is loaded and
checked (checksum, signature, a probe inference) off the request path and swapped in with one
reference assignment. Each request takes the model reference once in ``preprocess`` and uses it
to the end, so in-flight requests finish on the model they started with. A broken new model or
a malformed or missing pointer (a store moved away), or a version with another contract (its
clients would break; a restart serves it) is refused: the server stays on the old
one, logs why once, counts the failed polls and reports it in ``status()`` until a later poll
succeeds. No exception ends the reload loop; a loop that
died anyway or hangs in a poll is reported by ``reload_state()`` (the server turns a dead one
into failing liveness and readiness); the loop itself is :mod:`make_us_rich.serving.reload`.

Long on purpose: the one ``kserve.Model`` of a symbol and the ``universal`` one beside it share
every step above; the request's parsing and the checks are :mod:`make_us_rich.serving.tensors`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput

from make_us_rich import contract
from make_us_rich.inference import check_signature, onnx_session, predict_all
from make_us_rich.serving import metrics
from make_us_rich.serving.reload import ReloadLoop
from make_us_rich.serving.tensors import (
    DEFAULT_MAX_BATCH,
    BadRequest,
    binary_input,
    check_domain,
    check_forecasts,
    parse_v1_body,
    parse_v2_input,
)
from make_us_rich.store import UNIVERSAL_MODEL, MalformedPointer, ModelStore, StoreError

log = logging.getLogger(__name__)
_CLOSE = contract.FEATURES.index("close")


@dataclass(frozen=True)
class LoadedModel:
    symbol: str
    version: str
    triton_version: int | None
    sequence_length: int
    n_features: int
    session: Any
    created: float | None = None  # Unix time the model was trained (model card), for its age
    features: tuple[str, ...] = contract.FEATURES  # the input's columns (the pointer's), in order
    contract: dict | None = None  # the serving contract its pointer records (contract.contract_of)
    shared: str | None = None  # the shared (universal) model version it uses
    sha256: str | None = None  # of its ONNX file: symbols with the same one share a session
    #: a model of several horizons (issue 22): the horizons it serves (its per-horizon gate's,
    #: the pointer's ``horizons``), and their rows in its ``quantile_close_horizons``
    horizons: tuple[int, ...] = (1,)
    horizon_rows: tuple[int, ...] | None = None


#: One onnxruntime session per distinct model in this process, by the SHA-256 of its ONNX file:
#: the symbols a universal model serves share it (one copy of the weights and one thread pool,
#: not one per symbol). Weak: a session goes with the last model that uses it.
_SESSIONS: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_SESSIONS_LOCK = threading.Lock()


def live_sessions() -> int:
    """How many onnxruntime sessions this process holds (``/mkrich/status``)."""
    return len(_SESSIONS)


def shared_session(store: ModelStore, symbol: str, pointer: dict[str, Any]) -> Any:
    """The session of the model ``pointer`` names: its file is read and its checksum verified
    (a version whose model cannot be read is not served), then the session already loaded for
    that checksum is reused (a model shared with other symbols), else one is created."""
    digest = pointer["checksums"][contract.MODEL_FILE]
    shared = pointer.get("shared") if contract.MODEL_FILE in pointer.get("shared_files", ()) else None
    data = store.read(symbol, pointer["version"], contract.MODEL_FILE, digest, shared=shared)
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(digest)
        if session is None:
            session = onnx_session(data)
            _SESSIONS[digest] = session
    return session


def load_model(store: ModelStore, symbol: str, pointer: dict[str, Any] | None = None) -> LoadedModel:
    """Load (and check) the version ``pointer`` (validated by ``store.latest``) names, default:
    the store's latest."""
    pointer = pointer or store.latest(symbol)
    if pointer is None:
        raise StoreError(f"no accepted model for {symbol} in {store.uri}; train and publish one first")
    version = pointer["version"]
    session = shared_session(store, symbol, pointer)
    seq_len, n_features = int(pointer["sequence_length"]), len(pointer["features"])
    horizons = contract.served_horizons(pointer)  # ValueError: a pointer that does not fit together
    check_signature(session, seq_len, n_features, horizons=horizons is not None)
    tensors = contract.OUTPUTS + ((contract.horizon_output(len(horizons[0])),) if horizons else ())
    probe = predict_all(session, np.ones((2, seq_len, n_features), dtype=np.float32))
    for t in tensors:
        expected = [2, *t.dims(seq_len, n_features)[1:]]
        if t.name not in probe:
            raise ValueError(f"model {version} has no output {t.name} (its pointer lists horizons {horizons[0]})")
        if list(probe[t.name].shape) != expected or not np.isfinite(probe[t.name]).all():
            raise ValueError(f"model {version} answers a probe window with {t.name}={probe[t.name].tolist()}")
    return LoadedModel(symbol, version, pointer.get("triton_version"), seq_len, n_features, session,
                       _created(store, symbol, pointer), tuple(pointer["features"]), contract.contract_of(pointer),
                       pointer.get("shared"), pointer["checksums"][contract.MODEL_FILE],
                       *((horizons[1], tuple(horizons[0].index(h) for h in horizons[1])) if horizons else ()))


def _created(store: ModelStore, symbol: str, pointer: dict[str, Any]) -> float | None:
    """The model card's ``created`` (training time), else the pointer's ``published``: the age
    alert must not depend on an optional file."""
    stamp = pointer.get("published")
    card_sum = pointer["checksums"].get("model_card.json")
    if card_sum:
        try:
            stamp = json.loads(store.read(symbol, pointer["version"], "model_card.json", card_sum)).get("created") or stamp
        except (StoreError, ValueError) as exc:
            log.warning("%s %s: no creation time from the model card (%s)", symbol, pointer["version"], exc)
    try:
        return datetime.fromisoformat(stamp).timestamp() if stamp else None
    except (TypeError, ValueError):
        return None


class ModelRefused(Exception):
    """A new version that is not swapped in: ``str`` says why in full (log, authenticated
    status), ``public`` in words that reveal nothing of the store (anonymous status)."""

    def __init__(self, message: str, public: str) -> None:
        super().__init__(message)
        self.public = public


def _public_reason(exc: Exception) -> str:
    """What an anonymous caller may learn of a reload failure: its kind, no path or endpoint."""
    if isinstance(exc, ModelRefused):
        return exc.public
    if isinstance(exc, MalformedPointer):
        return "the model store's latest pointer is malformed"
    return "the model store cannot be read"


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
        stall_after: float | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name or contract.model_name(symbol))
        self.symbol = symbol
        self.store = store
        self.reload_interval = reload_interval
        self.max_batch = max_batch
        # a poll longer than this is "stalled": S3 clients retry for minutes before giving up
        self.stall_after = stall_after if stall_after is not None else max(600.0, 10 * reload_interval)
        self.current: LoadedModel | None = None
        self.last_reload_error: str | None = None
        self.last_reload_error_public: str | None = None  # the same without internals
        self.polls = 0
        self.poll_failures = 0
        self.last_poll: float | None = None
        self._refused: tuple[dict, ModelRefused] | None = None  # a pointer to a broken model, and why: not retried
        self.reloader = ReloadLoop(f"reload-{self.name}", reload_interval, self.check_for_update, self.stall_after)

    # -- lifecycle
    def load(self) -> bool:
        try:
            self.current = load_model(self.store, self.symbol)
        except StoreError:
            raise
        except Exception as exc:  # a broken model file: one line from the CLI, not a traceback
            raise StoreError(f"cannot serve the latest {self.symbol} model of {self.store.uri}: {exc}") from exc
        log.info("%s: serving version %s", self.name, self.current.version)
        self._loaded(None)
        self.ready = True
        return True

    def check_for_update(self) -> bool:
        """One poll: load and swap in a new ``latest`` if there is one. Returns True when
        swapped. Never raises: a failure is logged (once per cause), counted and reported."""
        try:
            pointer = self.store.latest(self.symbol)
            if pointer is None and self.current is not None:  # never removed by a publish
                raise StoreError(f"no latest.json for {self.symbol} in {self.store.uri} any more: the "
                                 "store was moved, deleted or emptied")
            if pointer is None or (self.current and pointer["version"] == self.current.version):
                self._set_error(None)
                return False
            if self._refused and pointer == self._refused[0]:
                self._set_error(str(self._refused[1]), self._refused[1].public)
                return False
            changes = contract.contract_changes(self.current.contract, contract.contract_of(pointer)) if self.current else []
            if changes:  # promoted with --allow-contract-change: never swapped under running clients
                version = pointer["version"]
                refusal = ModelRefused(
                    f"refused version {version}: its serving contract differs ({'; '.join(changes)}) and "
                    f"would break the clients of {self.current.version}; restart the server to serve it "
                    "(docs/serving.md#contract-changes)",
                    f"version {version} has another serving contract: it is served after a restart")
                self._refused = (pointer, refusal)
                raise refusal
            try:
                new = load_model(self.store, self.symbol, pointer)
            except Exception as exc:
                version = pointer["version"]
                if isinstance(exc, StoreError):  # may pass: retried at the next poll
                    raise ModelRefused(f"refused version {version}: {exc}",
                                   f"version {version} cannot be read from the model store yet") from exc
                refusal = ModelRefused(f"refused version {version}: {exc}", f"refused version {version}: broken model")
                self._refused = (pointer, refusal)
                raise refusal from exc
            old, self.current = self.current, new  # atomic swap; in-flight requests keep `old`
            self._set_error(None)
            self._loaded(old)
            metrics.RELOADS.labels(self.symbol).inc()
            log.info("%s: swapped %s -> %s", self.name, old.version if old else None, new.version)
            return True
        except Exception as exc:
            self.poll_failures += 1
            metrics.RELOAD_FAILURES.labels(self.symbol).inc()
            message = str(exc) if isinstance(exc, ModelRefused) else f"cannot read latest: {exc}"
            if message != self.last_reload_error:
                log.error("%s: %s; still serving %s", self.name, message,
                          self.current.version if self.current else None)
            self._set_error(message, _public_reason(exc))
            return False
        finally:
            self.polls += 1
            self.last_poll = time.time()

    def _set_error(self, message: str | None, public: str | None = None) -> None:
        if message is None and self.last_reload_error:
            log.warning("%s: reload recovered (was: %s)", self.name, self.last_reload_error)
        self.last_reload_error = message
        self.last_reload_error_public = None if message is None else public or "reload failed"
        metrics.RELOAD_FAILING.labels(self.symbol).set(0 if message is None else 1)

    def _loaded(self, old: LoadedModel | None) -> None:
        m = self.current
        metrics.model_loaded(self.symbol, self.name, m.version, m.created, old.version if old else None, time.time())

    def start_watcher(self) -> None:
        if self.reloader.start():
            metrics.RELOAD_LOOPS.watch(self)

    @property
    def stopped(self) -> bool:
        return self.reloader.stopped

    def stop(self) -> None:
        self.reloader.stop()
        super().stop()

    def reload_state(self) -> str:
        """The reload loop's state (:meth:`ReloadLoop.state`)."""
        return self.reloader.state()

    def status(self, detail: bool = True) -> dict[str, Any]:
        """Versions and the reload loop's state; the full reload error (store paths, endpoints)
        only with ``detail``, else its kind (:func:`_public_reason`)."""
        m = self.current
        return {
            "model": self.name,
            "symbol": self.symbol,
            "version": m.version if m else None,
            "shared": m.shared if m else None,
            "model_sha256": m.sha256 if m else None,
            "triton_version": m.triton_version if m else None,
            "horizons": list(m.horizons) if m else None,
            "last_reload_error": self.last_reload_error if detail else self.last_reload_error_public,
            "reload": {
                "state": self.reload_state(),
                "polls": self.polls,
                "failures": self.poll_failures,
                "last_poll": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_poll))
                if self.last_poll else None,
            },
        }

    # -- metadata
    def get_input_types(self) -> list[dict[str, Any]]:
        m = self.current
        shape = [-1, m.sequence_length, m.n_features] if m else [-1, -1, -1]
        return [{"name": contract.INPUT_NAME, "datatype": contract.DATATYPE, "shape": shape}]

    def get_output_types(self) -> list[dict[str, Any]]:
        """The contract's outputs; a model of several horizons adds ``quantile_close_horizons``
        with one row per served horizon (their hours: ``/mkrich/status``, and each answer's
        ``parameters.horizons``)."""
        m = self.current
        tensors = contract.OUTPUTS + ((contract.horizon_output(len(m.horizons)),) if m and m.horizon_rows else ())
        return [t.spec(m.sequence_length if m else -1, m.n_features if m else -1) for t in tensors]

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
                raw = binary_input(t)
                windows = parse_v2_input(
                    t.name, t.datatype, t.shape, None if raw is not None else t.data, raw,
                    model.sequence_length, model.n_features, self.max_batch,
                )
                check_domain(windows, model.features)
                return _Prepared(model, windows, payload.id, True)
            if isinstance(payload, bytes | bytearray):  # sent without a JSON content type
                try:
                    payload = json.loads(payload)
                except ValueError:
                    raise BadRequest("the request body is not JSON") from None
            windows = parse_v1_body(payload, model.sequence_length, model.n_features, self.max_batch)
            check_domain(windows, model.features)
            return _Prepared(model, windows, None, False)
        except BadRequest as exc:
            raise InvalidInput(str(exc)) from None

    def predict(self, payload: _Prepared, headers: dict[str, str] | None = None):
        """onnxruntime, then the forecasts checked before anything is answered or counted."""
        outputs = predict_all(payload.model.session, payload.windows)
        rows = payload.model.horizon_rows
        if rows is not None:  # only the horizons the per-horizon gate let through
            outputs[contract.HORIZON_OUTPUT_NAME] = outputs[contract.HORIZON_OUTPUT_NAME][:, list(rows), :]
        else:  # a model of the next hour only (load_model refuses a graph its pointer does not describe)
            outputs.pop(contract.HORIZON_OUTPUT_NAME, None)
        try:
            check_forecasts(payload.windows, outputs, payload.model.features, payload.model.horizons)
        except BadRequest as exc:
            raise InvalidInput(str(exc)) from None
        return payload, outputs

    def _observe(self, model: LoadedModel, windows: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
        """Count the forecasts; keep the last window's forecast (at each served horizon) and its
        last close."""
        metrics.PREDICTIONS.labels(self.symbol).inc(len(windows))
        quantiles = outputs[contract.QUANTILE_OUTPUT_NAME][-1]
        for label, column in metrics.FORECAST_QUANTILES.items():
            metrics.LAST_FORECAST.labels(self.symbol, label).set(float(quantiles[column]))
        by_horizon = outputs.get(contract.HORIZON_OUTPUT_NAME)
        metrics.horizon_forecast(self.symbol, model.horizons,
                                 by_horizon[-1] if by_horizon is not None else quantiles[None, :])
        metrics.LAST_CLOSE.labels(self.symbol).set(float(windows[-1, -1, _CLOSE]))

    def postprocess(self, result, headers: dict[str, str] | None = None):
        """v2: every output of the contract (``quantile_close_horizons``: the served horizons'
        rows only), the served horizons in ``parameters.horizons`` ("1,4,24": hours ahead, in
        the rows' order); v1: ``predictions`` (the point forecast, one per window), each further
        output under its own name and ``horizons`` (a list)."""
        prepared, outputs = result
        horizons = prepared.model.horizons
        self._observe(prepared.model, prepared.windows, outputs)
        if prepared.v2:
            infer_outputs = []
            for name, out in outputs.items():
                output = InferOutput(name=name, shape=list(out.shape), datatype=contract.DATATYPE)
                output.set_data_from_numpy(out, binary_data=False)
                infer_outputs.append(output)
            return InferResponse(
                response_id=prepared.request_id or str(uuid.uuid4()),
                model_name=self.name,
                model_version=prepared.model.version,
                infer_outputs=infer_outputs,
                parameters={"horizons": ",".join(str(h) for h in horizons)},
            )
        answer = {"predictions": outputs[contract.OUTPUT_NAME][:, 0].tolist()}
        answer.update({n: o.tolist() for n, o in outputs.items() if n != contract.OUTPUT_NAME})
        return {**answer, "horizons": list(horizons), "model_version": prepared.model.version}


class UniversalForecastModel(ForecastModel):
    """``universal``: the newest universal model that a served symbol's pointer names, for a
    window of any symbol (one URL for a batch of symbols, or a symbol no pointer names). It
    follows the symbols' models (no store reads of its own: the same session) and reports the
    shared model's version; a newer one with another serving contract is refused like a
    symbol's (a restart serves it)."""

    def __init__(self, models: list[ForecastModel], store: ModelStore, **options: Any) -> None:
        super().__init__(UNIVERSAL_MODEL, store, name=UNIVERSAL_MODEL, **options)
        self.models = models

    def _newest(self) -> LoadedModel | None:
        shared = [m.current for m in self.models if m is not self and m.current is not None and m.current.shared]
        if not shared:
            return None
        best = max(shared, key=lambda m: m.shared or "")
        if best.horizon_rows is None:
            return replace(best, symbol=UNIVERSAL_MODEL, version=best.shared)
        # a window of any symbol: the horizons that every symbol this model serves passed
        users = [m for m in shared if m.shared == best.shared]
        served = tuple(h for h in best.horizons if all(h in m.horizons for m in users))
        rows = tuple(best.horizon_rows[best.horizons.index(h)] for h in served)
        return replace(best, symbol=UNIVERSAL_MODEL, version=best.shared, horizons=served, horizon_rows=rows)

    def load(self) -> bool:
        self.current = self._newest()
        if self.current is None:
            raise StoreError(f"no served symbol uses a universal model of {self.store.uri}")
        self._loaded(None)
        self.ready = True
        return True

    def check_for_update(self) -> bool:
        try:
            new = self._newest()
            if new is None or (self.current and (new.version, new.horizons) == (self.current.version,
                                                                                self.current.horizons)):
                self._set_error(None)
                return False
            changes = contract.contract_changes(self.current.contract, new.contract) if self.current else []
            if changes:
                raise ModelRefused(f"refused version {new.version}: its serving contract differs ({'; '.join(changes)}); "
                               "restart the server to serve it",
                               f"version {new.version} has another serving contract: it is served after a restart")
            old, self.current = self.current, new
            self._set_error(None)
            self._loaded(old)
            metrics.RELOADS.labels(self.symbol).inc()
            return True
        except ModelRefused as exc:
            self.poll_failures += 1
            if str(exc) != self.last_reload_error:
                log.error("%s: %s", self.name, exc)
            self._set_error(str(exc), exc.public)
            return False
        finally:
            self.polls += 1
            self.last_poll = time.time()
