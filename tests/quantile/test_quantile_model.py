"""The quantile LSTM (issue 11): windows, monotone head, training, self-contained ONNX."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("tensorflow")

from make_us_rich.baselines import fit_har
from make_us_rich.contract import INPUT_NAME, OUTPUT_NAME
from make_us_rich.errors import ConfigError, InsufficientHistoryError
from make_us_rich.inference import onnx_session, predict_all
from make_us_rich.preprocessing.features import build_features
from make_us_rich.scoring import QUANTILES
from make_us_rich.training import quantile_model as qm
from make_us_rich.training.config import TrainConfig
from make_us_rich.training.export import check_parity, export_onnx

TINY = TrainConfig(sequence_length=12, lstm_units=8, max_epochs=2, patience=2, batch_size=64,
                          calibrate=True, blend_har=True)


@pytest.fixture(scope="module")
def features(sample_btceur):
    k = sample_btceur.iloc[:1800].reset_index(drop=True)
    return build_features(k)


@pytest.fixture(scope="module")
def split(features):
    cut = features.index[1400]
    return features[features.index < cut], features[features.index >= cut - pd.Timedelta(hours=TINY.sequence_length)]


@pytest.fixture(scope="module")
def trained(split):
    return qm.train_quantile_model(split[0], TINY)


@pytest.fixture(scope="module")
def onnx_bytes(trained, split):
    windows = qm.make_quantile_windows(split[1], TINY.sequence_length)
    model_bytes, parity = export_onnx(trained.serving, windows.X)
    assert parity.passed and parity.n_windows == len(windows.y)
    return model_bytes


def random_windows(n: int, seed: int, spread: float = 3.0) -> np.ndarray:
    """Raw windows with every column random and positive (prices, volatilities, ratios); with a
    large ``spread`` some are extreme: the monotone head must hold whatever the inputs."""
    rng = np.random.default_rng(seed)
    x = np.exp(rng.normal(0, spread, (n, TINY.sequence_length, len(qm.QUANTILE_FEATURES))))
    return (x * np.exp(rng.normal(0, spread, (n, 1, 1)))).astype(np.float32)


def test_windows_hold_the_next_return_and_skip_warmup_and_gaps(features):
    w = qm.make_quantile_windows(features, 12)
    assert np.isfinite(w.X).all()
    np.testing.assert_array_equal(w.y, features["log_return"].reindex(w.index).to_numpy())
    last_rows = w.index - pd.Timedelta(hours=1)
    np.testing.assert_array_equal(
        w.X[:, -1, qm.QUANTILE_FEATURES.index("close")],
        features["close"].reindex(last_rows).to_numpy(np.float32),
    )
    assert w.index[0] > features.index[0] + pd.Timedelta(days=14)  # volatility warm-up
    gapped = features.drop(index=features.index[1000])
    wg = qm.make_quantile_windows(gapped, 12)
    lost = set(w.index) - set(wg.index)
    assert len(lost) == 13  # the removed row is a target once and inside 12 windows
    with pytest.raises(InsufficientHistoryError, match="warm-up"):
        qm.make_quantile_windows(features.iloc[:200], 12)
    with pytest.raises(ConfigError, match="add_volatility_features"):
        qm.make_quantile_windows(features.drop(columns="norm_vol"), 12)


def test_untrained_model_forecasts_the_train_quantiles_scaled_by_current_volatility(split):
    w = qm.make_quantile_windows(split[0], 12)
    z = w.y / w.norm_vol
    scaler = qm.fit_input_scaler(w.X, TINY.inputs)
    expected = np.quantile(z, QUANTILES)
    zero = qm.build_quantile_model(TINY.with_overrides(median="zero"), scaler, z)
    np.testing.assert_allclose(
        zero.core.predict(w.X[:50], verbose=0), np.tile(np.where(np.arange(5) == 2, 0.0, expected), (50, 1)),
        rtol=1e-4, atol=1e-5,
    )
    model = qm.build_quantile_model(TINY.with_overrides(median="learned"), scaler, z)
    zq = np.asarray(model.core.predict(w.X[:50], verbose=0))
    np.testing.assert_allclose(zq, np.tile(expected, (50, 1)), rtol=1e-4, atol=1e-5)
    # the served closes are last close * exp(norm_vol * z)
    closes, median = (np.asarray(a) for a in model.serving(w.X[:50]))
    last = w.X[:50, -1, qm.QUANTILE_FEATURES.index("close")][:, None]
    np.testing.assert_allclose(closes, last * np.exp(w.norm_vol[:50, None] * zq), rtol=1e-5)
    np.testing.assert_array_equal(median, closes[:, 2:3])


def test_training_lowers_the_validation_pinball_or_keeps_the_start(trained):
    assert trained.extra["best_val_loss"] <= trained.extra["initial_val_loss"]
    assert len(trained.history["val_loss"]) >= 1


def test_served_returns_average_the_lstm_and_the_har_baseline(trained, split):
    w = qm.make_quantile_windows(split[1], TINY.sequence_length)
    lstm = np.asarray(trained.core.predict(w.X, verbose=0), dtype=np.float64) * w.norm_vol[:, None]
    har = fit_har(split[0]).predict(split[1].reindex(w.index - pd.Timedelta(hours=1)))
    np.testing.assert_allclose(trained.predict_returns(w).to_numpy(), (lstm + har) / 2, rtol=1e-4, atol=1e-7)


def test_spread_calibration_lowers_validation_pinball_and_keeps_order(trained, split):
    s = np.array(trained.extra["spread_scale"])
    assert s[2] == 1.0 and ((s >= 0.5) & (s <= 2.0)).all()
    assert s[0] >= s[1] and s[4] >= s[3]
    w = qm.make_quantile_windows(split[0], TINY.sequence_length)
    n_val = trained.extra["n_val"]
    X_val, z_val = w.X[-n_val:], (w.y / w.norm_vol)[-n_val:]
    layer = trained.core.get_layer("z_quantiles")
    calibrated = qm.pinball_loss(z_val, trained.core.predict(X_val, verbose=0)).numpy().mean()
    layer.scale.assign(np.ones(5, dtype="float32"))
    raw = qm.pinball_loss(z_val, trained.core.predict(X_val, verbose=0)).numpy().mean()
    layer.scale.assign(s.astype("float32"))
    assert calibrated <= raw


def test_onnx_signature_and_parity_on_real_and_random_windows(trained, onnx_bytes, split):
    session = onnx_session(onnx_bytes)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    assert [i.name for i in inputs] == [INPUT_NAME]
    assert inputs[0].shape[1:] == [TINY.sequence_length, len(qm.QUANTILE_FEATURES)]
    assert isinstance(inputs[0].shape[0], str)
    shapes = {o.name: o.shape[1:] for o in outputs}
    assert shapes == {qm.QUANTILE_OUTPUT_NAME: [len(QUANTILES)], OUTPUT_NAME: [1]}
    windows = random_windows(256, seed=5, spread=0.5)
    report = check_parity(onnx_bytes, trained.serving, windows)
    assert report.passed, report
    # in return units too, where a price-level tolerance would hide errors
    real = qm.make_quantile_windows(split[1], TINY.sequence_length)
    q_onnx = predict_all(session, real.X)[qm.QUANTILE_OUTPUT_NAME]
    last = real.X[:, -1, qm.QUANTILE_FEATURES.index("close")][:, None].astype(np.float64)
    np.testing.assert_allclose(np.log(q_onnx / last), trained.predict_returns(real.X), atol=2e-6)


def test_quantiles_are_monotone_on_random_inputs(trained, onnx_bytes):
    session = onnx_session(onnx_bytes)
    for seed in range(3):
        x = random_windows(512, seed)
        out = predict_all(session, x)
        q, median = out[qm.QUANTILE_OUTPUT_NAME], out[OUTPUT_NAME]
        finite = np.isfinite(q).all(axis=1)
        assert finite.mean() > 0.5
        assert (np.diff(q[finite], axis=1) >= 0).all()
        np.testing.assert_array_equal(median[:, 0], q[:, 2])
        keras_q = np.asarray(trained.serving(x)[0])
        assert (np.diff(keras_q[np.isfinite(keras_q).all(axis=1)], axis=1) >= 0).all()


def test_same_seed_same_model(split, trained):
    again = qm.train_quantile_model(split[0], TINY)
    w = qm.make_quantile_windows(split[1], TINY.sequence_length)
    np.testing.assert_array_equal(again.predict_returns(w.X), trained.predict_returns(w.X))
    assert again.history == trained.history


def test_zero_median_keeps_the_last_close(split):
    cfg = TINY.with_overrides(median="zero", max_epochs=1, blend_har=False)
    model = qm.train_quantile_model(split[0], cfg)
    w = qm.make_quantile_windows(split[1], cfg.sequence_length)
    _, median = (np.asarray(a) for a in model.serving(w.X))
    np.testing.assert_allclose(median[:, 0], w.X[:, -1, qm.QUANTILE_FEATURES.index("close")], rtol=1e-7)


def test_bad_config_is_rejected():
    with pytest.raises(ConfigError, match="inputs"):
        TrainConfig(inputs=("open",))
    with pytest.raises(ConfigError, match="median"):
        TrainConfig(median="mean")
