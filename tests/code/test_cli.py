"""The mkrich command line, run in-process through its real entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from make_us_rich.cli import main
from make_us_rich.data import read_klines_csv
from make_us_rich.preprocessing import load_scaler


def test_help_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("fetch", "preprocess", "fake-binance"):
        assert command in out


def test_fetch_from_the_fake_api(tmp_path, fake_binance, btcusdt_2023, capsys):
    out = tmp_path / "data.csv"
    rc = main([
        "fetch", "--source", "binance", "--api-url", fake_binance.api_url, "--symbol", "BTC/USDT", "--days", "365",
        "--end", "2023-12-31T23:00Z", "--out", str(out), "--no-progress",
    ])
    assert rc == 0
    pd.testing.assert_frame_equal(read_klines_csv(out), btcusdt_2023)
    printed = capsys.readouterr().out
    assert "BTCUSDT: 8759 candles" in printed and "1 missing candle(s) in 1 gap(s)" in printed


def test_fetch_from_the_sample(tmp_path, capsys):
    out = tmp_path / "s.csv.gz"
    assert main(["fetch", "--source", "sample", "--symbol", "BTCEUR", "--days", "5",
                 "--out", str(out)]) == 0
    assert len(read_klines_csv(out)) == 120


def test_errors_are_one_line_with_exit_code_2(tmp_path, fake_binance, capsys):
    rc = main(["fetch", "--source", "binance", "--api-url", fake_binance.api_url, "--symbol", "XRPEUR", "--days", "1",
               "--out", str(tmp_path / "x.csv"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: Binance does not know the symbol 'XRPEUR'")
    assert "Traceback" not in err
    assert not (tmp_path / "x.csv").exists()
    rc = main(["preprocess", "--days", "10", "--sequence-length", "120", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "no complete 120 h window" in err and "load more history" in err


def test_preprocess_writes_artifacts(tmp_path, capsys):
    assert main(["preprocess", "--source", "sample", "--symbol", "BTCEUR", "--sequence-length",
                 "24", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["symbol"] == "BTCEUR" and summary["train_rows"] == 3974
    seq = np.load(tmp_path / "sequences.npz")
    assert seq["X_train"].shape == (summary["train_windows"], 24, summary["n_features"])
    scaler = load_scaler(tmp_path / "scaler" / "scaler.json")
    train = pd.read_csv(tmp_path / "train.csv", index_col=0)  # the pipeline's stage files
    assert train.shape == (3974, summary["n_features"])
    # the scaler is fit on the train windows' stationary inputs only: they span exactly [-1, 1]
    from make_us_rich.preprocessing.windows import stationary_inputs
    from make_us_rich.training import TrainConfig

    x = stationary_inputs(seq["X_train"], TrainConfig().inputs).reshape(-1, scaler.n_features_in_)
    scaled = scaler.transform(x)
    varying = scaler.data_range_ > 0
    np.testing.assert_allclose(scaled.min(axis=0)[varying], -1.0, atol=1e-9)
    np.testing.assert_allclose(scaled.max(axis=0)[varying], 1.0, atol=1e-9)
    # preprocess is the training chain stopped after its data stages: nothing trained
    assert not (tmp_path / "model").exists() and not (tmp_path / "onnx").exists()
    from make_us_rich.errors import ConfigError
    from make_us_rich.stages import run_stages

    with pytest.raises(ConfigError, match="stops after one of fetch, features, split, sequences, scale"):
        run_stages("sample", "BTCEUR", tmp_path / "x", until="train")


def test_console_script_and_no_tensorflow_import():
    """The installed `mkrich` entry point works, and data/preprocessing/CLI never load TF."""
    probe = (
        "import sys, make_us_rich, make_us_rich.data, make_us_rich.preprocessing, "
        "make_us_rich.cli, make_us_rich.data.binance\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'tf2onnx', 'kfp', 'kserve') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    version = subprocess.run(
        [sys.executable, "-m", "make_us_rich.cli", "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0 and version.stdout.startswith("mkrich ")


def test_train_command_writes_artifacts_and_a_summary(tmp_path, capsys):
    import pytest

    pytest.importorskip("tensorflow")
    # every gate flag reaches the gate (--coverage-min/--coverage-max were once accepted and ignored)
    rc = main(["train", "--source", "sample", "--symbol", "BTCUSDT", "--days", "75",
               "--preset", "tiny", "--out", str(tmp_path / "m"), "--no-progress",
               "--gate-tolerance", "0.5", "--coverage-min", "0.97", "--coverage-max", "0.99"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "BTCUSDT: " in out and "forecast hours" in out and "persistence" in out and "gate: " in out
    assert (tmp_path / "m" / "model.onnx").is_file()
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert card["hyperparameters"]["sequence_length"] == 12
    gate = json.loads((tmp_path / "m" / "metrics.json").read_text())["gate"]
    assert gate["tolerance"] == 0.5 and gate["coverage_band"] == [0.97, 0.99]
    assert not gate["passed"] and any("coverage" in r for r in gate["reasons"])


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_with_binance_unreachable_says_what_to_do(capsys):
    """SOURCE=binance without a reachable API: one line at once, not a pipeline step retried."""
    rc = main(["run", "--source", "binance", "--api-url", f"http://127.0.0.1:{_closed_port()}/api"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "is unreachable" in err and "BINANCE_API_URL" in err and "SOURCE=sample" in err


def test_serve_on_a_taken_port_says_what_to_do(tmp_path, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rc = main(["serve", "--store", str(tmp_path), "--port", str(port)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == (
        f"error: port {port} is in use (another mkrich serve?): stop it, or choose another "
        "port with --port N (make serve PORT=N)"
    )


def test_serve_on_an_empty_store_says_what_to_do(tmp_path, capsys):
    rc = main(["serve", "--store", str(tmp_path / "empty"), "--port", str(_closed_port())])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "no accepted model" in err and "train and publish one first" in err


def _older_python() -> str | None:
    """A working interpreter older than 3.11, if this machine has one."""
    import glob
    import shutil

    for minor in (10, 9, 8):
        candidates = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/3.{minor}.*/bin/python3")))
        candidates.append(shutil.which(f"python3.{minor}") or "")
        for found in filter(None, candidates):
            if subprocess.run([found, "-c", "pass"], capture_output=True).returncode == 0:
                return found
    return None


def test_make_with_python_older_than_3_11_says_what_to_do(tmp_path):
    """The first thing `make run` / `make test` does on a fresh machine: check the interpreter."""
    import shutil

    old = _older_python()
    if old is None or shutil.which("make") is None:
        pytest.skip("no Python < 3.11 (or no make) on this machine to try the check with")
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(["make", "-C", str(repo), "install", f"PYTHON={old}", f"VENV={tmp_path / 'venv'}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "make-us-rich needs Python >= 3.11 (set PYTHON=python3.11)" in done.stderr
    assert not (tmp_path / "venv").exists()


def test_boolean_parameters_are_switches():
    """``--flag`` / ``--no-flag`` for every boolean parameter, and ``--flag true|false`` as the
    pipeline takes them; left out, the declared default applies (None here)."""
    from make_us_rich.cli import build_parser
    from make_us_rich.params import PIPELINE_PARAMS, UNIVERSAL_PARAMS

    switches = [p for p in PIPELINE_PARAMS + UNIVERSAL_PARAMS if p.type is bool]
    assert {"allow_contract_change", "warm_start"} <= {p.name for p in switches}
    parser = build_parser()
    for p in switches:
        flag = p.cli_flag
        command = ["run", "--universal"] if p in UNIVERSAL_PARAMS and p not in PIPELINE_PARAMS else ["run"]
        assert getattr(parser.parse_args(command + [flag]), p.name) is True, flag
        assert getattr(parser.parse_args(command + ["--no-" + flag[2:]]), p.name) is False, flag
        assert getattr(parser.parse_args(command + [flag, "false"]), p.name) is False, flag
        assert getattr(parser.parse_args(command), p.name) is None, flag
