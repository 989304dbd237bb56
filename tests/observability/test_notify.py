"""The run summary (make_us_rich.notify) from real store manifests, posted to a loopback webhook
in both formats; a webhook that fails never raises."""

from __future__ import annotations

import logging

import pytest

from make_us_rich.notify import body, post, run_summary, text
from make_us_rich.store import ModelStore
from make_us_rich.testing.webhook import WebhookReceiver


@pytest.fixture
def receiver():
    with WebhookReceiver() as r:
        yield r


def view(store: ModelStore, symbol: str, artifacts) -> dict:
    return {"newest": store.versions(symbol)[-1], "artifacts": str(artifacts)}


def test_accepted_then_rejected_run_summaries_reach_the_webhook(tmp_path, receiver, trained_artifacts, rejected_artifacts):
    store = ModelStore(tmp_path / "store")
    accepted = store.publish(trained_artifacts, "BTCEUR")
    first = run_summary("succeeded", {"BTCEUR": view(store, "BTCEUR", trained_artifacts)})
    rejected = store.publish(rejected_artifacts, "BTCEUR")  # the next hour's run
    second = run_summary("succeeded", {"BTCEUR": view(store, "BTCEUR", rejected_artifacts)})

    assert post(receiver.hook_url, body(first, "json")) and post(receiver.hook_url, body(second, "slack"))
    generic, slack = receiver.wait(2)
    (sym,) = generic["symbols"]
    manifest = store.versions("BTCEUR")[0]
    assert sym["status"] == "accepted" and sym["version"] == accepted.version
    assert sym["gate_reasons"] == manifest["gate"]["reasons"]
    assert sym["ratios"]["pinball_vs_empirical"] == manifest["metrics"]["ratio"]["pinball_vs_empirical"]
    assert set(sym["baselines"]) >= {"empirical", "persistence"} and sym["model"]["coverage90"] > 0
    assert sym["data"]["rows"] == 1800 and sym["data"]["source"] == "sample"

    assert set(slack) == {"text"}  # Slack incoming-webhook JSON
    assert f"BTCEUR: rejected {rejected.version}" in slack["text"]
    assert all(f"gate: {r}" in slack["text"] for r in store.versions("BTCEUR")[-1]["gate"]["reasons"])
    assert slack["text"] == text(second)


def test_a_failing_webhook_is_logged_not_raised(receiver, caplog):
    summary = run_summary("failed", {"BTCEUR": {}}, error="make-sequences (BTCEUR) failed")
    assert "hourly-training run failed: make-sequences (BTCEUR) failed" in text(summary)
    url = receiver.url + "/services/T000/B000/s3cretpath"
    receiver.stop()  # nothing listens there any more
    with caplog.at_level(logging.WARNING, logger="make_us_rich.notify"):
        assert post(url, body(summary)) is False
    assert "run summary not delivered to the webhook at http://127.0.0.1" in caplog.text
    assert "s3cretpath" not in caplog.text
    with pytest.raises(ValueError, match="slack, json"):
        body(summary, "teams")
