"""The pipeline's results reach a real Pushgateway (prometheus-pushgateway on loopback)."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
from prometheus_client.parser import text_string_to_metric_families

from make_us_rich.observability import JOB, PUSHGATEWAY_ENV, push_failure
from make_us_rich.stages import publish_stage


def pushed(gateway, symbol: str) -> dict[str, float]:
    """``{metric name: value}`` the gateway holds for job mkrich_pipeline, group ``symbol``."""
    out = {}
    for family in text_string_to_metric_families(gateway.get("/metrics")):
        for s in family.samples:
            if s.labels.get("job") == JOB and s.labels.get("symbol") == symbol and s.name.startswith("mkrich_"):
                out[s.name] = s.value
    return out


def test_publish_pushes_the_run_and_counts_rejections_in_a_row(
    pushgateway, monkeypatch, tmp_path, trained_artifacts, rejected_artifacts
):
    store = str(tmp_path / "store")
    monkeypatch.setenv(PUSHGATEWAY_ENV, pushgateway.url)
    publish_stage(trained_artifacts, "BTCEUR", store)
    first = pushed(pushgateway, "BTCEUR")
    metrics = json.loads((trained_artifacts / "metrics.json").read_text())
    assert first["mkrich_pipeline_gate_passed"] == 1 and first["mkrich_pipeline_gate_rejected_streak"] == 0
    assert first["mkrich_pipeline_pinball_ratio_vs_empirical"] == pytest.approx(metrics["test"]["ratio"]["pinball_vs_empirical"])
    assert first["mkrich_pipeline_coverage90"] == pytest.approx(metrics["test"]["model"]["intervals"]["90"]["coverage"])
    assert first["mkrich_pipeline_training_seconds"] == pytest.approx(metrics["training"]["seconds"])
    assert first["mkrich_pipeline_last_accepted_timestamp_seconds"] == first["mkrich_pipeline_last_run_timestamp_seconds"]

    for expected_streak in (1, 2):
        result = publish_stage(rejected_artifacts, "BTCEUR", store)
        assert result["status"] == "rejected"
        now = pushed(pushgateway, "BTCEUR")
        assert now["mkrich_pipeline_gate_passed"] == 0
        assert now["mkrich_pipeline_gate_rejected_streak"] == expected_streak
    assert now["mkrich_pipeline_last_run_timestamp_seconds"] > first["mkrich_pipeline_last_run_timestamp_seconds"]
    # the last accepted time stays that of the accepted run (pushadd keeps the other metrics)
    assert now["mkrich_pipeline_last_accepted_timestamp_seconds"] == first["mkrich_pipeline_last_accepted_timestamp_seconds"]

    publish_stage(trained_artifacts, "BTCEUR", store)
    assert pushed(pushgateway, "BTCEUR")["mkrich_pipeline_gate_rejected_streak"] == 0
    accepted_at = pushed(pushgateway, "BTCEUR")["mkrich_pipeline_last_accepted_timestamp_seconds"]

    # passed the gate's scores but breaks the serving contract: rejected, and pushed as such
    shutil.copytree(trained_artifacts, tmp_path / "6h")
    card = json.loads((tmp_path / "6h" / "model_card.json").read_text())
    (tmp_path / "6h" / "model_card.json").write_text(json.dumps({**card, "sequence_length": 6}))
    assert publish_stage(tmp_path / "6h", "BTCEUR", store)["status"] == "rejected"
    refused = pushed(pushgateway, "BTCEUR")
    assert refused["mkrich_pipeline_gate_passed"] == 0 and refused["mkrich_pipeline_gate_rejected_streak"] == 1
    assert refused["mkrich_pipeline_last_accepted_timestamp_seconds"] == accepted_at

    push_failure(["BTCEUR"])
    after = pushed(pushgateway, "BTCEUR")
    assert after["mkrich_pipeline_last_failure_timestamp_seconds"] >= after["mkrich_pipeline_last_run_timestamp_seconds"]
    assert after["mkrich_pipeline_gate_passed"] == 0  # a failure push keeps the last run's metrics


def test_off_by_default_and_a_dead_gateway_never_fails_the_publish(
    pushgateway, monkeypatch, tmp_path, trained_artifacts, caplog
):
    monkeypatch.delenv(PUSHGATEWAY_ENV, raising=False)
    assert publish_stage(trained_artifacts, "BTCEUR", str(tmp_path / "a"))["status"] == "accepted"
    assert pushed(pushgateway, "BTCEUR") == {}

    pushgateway.stop()  # nothing listens there any more
    monkeypatch.setenv(PUSHGATEWAY_ENV, f"http://user:s3cret@127.0.0.1:{pushgateway.port}")
    with caplog.at_level(logging.WARNING, logger="make_us_rich.observability"):
        assert publish_stage(trained_artifacts, "BTCEUR", str(tmp_path / "b"))["status"] == "accepted"
    assert "could not push BTCEUR metrics to the Pushgateway http://127.0.0.1:" in caplog.text
    assert "s3cret" not in caplog.text

    monkeypatch.setenv(PUSHGATEWAY_ENV, "pushgateway:9091")
    with caplog.at_level(logging.ERROR, logger="make_us_rich.observability"):
        assert publish_stage(trained_artifacts, "BTCEUR", str(tmp_path / "c"))["status"] == "accepted"
    assert "is not an http(s) URL" in caplog.text
