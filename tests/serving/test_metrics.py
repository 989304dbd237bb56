"""The predictor's Prometheus metrics on the real ModelServer's /metrics: what the alert rules
and the dashboard read (manifests/components/alerting)."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import datetime

import numpy as np
import pytest
from test_server import NAME, Server, http

from make_us_rich import contract
from make_us_rich.predict_client import v2_request
from make_us_rich.store import ModelStore
from make_us_rich.testing import wait_until

pytest.importorskip("kserve")
from prometheus_client.parser import text_string_to_metric_families


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted labels): value}`` of the server's /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_follow_predictions_and_reloads(tmp_path, trained_artifacts, windows):
    store = ModelStore(tmp_path / "store")
    first = store.publish(trained_artifacts, "BTCEUR")
    created = datetime.fromisoformat(json.loads((trained_artifacts / "model_card.json").read_text())["created"])
    srv = Server(tmp_path / "store")
    try:
        m = scrape(srv.url)
        assert value(m, "mkrich_model_info", symbol="BTCEUR", model=NAME, version=first.version) == 1
        assert value(m, "mkrich_model_created_timestamp_seconds", symbol="BTCEUR") == created.timestamp()
        assert time.time() - 120 < value(m, "mkrich_model_last_reload_timestamp_seconds", symbol="BTCEUR") <= time.time()
        assert value(m, "mkrich_model_reloads_total", symbol="BTCEUR") == 0
        assert value(m, "mkrich_model_reload_failures_total", symbol="BTCEUR") == 0
        assert value(m, "mkrich_model_reload_failing", symbol="BTCEUR") == 0
        assert [value(m, "mkrich_reload_loop_state", symbol="BTCEUR", state=s) for s in ("running", "stalled", "dead")] == [1, 0, 0]
        first_poll = value(m, "mkrich_reload_loop_last_poll_timestamp_seconds", symbol="BTCEUR")
        assert first_poll is None or time.time() - 60 < first_poll <= time.time()
        wait_until(lambda: (value(scrape(srv.url), "mkrich_reload_loop_last_poll_timestamp_seconds", symbol="BTCEUR") or 0)
                   > (first_poll or 0), 30, 0.2,
                       what="the reload loop's next poll (0.2 s)")

        status, body = srv.infer(windows)
        assert status == 200
        quantiles = np.reshape(next(o["data"] for o in body["outputs"] if o["name"] == "quantile_close"), (3, 5))
        assert http("POST", f"{srv.url}/v2/models/{NAME}/infer", {"inputs": []})[0] >= 400
        assert http("POST", f"{srv.url}/v2/models/made-up-close/infer", v2_request(windows))[0] == 404
        m = scrape(srv.url)
        assert value(m, "mkrich_predictions_total", symbol="BTCEUR") == 3  # one per window
        for label, column in (("0.05", 0), ("0.5", 2), ("0.95", 4)):  # the last window's forecast
            assert value(m, "mkrich_forecast_close", symbol="BTCEUR", quantile=label) == pytest.approx(quantiles[2, column], rel=1e-6)
        assert value(m, "mkrich_last_close", symbol="BTCEUR") == pytest.approx(float(windows[2, -1, contract.FEATURES.index("close")]), rel=1e-6)
        assert value(m, "mkrich_inference_requests_total", model=NAME, code="200") == 1
        assert sum(v for (n, labels), v in m.items() if n == "mkrich_inference_requests_total"
                   and dict(labels)["model"] == NAME and dict(labels)["code"].startswith("4")) == 1
        assert value(m, "mkrich_inference_requests_total", model="other", code="404") == 1  # no made-up labels
        assert value(m, "mkrich_inference_request_duration_seconds_count", model=NAME) == 2
        assert value(m, "request_predict_seconds_count", model_name=NAME) >= 1  # KServe's own beside ours

        second = store.publish(trained_artifacts, "BTCEUR")
        m = wait_until(lambda: (s := scrape(srv.url)) and value(s, "mkrich_model_reloads_total", symbol="BTCEUR") == 1 and s, 30, 0.2,
                       what="the reload of the second version")
        assert value(m, "mkrich_model_info", symbol="BTCEUR", model=NAME, version=second.version) == 1
        assert value(m, "mkrich_model_info", symbol="BTCEUR", model=NAME, version=first.version) is None

        store.backend.put("models/BTCEUR/latest.json", b"{not json")
        m = wait_until(lambda: (s := scrape(srv.url)) and value(s, "mkrich_model_reload_failing", symbol="BTCEUR") == 1 and s, 30, 0.2,
                       what="a failing reload")
        assert value(m, "mkrich_model_reload_failures_total", symbol="BTCEUR") >= 1
        assert value(m, "mkrich_model_info", symbol="BTCEUR", model=NAME, version=second.version) == 1
        third = store.publish(trained_artifacts, "BTCEUR")  # rewrites the pointer: reloads recover
        m = wait_until(lambda: (s := scrape(srv.url)) and value(s, "mkrich_model_reload_failing", symbol="BTCEUR") == 0 and s, 30, 0.2,
                       what="the reload to recover")
        assert value(m, "mkrich_model_info", symbol="BTCEUR", model=NAME, version=third.version) == 1
    finally:
        srv.stop()
