"""Prometheus metrics of the predictor, beside KServe's own ``request_*_seconds`` on ``/metrics``.

They are what the alert rules (manifests/components/alerting) read: the served version and its
creation time (model age = ``time() - mkrich_model_created_timestamp_seconds``: the hourly loop
stalled when it grows past 2 h), the reload loop's successes and failures, the predictions and
the last forecast beside the last close (forecast vs actual on the dashboard), every
inference request's status and latency as the endpoint answered it (KServe counts no errors),
and the state of each reload loop, evaluated at scrape time (a hung poll updates nothing).
"""

from __future__ import annotations

import re
import weakref

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from make_us_rich.scoring import QUANTILES

# 0.5 s is the p99 alert threshold: buckets around it
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: the quantiles of ``quantile_close`` exported as the last forecast (median and the 90 % band)
FORECAST_QUANTILES = {f"{q:g}": i for i, q in enumerate(QUANTILES) if q in (0.05, 0.5, 0.95)}

MODEL_INFO = Gauge("mkrich_model_info", "the served model version (value 1)", ["symbol", "model", "version"])
MODEL_CREATED = Gauge("mkrich_model_created_timestamp_seconds",
                      "when the served model was trained (model card 'created'), Unix time", ["symbol"])
RELOADS = Counter("mkrich_model_reloads", "new model versions swapped in by the reload loop", ["symbol"])
RELOAD_FAILURES = Counter("mkrich_model_reload_failures",
                          "reload polls that failed (store unreadable or new model refused)", ["symbol"])
RELOAD_FAILING = Gauge("mkrich_model_reload_failing", "1 while the last reload poll failed", ["symbol"])
LAST_RELOAD = Gauge("mkrich_model_last_reload_timestamp_seconds",
                    "when the served model was last loaded successfully, Unix time", ["symbol"])
PREDICTIONS = Counter("mkrich_predictions", "forecasts served (one per window)", ["symbol"])
LAST_FORECAST = Gauge("mkrich_forecast_close", "the last forecast of the next close (last window of the "
                      "last request) at a quantile", ["symbol", "quantile"])
LAST_CLOSE = Gauge("mkrich_last_close", "the close of the last hour of the last window forecast", ["symbol"])
REQUESTS = Counter("mkrich_inference_requests", "inference requests by model and HTTP status", ["model", "code"])
LATENCY = Histogram("mkrich_inference_request_duration_seconds", "inference request latency (whole request)",
                    ["model"], buckets=LATENCY_BUCKETS)

_MODEL_IN_PATH = re.compile(r"^/v[12]/models/([^/:]+)")


def model_loaded(symbol: str, model: str, version: str, created: float | None, previous: str | None,
                 at: float) -> None:
    if previous is not None and previous != version:
        try:
            MODEL_INFO.remove(symbol, model, previous)
        except KeyError:
            pass
    MODEL_INFO.labels(symbol, model, version).set(1)
    if created is not None:
        MODEL_CREATED.labels(symbol).set(created)
    LAST_RELOAD.labels(symbol).set(at)
    RELOAD_FAILURES.labels(symbol)  # exported at 0 from the start: rate() sees the first failure
    RELOADS.labels(symbol)
    RELOAD_FAILING.labels(symbol).set(0)


def request_label(path: str, known) -> str:
    """The model a request path names, if served (``known(name)``); else ``other``, so that
    made-up names cannot grow the label set."""
    match = _MODEL_IN_PATH.match(path)
    return match.group(1) if match and known(match.group(1)) else "other"


#: the states of ``ForecastModel.reload_state()`` that the enum exports (``off``: no loop, no series)
RELOAD_STATES = ("running", "stalled", "dead")


class ReloadLoopCollector:
    """``mkrich_reload_loop_state{symbol,state}`` (1 for the loop's current state, 0 for the
    others) and ``mkrich_reload_loop_last_poll_timestamp_seconds{symbol}``, read from the
    watched models when Prometheus scrapes."""

    def __init__(self) -> None:
        self._models: dict[str, weakref.ref] = {}  # symbol -> the model whose loop started last

    def watch(self, model) -> None:
        self._models[model.symbol] = weakref.ref(model)

    def collect(self):
        state = GaugeMetricFamily("mkrich_reload_loop_state", "the model reload loop's state (enum: "
                                  "1 for the current one): running, stalled (a poll hangs), dead",
                                  labels=["symbol", "state"])
        last = GaugeMetricFamily("mkrich_reload_loop_last_poll_timestamp_seconds",
                                 "when the reload loop last finished a poll, Unix time", labels=["symbol"])
        for symbol, ref in sorted(self._models.items()):
            model = ref()
            current = "off" if model is None or model.stopped else model.reload_state()
            if current == "off":
                continue
            for name in RELOAD_STATES:
                state.add_metric([symbol, name], 1.0 if name == current else 0.0)
            if model.last_poll is not None:
                last.add_metric([symbol], model.last_poll)
        yield state
        yield last


RELOAD_LOOPS = ReloadLoopCollector()
REGISTRY.register(RELOAD_LOOPS)


#: the last forecast at every served horizon (issue 22); the 1-hour series of
#: ``mkrich_forecast_close`` stay as they are (alert rules, dashboards)
LAST_FORECAST_HORIZON = Gauge("mkrich_forecast_close_horizon", "the last forecast of the close h hours ahead "
                              "(last window of the last request) at a quantile, for each served horizon",
                              ["symbol", "horizon", "quantile"])
_EXPORTED_HORIZONS: dict[str, set[str]] = {}


def horizon_forecast(symbol: str, horizons, rows) -> None:
    """``mkrich_forecast_close_horizon{horizon}`` of the served ``horizons`` (``rows``: their
    quantile closes ``[H, 5]``); a horizon no longer served loses its series."""
    labels = [str(int(h)) for h in horizons]
    for h in _EXPORTED_HORIZONS.get(symbol, set()) - set(labels):
        for q in FORECAST_QUANTILES:
            try:
                LAST_FORECAST_HORIZON.remove(symbol, h, q)
            except KeyError:
                pass
    for h, row in zip(labels, rows, strict=True):
        for q, column in FORECAST_QUANTILES.items():
            LAST_FORECAST_HORIZON.labels(symbol, h, q).set(float(row[column]))
    _EXPORTED_HORIZONS[symbol] = set(labels)
