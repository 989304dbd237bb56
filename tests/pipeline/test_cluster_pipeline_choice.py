"""Which pipeline the cluster runs is one setting: ``--pipeline`` of submit/schedule, through the
real ``kfp.Client`` against the fake KFP API on loopback."""

from __future__ import annotations

import pytest

from make_us_rich.cli import main
from make_us_rich.errors import ConfigError
from make_us_rich.pipelines.cluster import schedule


def test_schedule_universal_then_back_keeps_one_hourly_retrain(kfp_api, capsys):
    assert main(["schedule", "--host", kfp_api.url, "--pipeline", "universal-training",
                 "--symbols", "BTCEUR,BTCUSDT", "--time-budget", "300", "--eval-batch", "5"]) == 0
    assert "of universal-training" in capsys.readouterr().out
    (first,) = kfp_api.recurring_runs.values()
    assert first["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "universal-training"
    assert first["display_name"] == "hourly-training-hourly"
    assert first["runtime_config"]["parameters"] == {
        "symbols": ["BTCEUR", "BTCUSDT"], "time_budget": 300.0, "eval_batch": 5}
    # switching back replaces it: never two hourly retrains
    assert main(["schedule", "--host", kfp_api.url, "--symbols", "BTCEUR"]) == 0
    (second,) = kfp_api.recurring_runs.values()
    assert second["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "hourly-training"


def test_submit_universal(kfp_api, capsys):
    assert main(["submit", "--host", kfp_api.url, "--pipeline", "universal-training",
                 "--symbols", "BTCEUR,ETHUSDT", "--warm-start", "false"]) == 0
    (run,) = kfp_api.runs.values()
    assert run["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "universal-training"
    assert run["runtime_config"]["parameters"]["warm_start"] is False


def test_universal_flags_need_the_universal_pipeline(kfp_api, capsys):
    assert main(["submit", "--host", kfp_api.url, "--time-budget", "60"]) == 2
    assert "--time-budget: options of universal-training; add --pipeline universal-training" in capsys.readouterr().err
    assert kfp_api.runs == {}


def test_unknown_pipeline_fails_before_calling_the_cluster(kfp_api):
    with pytest.raises(ConfigError, match="unknown pipeline 'universal'"):
        schedule(kfp_api.url, {"symbols": ["BTCEUR"]}, pipeline="universal")
    assert kfp_api.recurring_runs == {} and kfp_api.experiments == {}
