"""Forecast horizons as a pipeline parameter (issue 22), declared once (``TrainConfig.horizons``):
the universal pipeline's default is 1, 4 and 24 hours, a model of one symbol forecasts the next
hour only, and real kfp.local runs train, gate per horizon and publish a model of several
horizons, warm-starting the next run only from a model of the same horizons."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from make_us_rich.params import PIPELINE_DEFAULTS
from make_us_rich.pipelines.hourly_training import hourly_training, universal_training
from make_us_rich.store import ModelStore
from make_us_rich.training import TrainConfig, preset

#: tiny settings on 125 days of the sample: the last 20 % (about 450 hours) is each symbol's test
#: period, long enough for the 4-hour scores' bootstrap (blocks of 168 hours, two at least)
FLAGS = ["--universal", "--symbols", "BTCEUR,BTCUSDT", "--lookback-days", "125", "--test-size", "0.2",
         "--sequence-length", "12", "--units", "8", "--epochs", "2", "--patience", "1", "--batch-size", "64",
         "--seed", "7"]


def test_horizons_are_declared_once():
    assert TrainConfig().horizons == (1,) and PIPELINE_DEFAULTS["horizons"] == "1"
    assert preset("universal").horizons == (1, 4, 24)
    assert inspect.signature(universal_training.pipeline_func).parameters["horizons"].default == "1,4,24"
    assert inspect.signature(hourly_training.pipeline_func).parameters["horizons"].default == "1"
    assert TrainConfig(horizons=(24, 1, 4, 4)).horizons == (1, 4, 24)
    from make_us_rich.errors import ConfigError

    for bad in ((4, 24), (), (1, 721), ("x",)):
        with pytest.raises(ConfigError, match="horizons"):
            TrainConfig(horizons=bad)


def mkrich(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "make_us_rich.cli", *args], capture_output=True, text=True,
                          timeout=1800)


def log_of(root: Path, n: int) -> str:
    runs = sorted(root.glob("universal-training-*"))
    assert len(runs) == n, runs
    return (runs[-1] / "kfp-local.log").read_text()


def test_a_model_of_one_symbol_forecasts_the_next_hour_only(tmp_path):
    done = mkrich("run", "--symbols", "BTCEUR", "--horizons", "1,4", "--store", str(tmp_path / "store"),
                  "--pipeline-root", str(tmp_path / "root"))
    assert done.returncode == 2 and "--horizons other than 1 is an option of --universal" in done.stderr
    done = mkrich("train", "--symbol", "BTCEUR", "--horizons", "1,4", "--out", str(tmp_path / "x"))
    assert done.returncode == 2 and "next hour only" in done.stderr
    assert not (tmp_path / "root").exists() and not (tmp_path / "x").exists()


def test_the_per_symbol_pipeline_is_not_submitted_or_scheduled_with_other_horizons(kfp_api, capsys):
    """Refused before the KFP API is asked: the recurring run would fail at its train step every
    hour. ``--horizons 1`` (written in any way) is the next hour and goes through."""
    from make_us_rich.cli import main

    for command in ("submit", "schedule"):
        assert main([command, "--host", kfp_api.url, "--symbols", "BTCEUR", "--horizons", "1,4"]) == 2
        assert "--horizons other than 1 is an option of --pipeline universal-training" in capsys.readouterr().err
    assert kfp_api.requests == []
    assert main(["submit", "--host", kfp_api.url, "--symbols", "BTCEUR", "--horizons", "1,1"]) == 0, \
        capsys.readouterr().err
    (post,) = kfp_api.calls("POST", "/runs")
    assert post["body"]["runtime_config"]["parameters"]["horizons"] in ("1,1", "1")


def test_universal_pipeline_trains_gates_and_warm_starts_per_horizons(tmp_path):
    pytest.importorskip("tensorflow")
    store, root = tmp_path / "store", tmp_path / "root"
    where = ["--store", str(store), "--pipeline-root", str(root)]
    done = mkrich("run", *FLAGS, *where, "--horizons", "1,4")
    assert done.returncode == 0, done.stdout + done.stderr
    log = log_of(root, 1)
    assert "trained in full (no accepted universal model in the store)" in log
    for sym in ("BTCEUR", "BTCUSDT"):
        pointer = ModelStore(store).latest(sym)
        assert pointer["horizon_axis"] == [1, 4] and pointer["horizons"][0] == 1
        manifest = ModelStore(store).manifest(sym, pointer["version"])
        gate = manifest["gate"]
        assert pointer["horizons"] == gate["served_horizons"] == [h for h in (1, 4) if gate["horizons"][str(h)]["passed"]]
        assert f"{sym}: horizons served {pointer['horizons']}" in log
        assert f"horizons served {','.join(map(str, pointer['horizons']))} of 1,4 h" in done.stdout
        output = json.loads(next(root.glob("universal-training-*/**/evaluate-and-publish/executor_output.json"))
                            .read_text())
        logged = output["artifacts"]["metrics"]["artifacts"][0]["metadata"]  # the KFP UI's metrics
        assert logged[f"{sym}.longest_horizon_served"] == max(pointer["horizons"])
    config = (store / "triton" / "universal" / "config.pbtxt").read_text()
    assert 'name: "quantile_close_horizons" data_type: TYPE_FP32 dims: [ -1, 2, 5 ]' in config

    # the next run, same horizons: from the last accepted model
    done = mkrich("run", *FLAGS, *where, "--horizons", "1,4")
    # 1: the run finished and its gate rejected a tiny model (still a finished run, published or not)
    assert done.returncode in (0, 1) and "pipeline finished in" in done.stdout, done.stdout + done.stderr
    assert "warm start from {'symbol'" in log_of(root, 2)

    # other horizons: trained in full, and the log says why
    done = mkrich("run", *FLAGS, *where, "--horizons", "1")
    # 1: the run finished and its gate rejected a tiny model (still a finished run, published or not)
    assert done.returncode in (0, 1) and "pipeline finished in" in done.stdout, done.stdout + done.stderr
    log = log_of(root, 3)
    assert "trained in full (cannot warm-start from" in log and "it forecasts the horizons [1, 4] h, this run [1] h" in log
