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


# ------------------------------------------------------------------ the exit task's builder
def test_exit_task_summary_from_the_store_in_both_formats(tmp_path, receiver, monkeypatch, trained_artifacts,
                                                          rejected_artifacts):
    """What the pipeline's exit task does (notify_run -> notify_pipeline_run): the version each
    symbol published in THIS run, read back from a real store with its model card; one POST."""
    import time

    from make_us_rich.notify import DASHBOARD_ENV, FORMAT_ENV, NOTIFY_ENV, notify_pipeline_run

    def now() -> str:
        time.sleep(1.1)  # manifests keep seconds
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    store = ModelStore(tmp_path / "store")
    store.publish(rejected_artifacts, "BTCEUR")  # an earlier run's: not this run's result
    since = now()
    accepted = store.publish(trained_artifacts, "BTCEUR")
    monkeypatch.setenv(NOTIFY_ENV, receiver.hook_url)
    monkeypatch.setenv(FORMAT_ENV, "json")
    monkeypatch.setenv(DASHBOARD_ENV, "https://kubeflow.example/_/pipeline/")

    summary, outcome = notify_pipeline_run("SUCCEEDED", ["BTCEUR", "BTCUSDT"], store.uri, since=since,
                                           run_id="0d6f-run")
    assert outcome == "run summary sent to the webhook (json)"
    (sent,) = receiver.wait(1)
    assert sent == summary and sent["status"] == "succeeded" and sent["error"] is None
    assert sent["run_url"] == "https://kubeflow.example/_/pipeline/#/runs/details/0d6f-run"
    btceur, btcusdt = sent["symbols"]
    assert (btceur["status"], btceur["version"]) == ("accepted", accepted.version)
    assert btceur["gate_reasons"] == store.versions("BTCEUR")[-1]["gate"]["reasons"]
    assert btcusdt == {"symbol": "BTCUSDT", "status": "not published"}
    assert btceur["data"]["rows"] == 1800 and btceur["data"]["validation"]["gaps"] == 0  # from the stored card
    assert btceur["model"]["mean_pinball"] > 0 and btceur["baselines"]["empirical"] > 0

    since = now()  # the next hour's run: rejected, and it failed for another symbol
    rejected = store.publish(rejected_artifacts, "BTCEUR")
    monkeypatch.setenv(FORMAT_ENV, "slack")
    monkeypatch.delenv(DASHBOARD_ENV)
    summary, outcome = notify_pipeline_run("FAILED", ["BTCEUR", "BTCUSDT"], store.uri, since=since,
                                           run_id="1e7a-run", error="Task exit-handler-1 failed.")
    assert outcome == "run summary sent to the webhook (slack)"
    (_, slack) = receiver.wait(2)
    assert set(slack) == {"text"} and slack["text"] == text(summary)
    lines = slack["text"].splitlines()
    assert lines[0] == "hourly-training run failed: Task exit-handler-1 failed."
    assert lines[1] == f"BTCEUR: rejected {rejected.version} (1800 rows, 0 gaps)"  # no link: no UI known
    assert lines[2].startswith("  mean pinball ") and "(baselines: " in lines[2] and "empirical" in lines[2]
    assert any(line.startswith("  gate: 90 % interval coverage") and "outside 0.99-1.00" in line for line in lines)
    assert lines[-1] == "BTCUSDT: not published"


