"""The real pipeline through kfp.local (SubprocessRunner), on the bundled sample, tiny settings."""

from __future__ import annotations

import builtins
import json
import time
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")


def test_local_run_publishes_a_model_per_symbol(tmp_path, capsys):
    """One run, two symbols: a gate tolerance of 0.3 % accepts BTCEUR (pinball ratio vs the
    empirical quantiles 0.996, median RMSE ratio vs persistence 1.001 with these settings) and
    rejects BTCUSDT (pinball ratio 1.005). The exit task posts ONE summary of both to a webhook
    that answers 500: logged, and the run still succeeds."""
    from make_us_rich.cli import main
    from make_us_rich.notify import text
    from make_us_rich.progress import parse_epoch
    from make_us_rich.store import ModelStore
    from make_us_rich.testing.webhook import WebhookReceiver

    store = tmp_path / "store"
    original_print = builtins.print
    with WebhookReceiver(status=500) as hook:
        rc = main([
            "run", "--symbols", "BTCEUR,BTCUSDT", "--store", str(store),
            "--pipeline-root", str(tmp_path / "root"), "--lookback-days", "75",
            "--sequence-length", "12", "--units", "8", "--epochs", "2", "--patience", "2", "--batch-size", "64",
            "--gate-tolerance", "0.003", "--notify-url", hook.hook_url, "--notify-format", "json",
        ])
        out = capsys.readouterr().out
        assert rc == 0, out
        # kfp.local swaps print per task; its parallel tasks could leave it swapped (indented)
        assert builtins.print is original_print
        time.sleep(0.5)  # nothing else may arrive: the CLI prints, it never posts a second time
        (summary,) = hook.notifications
    assert summary["status"] == "succeeded" and summary["error"] is None
    assert [s["symbol"] for s in summary["symbols"]] == ["BTCEUR", "BTCUSDT"]
    assert [s["status"] for s in summary["symbols"]] == ["accepted", "rejected"], text(summary)
    assert "pipeline finished" in out and "BTCEUR" in out and "BTCUSDT" in out
    assert f"run summary\n{text(summary)}\n(run summary NOT delivered to the webhook" in out  # what the exit task sent
    # one short line per finished step and symbol, and the exit task's; kfp.local's dumps only
    # in the run's log file
    steps = [line.split() for line in out.splitlines() if line.startswith("  ok ")]
    assert len(steps) == 2 * 9 + 1 and {(s[1], s[2]) for s in steps} >= {
        ("fetch-klines", "BTCEUR"), ("train-lstm", "BTCUSDT"), ("publish-model", "BTCEUR"),
        ("notify-run", "BTCEUR,BTCUSDT")}
    fetch = next(s for s in steps if s[1:3] == ["fetch-klines", "BTCEUR"])
    assert "rows_out=1800" in fetch, fetch  # 75 days of hours
    assert "executor_input" not in out and len(out.splitlines()) < 80
    log = Path(out.split("kfp.local log: ")[1].splitlines()[0])
    logged = log.read_text()
    assert log.parent.parent == tmp_path / "root" and "Got executor_input" in logged
    assert "run summary NOT delivered to the webhook" in logged  # the 500, logged by the exit task
    assert hook.hook_url not in logged  # the webhook (a secret) is no pipeline parameter
    # the train step logs its epochs: what mkrich run's live bar reads on a terminal
    epochs = {parse_epoch(line) for line in logged.splitlines()} - {None}
    assert (1, 2) in epochs, "no epoch lines in the train step's log"
    s = ModelStore(store)
    for symbol in ("BTCEUR", "BTCUSDT"):
        versions = s.versions(symbol)
        assert len(versions) == 1
        manifest = versions[0]
        sent = next(x for x in summary["symbols"] if x["symbol"] == symbol)
        assert (sent["status"], sent["version"]) == (manifest["status"], manifest["version"])
        assert sent["gate_reasons"] == manifest["gate"]["reasons"] and sent["data"]["rows"] == 1800
        assert sent["data"]["validation"]["gaps"] == 0 and sent["data"]["source"] == "sample"
        assert sent["ratios"] == manifest["metrics"]["ratio"]
        assert sent["baselines"]["empirical"] == manifest["metrics"]["baselines"]["empirical"]["mean_pinball"]
        assert manifest["sequence_length"] == 12
        assert manifest["metrics"]["baselines"]["persistence"]["mean_pinball"] > 0
        if manifest["status"] == "accepted":
            assert s.latest(symbol)["version"] == manifest["version"]
        else:
            assert s.latest(symbol) is None  # a rejected model never becomes latest
        model = s.read(symbol, manifest["version"], "model.onnx", manifest["files"]["model.onnx"]["sha256"])
        assert len(model) > 1000
    assert any(r.startswith("mean pinball ratio vs empirical quantiles") and "> 1.0030" in r
               for r in summary["symbols"][1]["gate_reasons"])
    # what the dashboard shows: metrics, the HTML report and the Markdown summary
    run_dir = next((tmp_path / "root").glob("hourly-training-*"))
    evaluations = list(run_dir.glob("**/evaluate-and-gate"))
    assert len(evaluations) == 2
    for ev in evaluations:
        output = json.loads((ev / "executor_output.json").read_text())
        metrics = output["artifacts"]["metrics"]["artifacts"][0]["metadata"]
        assert {"model_mean_pinball", "empirical_mean_pinball", "garch_t_mean_pinball",
                "ratio_pinball_vs_empirical", "model_coverage90", "gate_passed"} <= set(metrics)
        report = (ev / "report").read_text()
        assert report.count("<img") == 3 and "GARCH-t" in report and "persistence" in (ev / "summary").read_text()
        card = json.loads(Path(ev / "artifacts" / "model_card.json").read_text())
        assert card["data"]["source"] == "sample" and card["data"]["rows"] == 1800
    # the run history (mkrich runs): the run, its per-symbol gate decisions, the models over time
    assert main(["runs", "--root", str(tmp_path / "root")]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("hourly-training-")]
    assert " succeeded " in row and "BTCEUR accepted pinball/A 0." in row and "BTCUSDT rejected" in row
    assert main(["runs", "show", "latest", "--root", str(tmp_path / "root")]) == 0
    shown = capsys.readouterr().out
    assert "gate_tolerance=0.003" in shown and "source sample" in shown
    assert shown.count("\n  ok      ") == 2 * 9 + 1 and "artifacts: " in shown
    assert main(["runs", "models", "--symbol", "BTCEUR", "--store", str(store)]) == 0
    history = capsys.readouterr().out.splitlines()
    assert len(history) == 3 and history[2].endswith("<- latest") and " accepted " in history[2]


def test_a_failing_step_is_one_line_naming_it_and_the_log(tmp_path, capsys):
    """Two days of klines cannot hold the test windows: make-sequences fails (no retries); the
    run summary says so."""
    from make_us_rich.cli import main
    from make_us_rich.testing.webhook import WebhookReceiver

    with WebhookReceiver() as hook:
        rc = main(["run", "--store", str(tmp_path / "store"), "--pipeline-root", str(tmp_path / "root"),
                   "--lookback-days", "2", "--notify-url", hook.hook_url])
        captured = capsys.readouterr()
        time.sleep(0.5)
        (sent,) = hook.notifications  # the exit task ran after the failed body, once
    assert sent["text"].startswith("hourly-training run failed: ")  # Slack, the default format
    assert "BTCEUR: not published" in sent["text"] and sent["text"] in captured.out
    assert rc == 2, captured.out
    err = captured.err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("error: make-sequences (BTCEUR) failed: ") and "InsufficientHistoryError" in err
    log = Path(err.split("(full log: ")[1].rstrip(")"))
    assert log.is_file() and "InsufficientHistoryError" in log.read_text()
    assert "FAILED make-sequences" in captured.out
