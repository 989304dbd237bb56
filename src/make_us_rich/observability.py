"""The pipeline's results to a Prometheus Pushgateway (the standard for batch jobs): after each
publish, per symbol, the run time, the gate decision and how many versions in a row it
rejected, the metric ratios, the 90 % coverage and the training time. The alert rules
(manifests/components/alerting) read them. Off unless ``MKRICH_PUSHGATEWAY_URL`` is set; a
Pushgateway that cannot be reached is logged and never fails the run (the model is published).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from make_us_rich.contract import Gate, ModelScores

log = logging.getLogger(__name__)

PUSHGATEWAY_ENV = "MKRICH_PUSHGATEWAY_URL"
JOB = "mkrich_pipeline"
PREFIX = "mkrich_pipeline_"


def rejected_streak(versions: list[dict[str, Any]]) -> int:
    """Rejected versions since the last accepted one (``versions`` oldest first)."""
    streak = 0
    for manifest in reversed(versions):
        if manifest.get("status") != "rejected":
            break
        streak += 1
    return streak


def run_metrics(metrics: dict[str, Any], streak: int, at: float) -> dict[str, tuple[float, str]]:
    """``{name: (value, help)}`` of one publish, from metrics.json's content."""
    scores = ModelScores.of(metrics.get("test"))
    passed = Gate.of(metrics.get("gate")).passed
    values = {
        "last_run_timestamp_seconds": (at, "when the last run of the symbol published, Unix time"),
        "gate_passed": (float(passed), "1 if the last run's model passed the promotion gate"),
        "gate_rejected_streak": (float(streak), "versions rejected in a row since the last accepted one"),
        "pinball_ratio_vs_empirical": (scores.pinball_vs_empirical, "test mean pinball vs empirical quantiles"),
        "median_rmse_ratio_vs_persistence": (scores.rmse_vs_persistence, "test median RMSE vs persistence"),
        "coverage90": (scores.coverage90, "test coverage of the 90 % interval"),
        "training_seconds": ((metrics.get("training") or {}).get("seconds"), "training time"),
    }
    if passed:
        values["last_accepted_timestamp_seconds"] = (at, "when the symbol last published an accepted model")
    return {name: (float(v), h) for name, (v, h) in values.items() if v is not None}


def push(symbol: str, values: dict[str, tuple[float, str]], url: str | None = None) -> bool:
    """Push ``values`` under job ``mkrich_pipeline``, group ``symbol`` (replacing the metrics of
    the same names only). Returns whether it was pushed; off without a URL."""
    url = url if url is not None else os.environ.get(PUSHGATEWAY_ENV, "")
    if not url:
        return False
    if urlsplit(url).scheme not in ("http", "https"):
        log.error("%s=%r is not an http(s) URL (e.g. http://pushgateway.monitoring:9091); "
                  "metrics not pushed", PUSHGATEWAY_ENV, url)
        return False
    from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

    registry = CollectorRegistry()
    for name, (value, help_text) in values.items():
        Gauge(PREFIX + name, help_text, registry=registry).set(value)
    try:
        pushadd_to_gateway(url, job=JOB, grouping_key={"symbol": symbol}, registry=registry, timeout=10)
    except Exception as exc:  # the model is published already: a metric is not worth failing for
        parts = urlsplit(url)  # no credentials in the log
        where = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        log.warning("could not push %s metrics to the Pushgateway %s: %s", symbol, where, exc)
        return False
    return True


def push_publish(
    store, symbol: str, artifacts_dir: str | Path, url: str | None = None, version: str | None = None
) -> bool:
    """After a publish to ``store``: the run's metrics (``artifacts_dir/metrics.json``), with
    the rejected streak from the store's versions and, given the published ``version``, the
    gate's decision as stored (the store's own checks, e.g. the serving contract, may reject a
    model metrics.json says passed)."""
    if not (url if url is not None else os.environ.get(PUSHGATEWAY_ENV)):
        return False
    try:
        metrics = json.loads((Path(artifacts_dir) / "metrics.json").read_text())
        if version is not None:
            metrics["gate"] = store.manifest(symbol, version)["gate"]
        streak = rejected_streak(store.versions(symbol))
    except Exception as exc:
        log.warning("no Pushgateway metrics for %s: %s", symbol, exc)
        return False
    return push(symbol, run_metrics(metrics, streak, time.time()), url)


def push_failure(symbols: list[str], url: str | None = None) -> None:
    """A run that failed: its time, per symbol (the alert compares it with the last publish)."""
    now = time.time()
    for symbol in symbols:
        push(symbol, {"last_failure_timestamp_seconds": (now, "when a run of the symbol last failed, Unix time")}, url)