def test_exit_task_never_fails_on_the_webhook_or_the_store(tmp_path, receiver, monkeypatch, caplog):
    from make_us_rich.notify import FORMAT_ENV, NOTIFY_ENV, notify_pipeline_run

    monkeypatch.delenv(NOTIFY_ENV, raising=False)
    summary, outcome = notify_pipeline_run("SUCCEEDED", ["BTCEUR"], str(tmp_path / "empty"))
    assert outcome.startswith("no webhook configured") and summary["symbols"] == [
        {"symbol": "BTCEUR", "status": "not published"}]

    url = receiver.hook_url
    receiver.stop()  # unreachable
    monkeypatch.setenv(NOTIFY_ENV, url)
    monkeypatch.setenv(FORMAT_ENV, "teams")
    with caplog.at_level(logging.WARNING, logger="make_us_rich.notify"):
        summary, outcome = notify_pipeline_run("SUCCEEDED", ["BTCEUR"], "s3://", since="2026-01-01T00:00:00Z")
    assert "NOT delivered" in outcome
    assert "MKRICH_NOTIFY_FORMAT must be one of slack, json, got 'teams'" in caplog.text
    assert "run summary not delivered to the webhook at http://127.0.0.1" in caplog.text
    assert summary["symbols"] == [{"symbol": "BTCEUR", "status": "not published"}]
    assert "results not read from the store" in summary["error"]  # said in the summary, not raised

    # a universal run that published nothing still says which pipeline ran (the exit task is told)
    from make_us_rich.notify import text

    summary, _ = notify_pipeline_run("FAILED", ["BTCEUR"], str(tmp_path / "empty"), pipeline="universal-training",
                                     error="fetch failed")
    assert summary["pipeline"] == "universal-training" and text(summary).startswith("universal-training run failed")

    summary, _ = notify_pipeline_run("SUCCEEDED", ["BTCEUR"], str(tmp_path / "empty"), since="{{$.pipeline_job_create_time_utc}}")
    assert "the run's creation time '{{$.pipeline_job_create_time_utc}}' is not an ISO 8601 time" in summary["error"]


def test_a_universal_runs_exit_summary_names_its_pipeline_and_has_the_table(universal_runs):
    """The summary the exit task of two real ``mkrich run --universal`` runs built: titled
    universal-training (not hourly-training), the model the symbols share, one table line per
    symbol with the store's figures, and the gate's reasons of the rejected ones."""
    import json

    root, store_dir, (first, second) = universal_runs
    store = ModelStore(store_dir)

    def exit_summary(run_id: str) -> dict:
        output = json.loads((root / run_id / "notify-run" / "executor_output.json").read_text())
        return json.loads(output["parameterValues"]["Output"])

    summary = exit_summary(first)
    lines = text(summary).splitlines()
    assert summary["pipeline"] == "universal-training" and lines[0] == "universal-training run succeeded"
    accepted = {s: store.versions(s)[0] for s in ("BTCEUR", "BTCUSDT")}
    (model,) = summary["models"]
    assert model["symbols"] == ["BTCEUR", "BTCUSDT"] and model["trained_on"] == ["BTCEUR", "BTCUSDT"]
    assert lines[1] == f"universal model {model['model_sha256'][:8]} (trained on BTCEUR, BTCUSDT) published for 2 symbol(s)"
    assert lines[2].split() == ["symbol", "status", "pinball/A", "pinball/HAR", "cov90", "cov50", "version"]
    for line, (symbol, manifest) in zip(lines[3:5], accepted.items(), strict=True):
        ratio = manifest["metrics"]["ratio"]
        coverage = manifest["metrics"]["model"]["intervals"]
        assert line.split() == [symbol, "accepted", f"{ratio['pinball_vs_empirical']:.4f}",
                                f"{ratio['pinball_vs_har']:.4f}", f"{coverage['90']['coverage']:.3f}",
                                f"{coverage['50']['coverage']:.3f}", manifest["version"]]
    assert lines[5:] == ["ETHUSDT      not published"]

    later = text(exit_summary(second))
    assert later.startswith("universal-training run succeeded\n")
    rejected = store.versions("BTCEUR")[-1]
    assert "\nBTCEUR       rejected " in later and rejected["version"] in later
    assert "\nBTCEUR rejected (keeps its previous model):\n" in later
    assert all(f"  gate: {r}" in later for r in rejected["gate"]["reasons"])
    # a per-symbol run's summary keeps its title
    assert text(run_summary("succeeded", {"BTCEUR": {}})).startswith("hourly-training run succeeded")
