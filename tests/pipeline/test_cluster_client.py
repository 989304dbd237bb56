"""Submit/schedule through the real ``kfp.Client`` against a fake KFP API on loopback."""

from __future__ import annotations

import pytest

from make_us_rich.cli import main
from make_us_rich.errors import ConfigError
from make_us_rich.pipelines.cluster import ClusterError, schedule, submit, unschedule
from make_us_rich.testing.fake_kfp import FakeKFP


def test_schedule_creates_the_hourly_recurring_run(kfp_api, capsys):
    assert main(["schedule", "--host", kfp_api.url, "--symbols", "BTCEUR,BTCUSDT",
                 "--store", "s3://models/mkrich", "--s3-endpoint", "http://minio:9000"]) == 0
    assert "0 0 * * * *" in capsys.readouterr().out
    (post,) = kfp_api.calls("POST", "/recurringruns")
    body = post["body"]
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 * * * *"}}  # 6 fields: hourly
    assert body["max_concurrency"] == 1 and body["no_catchup"] is True
    assert body["mode"] == "ENABLE" and body["display_name"] == "hourly-training-hourly"
    assert body["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "hourly-training"
    executors = body["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert "secretAsEnv" in executors["exec-publish-model"]  # the platform spec travels too
    assert body["runtime_config"]["parameters"] == {
        "symbols": ["BTCEUR", "BTCUSDT"], "store_uri": "s3://models/mkrich",
        "s3_endpoint": "http://minio:9000",
    }
    assert len(kfp_api.experiments) == 1


def test_schedule_is_idempotent_by_name_and_unschedule_removes_it(kfp_api):
    first = schedule(kfp_api.url, {"symbols": ["BTCEUR"]})
    second = schedule(kfp_api.url, {"symbols": ["BTCEUR"], "max_epochs": 10})
    assert second["replaced"] == [first["recurring_run_id"]]
    assert list(kfp_api.recurring_runs) == [second["recurring_run_id"]]
    assert kfp_api.recurring_runs[second["recurring_run_id"]]["runtime_config"]["parameters"]["max_epochs"] == 10
    assert unschedule(kfp_api.url) == [second["recurring_run_id"]]
    assert kfp_api.recurring_runs == {}
    assert len(kfp_api.experiments) == 1  # the experiment is reused, not duplicated


def test_submit_one_run(kfp_api):
    run_id = submit(kfp_api.url, {"symbols": ["BTCEUR"], "source": "binance"})
    run = kfp_api.runs[run_id]
    assert run["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "hourly-training"
    assert run["runtime_config"]["parameters"]["source"] == "binance"


def test_five_field_cron_is_refused():
    with pytest.raises(ConfigError, match="6 fields"):
        schedule("http://127.0.0.1:9", {}, cron="0 * * * *")


def test_token_is_sent_and_unauthorized_is_clear():
    with FakeKFP(token="t0ken") as fake:
        with pytest.raises(ClusterError, match="not authorized"):
            schedule(fake.url, {"symbols": ["BTCEUR"]}, token="wrong")
        result = schedule(fake.url, {"symbols": ["BTCEUR"]}, token="t0ken")
        assert result["recurring_run_id"] in fake.recurring_runs
        assert fake.requests[-1]["authorization"] == "Bearer t0ken"


def test_the_projected_token_is_sent_with_an_explicit_host(tmp_path, monkeypatch):
    """The in-cluster Job passes --host and no --token: every call carries the token the
    kubelet projects (kfp.Client reads it only when it finds the host itself)."""
    (tmp_path / "token").write_text("pr0jected\n")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "token"))
    with FakeKFP(token="pr0jected") as fake:
        result = schedule(fake.url, {"symbols": ["BTCEUR"]})
        assert result["recurring_run_id"] in fake.recurring_runs
        assert {r["authorization"] for r in fake.requests} == {"Bearer pr0jected"}


def test_unreachable_host_is_a_clear_error(capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    rc = main(["schedule", "--host", f"http://127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and f"127.0.0.1:{port}" in err


def test_unschedule_without_an_experiment_creates_nothing(kfp_api):
    assert unschedule(kfp_api.url) == []
    assert kfp_api.experiments == {}
    assert not kfp_api.calls("POST", "/experiments")
