"""The universal quantile model with a horizon axis (issue 22): purged pooled windows, one head
per horizon, the 1-hour contract outputs kept, a self-contained ONNX graph (parity)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from make_us_rich import contract
from make_us_rich import horizons as H
from make_us_rich.errors import ConfigError
from make_us_rich.preprocessing.features import build_features
from make_us_rich.preprocessing.pooled import fit_pooled_scaler, pool_windows

pytest.importorskip("tensorflow")

HORIZONS = (1, 4, 24)


@pytest.fixture(scope="module")
def tables(sample_btceur, sample_btcusdt):
    return {s: build_features(k.iloc[:2200].reset_index(drop=True))
            for s, k in (("BTCEUR", sample_btceur), ("BTCUSDT", sample_btcusdt))}


@pytest.fixture(scope="module")
def split(tables, tiny_config):
    pooled = pool_windows(tables, tiny_config.sequence_length)
    y = H.pooled_horizon_targets(pooled, tables, HORIZONS)
    index = next(iter(tables.values())).index
    return H.purged_pooled_split(pooled, y, HORIZONS, index[1500], index[1900])


def test_pooled_targets_are_each_symbols_h_hour_returns_and_the_cuts_are_purged(tables, split, tiny_config):
    (train, y_train), (val, y_val), (test, y_test) = split
    for name, table in tables.items():
        mine = test.symbol == test.symbols.index(name)
        expected = H.horizon_targets(table, HORIZONS).reindex(test.index[mine]).to_numpy()
        np.testing.assert_array_equal(y_test[mine], expected)
    assert np.isfinite(y_train).all() and np.isfinite(y_val).all()
    assert np.isnan(y_test[:, 2]).sum() >= 2 * 23  # each symbol's last 23 origins have no 24 h target
    index = next(iter(tables.values())).index
    known_train = train.index + 24 * H.STEP
    known_val = val.index + 24 * H.STEP
    assert known_train.max() <= index[1500] and known_val.max() <= index[1900]
    assert val.index.min() >= index[1500] and test.index.min() >= index[1900]


@pytest.fixture(scope="module")
def model(split, tables, tiny_config):
    from make_us_rich.training.quantile_model import fit_horizon_model

    (train, y_train), (val, y_val), _ = split
    index = next(iter(tables.values())).index
    har = [t[t.index < index[1500]] for t in tables.values()]
    config = tiny_config.with_overrides(max_epochs=1)
    scaler = fit_pooled_scaler(train, config.inputs)
    return fit_horizon_model(train, val, y_train, y_val, scaler, config, HORIZONS, har_features=har)


def test_one_output_per_horizon_monotone_with_the_one_hour_contract_kept(model, split):
    from make_us_rich.training.quantile_model import HORIZON_OUTPUT_NAME

    _, _, (test, _) = split
    X = test.X(slice(0, 64))
    one_hour, median, stacked = (np.asarray(a) for a in model.serving(X, training=False))
    assert one_hour.shape == (64, 5) and median.shape == (64, 1) and stacked.shape == (64, 3, 5)
    np.testing.assert_array_equal(stacked[:, 0, :], one_hour)
    np.testing.assert_array_equal(median[:, 0], one_hour[:, 2])
    assert (np.diff(stacked, axis=2) >= 0).all()
    # the 24 h interval is wider than the 1 h one (volatility-normalized per horizon: sqrt(h))
    width = stacked[:, :, 4] - stacked[:, :, 0]
    assert (width[:, 2] > 2.5 * width[:, 0]).all()
    assert model.serving.output_names == [contract.QUANTILE_OUTPUT_NAME, contract.OUTPUT_NAME, HORIZON_OUTPUT_NAME]
    returns = np.asarray(model.returns.predict(X, verbose=0))
    last_close = X[:, -1, list(model.feature_names).index("close")][:, None, None]
    np.testing.assert_allclose(stacked, last_close * np.exp(returns), rtol=1e-5)


def test_the_horizon_model_exports_one_self_contained_onnx_graph_with_parity(model, split):
    from make_us_rich.inference import onnx_session
    from make_us_rich.training.export import export_onnx
    from make_us_rich.training.quantile_model import HORIZON_OUTPUT_NAME

    _, _, (test, _) = split
    names = (*contract.OUTPUT_NAMES, HORIZON_OUTPUT_NAME)
    blob, parity = export_onnx(model.serving, test.X(slice(0, 128)), output_names=names)
    assert parity.passed and parity.max_rel_error <= 1e-4
    session = onnx_session(blob)
    assert [o.name for o in session.get_outputs()] == list(names)
    assert session.get_outputs()[2].shape[1:] == [3, 5]


def test_bad_targets_and_horizons_are_refused(split, tiny_config):
    from make_us_rich.training.quantile_model import build_horizon_model, fit_horizon_model

    (train, y_train), (val, y_val), _ = split
    scaler = fit_pooled_scaler(train, tiny_config.inputs)
    bad = y_train.copy()
    bad[0, 1] = np.nan
    with pytest.raises(ConfigError, match="finite"):
        fit_horizon_model(train, val, bad, y_val, scaler, tiny_config, HORIZONS, har_features=[pd.DataFrame()])
    with pytest.raises(ConfigError, match="1-hour"):
        build_horizon_model(tiny_config, scaler, y_train[:, 1:], (4, 24))


def test_mkrich_evaluate_writes_one_predictions_file_per_horizon(model, split, tmp_path, capsys):
    """A multi-horizon model folder: predictions.csv stays the 1-hour file; predictions_h{h}.csv
    has the same columns, ``timestamp`` the target candle's open time and ``last_close`` the
    close known h hours before it."""
    import json

    from make_us_rich.cli import main
    from make_us_rich.data import load_klines
    from make_us_rich.scoring import QUANTILE_COLUMNS
    from make_us_rich.training.export import export_onnx
    from make_us_rich.training.quantile_model import HORIZON_OUTPUT_NAME

    _, _, (test, _) = split
    blob, _ = export_onnx(model.serving, test.X(slice(0, 64)),
                          output_names=(*contract.OUTPUT_NAMES, HORIZON_OUTPUT_NAME))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / contract.MODEL_FILE).write_bytes(blob)
    card = {"kind": "universal", "symbols": ["BTCEUR", "BTCUSDT"], "features": list(contract.FEATURES),
            "sequence_length": model.config.sequence_length, "horizons": list(HORIZONS),
            "hyperparameters": model.config.to_dict()}
    (folder / "model_card.json").write_text(json.dumps(card))
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(folder), "--source", "sample", "--symbol", "BTCUSDT",
                 "--start", "2023-10-01", "--end", "2023-10-31T23:00", "--no-progress", "--out", str(out)]) == 0
    one_hour = pd.read_csv(out / "predictions.csv")
    klines = load_klines("sample", "BTCUSDT")[0]
    close = pd.Series(klines["close"].to_numpy(), index=klines["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    for h in HORIZONS:
        table = pd.read_csv(out / f"predictions_h{h}.csv")
        assert list(table.columns) == ["timestamp", "last_close", "close", *QUANTILE_COLUMNS]
        # the first forecast is made at the period's start; its target candle opens h - 1 hours later
        first = pd.Timestamp("2023-10-01T00:00Z") + pd.Timedelta(hours=h - 1)
        assert table["timestamp"].iloc[0] == first.strftime("%Y-%m-%dT%H:%M:%SZ")
        # the klines end with the period: the last h - 1 origins' targets are not known, no row
        assert len(table) == 31 * 24 - (h - 1) and table["timestamp"].iloc[-1] == "2023-10-31T23:00:00Z"
        known = (pd.to_datetime(table["timestamp"]) - pd.Timedelta(hours=h)).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        np.testing.assert_allclose(table["last_close"], close.reindex(known).to_numpy(), rtol=1e-9)
        np.testing.assert_allclose(table["close"], close.reindex(table["timestamp"]).to_numpy(), rtol=1e-9)
        assert (np.diff(table[list(QUANTILE_COLUMNS)].to_numpy(), axis=1) >= 0).all()
    np.testing.assert_allclose(pd.read_csv(out / "predictions_h1.csv")[list(QUANTILE_COLUMNS)],
                               one_hour[list(QUANTILE_COLUMNS)], rtol=1e-9)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["horizons"]) == {"1", "4", "24"}
    h24 = metrics["horizons"]["24"]
    assert h24["block"] == 168 and set(h24["baselines"]) == {"persistence", "empirical", "garch_t", "har"}
    assert h24["model"]["mean_pinball"] > metrics["horizons"]["1"]["model"]["mean_pinball"]
    # a card that lists other horizons than the graph computes is refused with a clear message
    card["horizons"] = [1, 4]
    (folder / "model_card.json").write_text(json.dumps(card))
    assert main(["evaluate", "--model", str(folder), "--source", "sample", "--symbol", "BTCUSDT",
                 "--days", "5", "--no-progress", "--out", str(tmp_path / "bad")]) == 2
    assert "do not belong together" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_the_serving_graph_saves_and_loads_as_keras(model, split, tmp_path):
    """model.keras is what a warm start and the stages' artifacts keep: the horizon layers load."""
    from make_us_rich.training.quantile_model import load_serving_model

    _, _, (test, _) = split
    X = test.X(slice(0, 16))
    model.serving.save(tmp_path / "model.keras")
    loaded = load_serving_model(tmp_path / "model.keras")
    for a, b in zip(model.serving(X, training=False), loaded(X, training=False), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


def test_a_per_symbol_horizon_model_in_memory(tables, tiny_config):
    from make_us_rich.training.quantile_model import train_horizon_model

    model = train_horizon_model(tables["BTCEUR"], tiny_config.with_overrides(max_epochs=1), (1, 24))
    assert model.extra["horizons"] == [1, 24] and model.extra["n_val"] > 0
    X = pool_windows({"s": tables["BTCEUR"]}, tiny_config.sequence_length).X(slice(0, 8))
    assert np.asarray(model.serving(X, training=False)[2]).shape == (8, 2, 5)
