"""The whole alerting path with the real binaries on loopback: `mkrich serve` -> Prometheus
(scrapes it, evaluates the PrometheusRule's rules) -> Alertmanager -> a webhook receiver. The
served model goes stale (the stale threshold is shortened for the test), the alert arrives;
a newer model is published, the predictor reloads it and the alert resolves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from monitoring import ALERTING, Daemon, free_port

from make_us_rich.store import ModelStore
from make_us_rich.testing import wait_until
from make_us_rich.testing.webhook import WebhookReceiver

pytest.importorskip("kserve")


def stale_rules(age_limit: float) -> dict:
    """The PrometheusRule's groups with MkrichModelStale at ``age_limit`` seconds, for 1 s."""
    spec = yaml.safe_load((ALERTING / "prometheusrule.yaml").read_text())["spec"]
    rule = next(r for g in spec["groups"] for r in g["rules"] if r.get("alert") == "MkrichModelStale")
    rule["expr"], n = re.subn(r"> 9000$", f"> {age_limit:.0f}", rule["expr"])
    assert n == 1, rule["expr"]
    rule["for"] = "1s"
    return spec


def test_stale_model_alert_reaches_the_receiver_and_resolves(tmp_path, trained_artifacts):
    store = ModelStore(tmp_path / "store")
    store.publish(trained_artifacts, "BTCEUR")
    created = datetime.fromisoformat(json.loads((trained_artifacts / "model_card.json").read_text())["created"])
    age_limit = time.time() - created.timestamp() + 15  # not stale now, stale in about 15 s
    stale_at = created.timestamp() + age_limit

    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen([str(Path(sys.executable).parent / "mkrich"), "serve", "--store", str(tmp_path / "store"),
                              "--symbols", "BTCEUR", "--port", str(port), "--reload-interval", "0.5"],
                             stdout=log, stderr=subprocess.STDOUT)
    receiver = WebhookReceiver().start()
    daemons: list[Daemon] = []
    try:
        (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump({
            "route": {"receiver": "hook", "group_by": ["alertname", "symbol"], "group_wait": "1s",
                      "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "hook", "webhook_configs": [{"url": receiver.hook_url, "send_resolved": True}]}],
        }))
        alertmanager = Daemon("prometheus-alertmanager", f"--config.file={tmp_path / 'alertmanager.yml'}",
                              f"--storage.path={tmp_path / 'am'}", "--cluster.listen-address=")
        daemons.append(alertmanager)
        (tmp_path / "rules.yml").write_text(yaml.safe_dump(stale_rules(age_limit)))
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(tmp_path / "rules.yml")],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager.port}"]}]}]},
            "scrape_configs": [{"job_name": "mkrich-predictor",
                                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
        }))
        prometheus = Daemon("prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                            f"--storage.tsdb.path={tmp_path / 'tsdb'}")
        daemons.append(prometheus)

        def query(expr: str) -> list:
            url = f"{prometheus.url}/api/v1/query?query={urllib.request.quote(expr)}"
            return json.loads(urllib.request.urlopen(url, timeout=10).read())["data"]["result"]

        def scraped() -> list:
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()
            return query('mkrich_model_created_timestamp_seconds{symbol="BTCEUR"}')

        wait_until(scraped, 60, 0.5, what=lambda: "Prometheus scraped the model's creation time; "
                   "the server's log:\n" + (tmp_path / "serve.log").read_text())
        if time.time() < stale_at - 3:  # scraped well before the model goes stale: not firing
            assert not query('ALERTS{alertname="MkrichModelStale"}') and not receiver.notifications

        fired = receiver.wait_for("firing", "MkrichModelStale")
        assert fired["labels"]["symbol"] == "BTCEUR" and fired["labels"]["severity"] == "critical"
        assert fired["annotations"]["runbook_url"].endswith("operations.md#model-stale")
        assert "the served model is" in fired["annotations"]["summary"]

        # a model trained now (the same weights, its card dated now) is published and reloaded
        fresh = tmp_path / "fresh"
        shutil.copytree(trained_artifacts, fresh)
        card = json.loads((fresh / "model_card.json").read_text())
        card["created"] = datetime.now(UTC).isoformat(timespec="seconds")
        (fresh / "model_card.json").write_text(json.dumps(card))
        store.publish(fresh, "BTCEUR")
        resolved = receiver.wait_for("resolved", "MkrichModelStale")
        assert resolved["labels"]["symbol"] == "BTCEUR"
    finally:
        for daemon in daemons:
            daemon.stop()
        serve.terminate()
        serve.wait(timeout=20)
        receiver.stop()
