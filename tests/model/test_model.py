"""The model through the stage chain: tiny real data (the bundled sample), 2 epochs, LSTM(8)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from make_us_rich import contract
from make_us_rich.io import sha256
from make_us_rich.preprocessing.windows import INPUT_KINDS, stationary_inputs
from make_us_rich.scoring import QUANTILE_COLUMNS

pytest.importorskip("tensorflow", reason="the train extra is not installed")

from make_us_rich import stages
from make_us_rich.inference import onnx_session, predict_all
from make_us_rich.training.export import ExportError, check_parity, export_onnx
from make_us_rich.training.quantile_model import load_serving_model
from make_us_rich.workflow import ARTIFACTS, RunSpec, train_symbol

DAYS = 75


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_config):
    """The stage files of one in-process run (kept: run_stages with a work_dir)."""
    w = tmp_path_factory.mktemp("stages")
    stages.run_stages("sample", "BTCEUR", w / "artifacts", RunSpec.of(tiny_config, lookback_days=DAYS), work_dir=w)
    return w


def test_train_symbol_writes_every_artifact(tmp_path, tiny_config):
    out = tmp_path / "model"
    out.mkdir()
    (out / "stale.txt").write_text("from an older run")
    run = train_symbol("sample", "BTCEUR", out, tiny_config, days=DAYS)
    assert sorted(p.name for p in out.iterdir()) == sorted(ARTIFACTS)  # replaced as a whole
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging leftovers
    card = json.loads((out / "model_card.json").read_text())
    assert card["symbol"] == "BTCEUR" and card["model_name"] == "btceur-close"
    assert card["features"] == list(contract.FEATURES)
    assert card["input"]["shape"] == [-1, 12, len(contract.FEATURES)]
    assert [o["name"] for o in card["outputs"]] == list(contract.OUTPUT_NAMES)
    assert card["hyperparameters"]["lstm_units"] == 8
    assert card["data"]["end"] == "2023-12-31T23:00:00+00:00"
    assert {"tensorflow-cpu", "keras", "tf2onnx", "onnx", "onnxruntime"} <= set(card["versions"])
    for name, digest in card["files"].items():
        assert sha256(out / name) == digest
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["gate"] == card["gate"] and metrics["test"]["n"] == run.metrics["test"]["n"]
    assert metrics["parity"]["passed"] is True
    assert set(metrics["test"]["baselines"]) == {"persistence", "empirical", "garch_t", "har"}
    for png in ("training_curves.png", "fan_chart.png", "calibration.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predictions_csv_is_one_walk_forward_row_per_test_hour(work):
    table = pd.read_csv(work / "artifacts" / "predictions.csv")
    assert list(table.columns) == ["timestamp", "last_close", "close", *QUANTILE_COLUMNS]
    klines = pd.read_csv(work / "klines" / "klines.csv")
    close = pd.Series(klines["close"].to_numpy(), index=pd.to_datetime(klines["timestamp"], unit="ms", utc=True))
    t = pd.to_datetime(table["timestamp"], utc=True)
    test = stages.read_table(work / "test.csv")
    assert t.iloc[0] >= test.index[0] and t.iloc[-1] == test.index[-1]
    np.testing.assert_allclose(table["close"], close.reindex(t).to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(table["last_close"], close.reindex(t - pd.Timedelta(hours=1)).to_numpy(), rtol=1e-9)
    q = table[list(QUANTILE_COLUMNS)].to_numpy()
    assert (np.diff(q, axis=1) >= 0).all()  # monotone quantiles
    metrics = json.loads((work / "artifacts" / "metrics.json").read_text())
    assert metrics["test"]["n"] == len(table)


def test_scaler_is_fit_on_train_windows_only(work, tiny_config):
    from make_us_rich.preprocessing import load_scaler

    scaler = load_scaler(work / "scaler")
    with np.load(work / "sequences.npz") as z:
        train = stationary_inputs(z["X_train"], tiny_config.inputs).reshape(-1, len(tiny_config.inputs))
    np.testing.assert_allclose(scaler.data_min_, train.min(axis=0))
    np.testing.assert_allclose(scaler.data_max_, train.max(axis=0))


def test_numpy_transform_equals_the_models_first_layer(work, tiny_config):
    from make_us_rich.preprocessing.windows import QUANTILE_FEATURES, input_groups
    from make_us_rich.training.layers import VolatilityTransform

    with np.load(work / "sequences.npz") as z:
        X = z["X_test"][:50]
    layer = VolatilityTransform(input_groups(tiny_config.inputs), QUANTILE_FEATURES.index("norm_vol"))
    np.testing.assert_allclose(np.asarray(layer(X)), stationary_inputs(X, tiny_config.inputs), rtol=1e-5, atol=1e-6)
    assert set(tiny_config.inputs) == set(INPUT_KINDS)


def test_onnx_signature_monotone_prices_and_parity(work):
    import onnx

    model_bytes = (work / "onnx" / "model.onnx").read_bytes()
    proto = onnx.load_from_string(model_bytes)
    onnx.checker.check_model(proto)
    assert [i.name for i in proto.graph.input] == [contract.INPUT_NAME]
    assert [o.name for o in proto.graph.output] == list(contract.OUTPUT_NAMES)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 12, len(contract.FEATURES)]  # dynamic batch (Triton: -1)
    with np.load(work / "sequences.npz") as z:
        X = np.ascontiguousarray(z["X_test"][:7])
    out = predict_all(onnx_session(model_bytes), X)
    q, median = out[contract.QUANTILE_OUTPUT_NAME], out[contract.OUTPUT_NAME]
    assert q.shape == (7, 5) and median.shape == (7, 1) and q.dtype == np.float32
    assert (np.diff(q, axis=1) >= 0).all()
    np.testing.assert_array_equal(median[:, 0], q[:, 2])
    last = X[:, -1, contract.FEATURES.index("close")]
    assert np.all(np.abs(median[:, 0] / last - 1) < 0.05)  # prices, not scaled values
    assert predict_all(onnx_session(model_bytes), X[:1])[contract.OUTPUT_NAME].shape == (1, 1)


def test_monotone_on_extreme_inputs(work):
    model_bytes = (work / "onnx" / "model.onnx").read_bytes()
    rng = np.random.default_rng(0)
    X = np.exp(rng.normal(0, 3, (64, 12, len(contract.FEATURES)))).astype(np.float32)
    q = predict_all(onnx_session(model_bytes), X)[contract.QUANTILE_OUTPUT_NAME]
    finite = np.isfinite(q).all(axis=1)
    assert finite.any() and (np.diff(q[finite], axis=1) >= 0).all()


def test_parity_failure_raises(work):
    model = load_serving_model(work / "model" / "model.keras")
    with np.load(work / "sequences.npz") as z:
        X = z["X_test"]
    with pytest.raises(ExportError, match="ONNX parity failed .* max relative error"):
        export_onnx(model, X, rtol=0.0)
    # another model's ONNX shows up as a parity failure
    other = model.get_layer("z_quantiles")
    other.scale.assign(np.full(5, 1.5, dtype="float32"))
    report = check_parity((work / "onnx" / "model.onnx").read_bytes(), model, X)
    assert not report.passed and report.max_rel_error > 1e-4


def test_same_data_and_seed_give_the_same_model_bytes(work, tmp_path, tiny_config):
    again = tmp_path / "again"
    stages.run_stages("sample", "BTCEUR", again / "artifacts", RunSpec.of(tiny_config, lookback_days=DAYS),
                      work_dir=again)
    assert (again / "onnx" / "model.onnx").read_bytes() == (work / "onnx" / "model.onnx").read_bytes()
    other = tmp_path / "other"
    stages.run_stages("sample", "BTCEUR", other / "artifacts", RunSpec.of(tiny_config.with_overrides(seed=7),
                      lookback_days=DAYS), work_dir=other)
    assert (other / "onnx" / "model.onnx").read_bytes() != (work / "onnx" / "model.onnx").read_bytes()


def test_failed_run_leaves_previous_artifacts_untouched(tmp_path, monkeypatch, tiny_config):
    out = tmp_path / "model"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"previous model")
    from make_us_rich.errors import InsufficientHistoryError

    with pytest.raises(InsufficientHistoryError, match="load more history"):
        train_symbol("sample", "BTCEUR", out, tiny_config.with_overrides(sequence_length=120), days=20)
    assert (out / "model.onnx").read_bytes() == b"previous model"
    # a failure while the new artifacts are being written (the model file is already staged)
    import make_us_rich.training.plots as plots

    def broken_plot(*args, **kwargs):
        raise OSError("disk full (injected)")

    monkeypatch.setattr(plots, "plot_fan_chart", broken_plot)
    with pytest.raises(OSError, match="injected"):
        train_symbol("sample", "BTCEUR", out, tiny_config, days=DAYS)
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx"]
    assert (out / "model.onnx").read_bytes() == b"previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging folder left


def test_mkrich_evaluate_scores_any_period_walk_forward(trained_artifacts, tmp_path, capsys):
    from make_us_rich.cli import main

    out = tmp_path / "eval"
    # no --symbol: the one the model card names
    assert main(["evaluate", "--model", str(trained_artifacts), "--source", "sample",
                 "--start", "2023-10-01", "--end", "2023-10-31T23:00", "--no-progress", "--out", str(out)]) == 0
    table = pd.read_csv(out / "predictions.csv")
    assert table["timestamp"].iloc[0] == "2023-10-01T00:00:00Z" and table["timestamp"].iloc[-1] == "2023-10-31T23:00:00Z"
    assert list(table.columns[:8]) == ["timestamp", "last_close", "close", *QUANTILE_COLUMNS]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["symbol"] == "BTCEUR" and metrics["n"] == len(table) == 31 * 24
    assert set(metrics["baselines"]) == {"persistence", "empirical", "garch_t", "har"}
    assert 0 < metrics["model"]["intervals"]["90"]["coverage"] <= 1
    text = capsys.readouterr().out
    assert "mean pinball" in text and "GARCH-t" in text
    # a model of another symbol is refused with a clear message
    assert main(["evaluate", "--model", str(trained_artifacts), "--source", "sample", "--symbol", "BTCUSDT",
                 "--days", "5", "--no-progress", "--out", str(tmp_path / "x")]) == 2


def test_conversion_bytes_do_not_depend_on_what_the_process_converted_before(work, tiny_config):
    """tf2onnx names nodes and constants with process-wide counters; the export canonicalizes
    them, so a model converted after others gives the bytes a fresh process gives."""
    from make_us_rich.preprocessing.windows import fit_input_scaler
    from make_us_rich.training import quantile_model as qm
    from make_us_rich.training.export import to_onnx

    first = to_onnx(load_serving_model(work / "model" / "model.keras"))
    with np.load(work / "sequences.npz") as z:
        X = z["X_train"]
    other_cfg = tiny_config.with_overrides(median="learned", blend_har=False)
    other = qm.build_quantile_model(other_cfg, fit_input_scaler(X, other_cfg.inputs), np.linspace(-2, 2, 50))
    to_onnx(other.serving)
    assert to_onnx(load_serving_model(work / "model" / "model.keras")) == first
    assert first == (work / "onnx" / "model.onnx").read_bytes()


def test_a_model_saved_before_the_layers_moved_still_loads(trained_artifacts, tmp_path):
    """A stored ``model.keras`` (what a warm start loads) names its layers' old modules
    (``training.quantile_model``, ``training.model``); the layers' registered names find them in
    ``training.layers``, and the loaded graph predicts what the saved one does."""
    import zipfile

    from make_us_rich.training.quantile_model import load_serving_model

    saved = trained_artifacts / "model.keras"
    old = tmp_path / "old.keras"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(old, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "config.json":
                text = data.decode()
                assert '"module": "make_us_rich.training.layers"' in text
                data = (text.replace('"module": "make_us_rich.training.layers"', '"module": "make_us_rich.training.quantile_model"', 3)
                        .replace('"module": "make_us_rich.training.layers"', '"module": "make_us_rich.training.model"')).encode()
            dst.writestr(item, data)
    windows = np.random.default_rng(0).uniform(1.0, 2.0, (3, *load_serving_model(saved).input_shape[1:])).astype("float32")
    np.testing.assert_allclose(load_serving_model(old).predict(windows, verbose=0)[0],
                               load_serving_model(saved).predict(windows, verbose=0)[0])
