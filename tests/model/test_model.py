"""Model tests: tiny real data (the bundled sample), 1-3 epochs, small LSTMs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from make_us_rich import contract
from make_us_rich.preprocessing import preprocess
from make_us_rich.training import TrainConfig

pytest.importorskip("tensorflow", reason="the train extra is not installed")

from make_us_rich.inference import onnx_session
from make_us_rich.io import sha256
from make_us_rich.preprocessing import raw_windows, split_data
from make_us_rich.training.export import (
    ExportError,
    check_parity,
    export_onnx,
    reference_predict,
    to_onnx,
)
from make_us_rich.training.model import build_model
from make_us_rich.training.train import train_model
from make_us_rich.training.workflow import ARTIFACTS, train_symbol


def raw_test_windows(prep, test_size):
    """The unscaled test windows of a preprocessing result, their targets and times."""
    return raw_windows(split_data(prep.features, test_size)[1], prep.sequence_length, prep.target_column)

TINY = TrainConfig(sequence_length=12, lstm_units=(8,), max_epochs=2, patience=2, batch_size=32)


@pytest.fixture(scope="module")
def prep(sample_btcusdt):
    return preprocess(sample_btcusdt.iloc[-600:], TINY.sequence_length)


@pytest.fixture(scope="module")
def trained(prep):
    return train_model(prep, TINY)


def test_shapes_and_history(prep, trained):
    model = trained.model
    assert model.input_shape == (None, 12, len(contract.FEATURES))
    assert model.output_shape == (None, 1)
    assert model.predict(prep.X_test[:5], verbose=0).shape == (5, 1)
    assert len(trained.history["loss"]) == len(trained.history["val_loss"]) == trained.epochs_run
    assert 1 <= trained.epochs_run <= TINY.max_epochs
    assert 0 <= trained.best_epoch <= trained.epochs_run
    assert trained.extra["best_val_loss"] <= trained.extra["initial_val_loss"]


def test_untrained_delta_head_is_persistence(prep):
    model = build_model(TINY, prep.X_train.shape[2], prep.feature_names.index("close"))
    out = model.predict(prep.X_val, verbose=0)[:, 0]
    np.testing.assert_array_equal(out, prep.X_val[:, -1, prep.feature_names.index("close")])


def test_same_data_and_seed_give_the_same_weights(prep, trained):
    again = train_model(prep, TINY)
    for a, b in zip(trained.model.get_weights(), again.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert again.history == trained.history
    other = train_model(prep, TINY.with_overrides(seed=7, head="level"))
    assert not np.array_equal(other.model.get_weights()[0], trained.model.get_weights()[0])


def test_onnx_signature_parity_and_folded_scaling(prep, trained):
    target = prep.feature_names.index("close")
    X_raw, y_raw, _ = raw_test_windows(prep, TINY.test_size)
    model_bytes, parity = export_onnx(trained.model, prep.scaler, target, X_raw)
    assert parity.passed and parity.max_rel_error <= 1e-4 and parity.n_windows == len(X_raw)

    import onnx

    proto = onnx.load_from_string(model_bytes)
    onnx.checker.check_model(proto)
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == (contract.INPUT_NAME, contract.OUTPUT_NAME)
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 12, len(contract.FEATURES)]  # dynamic batch (Triton: -1)
    assert proto.opset_import[0].version == contract.OPSET

    session = onnx_session(model_bytes)
    raw = np.ascontiguousarray(X_raw[:7])
    prices = session.run(None, {contract.INPUT_NAME: raw})[0]
    assert prices.shape == (7, 1) and prices.dtype == np.float32
    # raw windows in -> price out == scikit-learn scaling -> Keras -> inverse scaling
    ref = reference_predict(trained.model, prep.scaler, target, raw)
    np.testing.assert_allclose(prices[:, 0], ref, rtol=1e-4)
    # the answer is a price of the right magnitude, not a scaled value
    assert np.all(np.abs(prices[:, 0] / raw[:, -1, target] - 1) < 0.05)
    assert session.run(None, {contract.INPUT_NAME: raw[:1]})[0].shape == (1, 1)


def test_folding_is_exact_on_an_untrained_delta_model(prep):
    """Zero-initialized delta head: the ONNX model must return the raw last close itself."""
    target = prep.feature_names.index("close")
    model = build_model(TINY, prep.X_train.shape[2], target)
    X_raw, _, _ = raw_test_windows(prep, TINY.test_size)
    out = onnx_session(to_onnx(model, prep.scaler, target)).run(
        None, {contract.INPUT_NAME: np.ascontiguousarray(X_raw)}
    )[0][:, 0]
    np.testing.assert_allclose(out, X_raw[:, -1, target], rtol=2e-7)


def test_parity_failure_raises(prep, trained):
    target = prep.feature_names.index("close")
    X_raw, _, _ = raw_test_windows(prep, TINY.test_size)
    with pytest.raises(ExportError, match="ONNX parity failed .* max relative error"):
        export_onnx(trained.model, prep.scaler, target, X_raw, rtol=0.0)
    # a scaler other than the one folded in shows up as a parity failure
    other = preprocess(_other_market(), 12).scaler
    report = check_parity(to_onnx(trained.model, other, target), trained.model, prep.scaler, target, X_raw)
    assert not report.passed and report.max_rel_error > 1e-4


def _other_market():
    from make_us_rich.data import load_klines

    klines, _ = load_klines("sample", "BTCEUR")  # another market: other price ranges
    return klines.iloc[:600]


def test_train_symbol_writes_every_artifact(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "stale.txt").write_text("from an older run")
    run = train_symbol("sample", "BTCEUR", out, TINY, days=25)
    assert sorted(p.name for p in out.iterdir()) == sorted(ARTIFACTS)  # replaced as a whole
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging leftovers
    card = json.loads((out / "model_card.json").read_text())
    assert card["symbol"] == "BTCEUR" and card["model_name"] == "btceur-close"
    assert card["features"] == list(contract.FEATURES)
    assert card["input"] == {
        "name": "window", "datatype": "FP32", "shape": [-1, 12, len(contract.FEATURES)],
        "description": card["input"]["description"],
    }
    assert card["hyperparameters"]["lstm_units"] == [8]
    assert card["data"]["end"] == "2023-12-31T23:00:00+00:00"
    assert {"tensorflow-cpu", "keras", "tf2onnx", "onnx", "onnxruntime"} <= set(card["versions"])
    for name, digest in card["files"].items():
        assert sha256(out / name) == digest
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["gate"] == card["gate"] and metrics["test"]["n"] == run.metrics["test"]["n"]
    assert metrics["parity"]["passed"] is True
    for png in ("training_curves.png", "predictions.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_failed_run_leaves_previous_artifacts_untouched(tmp_path, monkeypatch):
    out = tmp_path / "model"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"previous model")
    from make_us_rich.errors import InsufficientHistoryError

    with pytest.raises(InsufficientHistoryError, match="need at least"):
        train_symbol("sample", "BTCEUR", out, TINY.with_overrides(sequence_length=120), days=10)
    assert (out / "model.onnx").read_bytes() == b"previous model"
    # a failure while the new artifacts are being written (the model file is already staged)
    import make_us_rich.training.plots as plots

    def broken_plot(*args, **kwargs):
        raise OSError("disk full (injected)")

    monkeypatch.setattr(plots, "plot_predictions", broken_plot)
    with pytest.raises(OSError, match="injected"):
        train_symbol("sample", "BTCEUR", out, TINY, days=25)
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx"]
    assert (out / "model.onnx").read_bytes() == b"previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging folder left
