"""The universal model (issue 21): pooled windows by index, sources without trade counts, one
model for several symbols (and one it never saw), warm start and time budget, the CLI."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from make_us_rich.data import write_klines_csv
from make_us_rich.errors import ConfigError, DataValidationError
from make_us_rich.params import RunSpec
from make_us_rich.preprocessing.features import build_features
from make_us_rich.preprocessing.pooled import fit_pooled_scaler, pool_windows, split_pooled
from make_us_rich.preprocessing.volatility import volatility_features
from make_us_rich.preprocessing.windows import (
    NEUTRAL_FILL,
    QUANTILE_FEATURES,
    fit_input_scaler,
    make_quantile_windows,
    resolve_inputs,
)
from make_us_rich.training.config import TrainConfig

INPUTS = TrainConfig().inputs


def ohlcv_only(klines: pd.DataFrame) -> pd.DataFrame:
    """The klines as an OHLCV-only source gives them: the trade columns empty."""
    return klines.assign(quote_av=np.nan, trades=pd.array([pd.NA] * len(klines), dtype="Int64"),
                         tb_base_av=np.nan, tb_quote_av=np.nan)


def features_of(klines: pd.DataFrame) -> pd.DataFrame:
    return build_features(klines)


@pytest.fixture(scope="module")
def tables(sample_btceur, sample_btcusdt):
    return {"BTCEUR": features_of(sample_btceur.iloc[:1500].reset_index(drop=True)),
            "ETHUSDT": features_of(ohlcv_only(sample_btcusdt.iloc[:1700].reset_index(drop=True)))}


def test_a_source_without_trade_counts_lacks_trades_ratio_explicitly(sample_btcusdt, tables):
    vol = volatility_features(ohlcv_only(sample_btcusdt))
    assert vol["trades_ratio"].isna().all() and vol["volume_ratio"].notna().sum() > 3000
    w = make_quantile_windows(tables["ETHUSDT"], 12)
    assert w.unavailable == ("trades_ratio",)
    assert np.isfinite(w.X).all()  # never NaN into the model
    assert (w.X[:, :, QUANTILE_FEATURES.index("trades_ratio")] == NEUTRAL_FILL).all()
    assert resolve_inputs(INPUTS, w.unavailable) == tuple(c for c in INPUTS if c != "trades_ratio")
    with pytest.raises(ConfigError, match="unavailable"):
        resolve_inputs(("trades_ratio",), w.unavailable)
    some = sample_btcusdt.copy()
    some["trades"] = some["trades"].astype("Int64")
    some.loc[5, "trades"] = pd.NA
    with pytest.raises(DataValidationError, match="some candles"):
        volatility_features(some)


def test_pooled_windows_are_each_symbols_windows_by_index(tables):
    pooled = pool_windows(tables, 12)
    assert pooled.values.nbytes == sum(len(t) for t in tables.values()) * len(QUANTILE_FEATURES) * 4
    for name, table in tables.items():
        mine = pooled.of(name)
        ref = make_quantile_windows(table, 12)
        np.testing.assert_array_equal(mine.X(), ref.X)
        np.testing.assert_array_equal(mine.y, ref.y)
        assert mine.index.equals(ref.index)
    assert pooled.unavailable == {"BTCEUR": (), "ETHUSDT": ("trades_ratio",)}


def test_pooled_scaler_equals_the_scaler_of_materialized_windows(tables):
    pooled = pool_windows(tables, 12)
    inputs = resolve_inputs(INPUTS, ("trades_ratio",))
    fast = fit_pooled_scaler(pooled, inputs)
    slow = fit_input_scaler(np.concatenate([pooled.of(s).X() for s in tables]), inputs)
    np.testing.assert_allclose(fast.data_min_, slow.data_min_, rtol=1e-12)
    np.testing.assert_allclose(fast.data_max_, slow.data_max_, rtol=1e-12)


def test_split_keeps_each_symbols_test_and_latest_validation(tables):
    pooled = pool_windows(tables, 12)
    start = {"BTCEUR": tables["BTCEUR"].index[1300], "ETHUSDT": None}
    train, val, test = split_pooled(pooled, 0.2, start)
    assert set(test.counts().values()) == {0, 200} and test.of("BTCEUR").time.min() == start["BTCEUR"].value
    for s in tables:
        assert train.of(s).time.max() < val.of(s).time.min()
        assert abs(len(val.of(s)) / (len(val.of(s)) + len(train.of(s))) - 0.2) < 0.01
    assert len(train) + len(val) + len(test) == len(pooled)


# ----------------------------------------------------------------------------- training (TensorFlow)
TINY = dict(sequence_length=12, lstm_units=8, batch_size=64, max_epochs=2, patience=1)


@pytest.fixture(scope="module")
def market(tmp_path_factory, sample_btceur, sample_btcusdt):
    """A folder like ../shared/data/market: BTCEUR and BTCUSDT with every column, ETHUSDT
    (BTCUSDT's candles) without trade counts."""
    d = tmp_path_factory.mktemp("market")
    write_klines_csv(sample_btceur.iloc[:2000], d / "BTCEUR_1h_2023H2.csv.gz")
    write_klines_csv(sample_btcusdt.iloc[:2000], d / "BTCUSDT_1h_2023H2.csv")
    write_klines_csv(ohlcv_only(sample_btcusdt.iloc[:2000]), d / "ETHUSDT_1h_ohlcv.csv.gz")
    return d


@pytest.fixture(scope="module")
def universal(tmp_path_factory, market):
    pytest.importorskip("tensorflow")
    from make_us_rich.stages import run_universal

    out = tmp_path_factory.mktemp("universal") / "model"
    summary = run_universal(f"csv:{market}", ["BTCEUR", "ETHUSDT", "XRPUSDT"], out, RunSpec(train=TrainConfig(**TINY)))
    return out, summary


def test_a_symbol_that_cannot_be_loaded_is_named_and_the_run_goes_on(universal):
    _, summary = universal
    assert summary["symbols"] == ["BTCEUR", "ETHUSDT"]
    assert "XRPUSDT_*.csv" in summary["failed"]["XRPUSDT"]


def test_one_model_for_every_symbol_with_the_inputs_all_have(universal):
    out, summary = universal
    card = json.loads((out / "model_card.json").read_text())
    assert card["kind"] == "universal" and card["symbols"] == ["BTCEUR", "ETHUSDT"]
    assert "trades_ratio" not in card["inputs"]["used"]
    assert card["inputs"]["unavailable"] == {"BTCEUR": [], "ETHUSDT": ["trades_ratio"]}
    assert set(summary["evaluation"]) == {"BTCEUR", "ETHUSDT"}
    for sym in ("BTCEUR", "ETHUSDT"):
        sym_card = json.loads((out / "symbols" / sym / "model_card.json").read_text())
        assert sym_card["symbol"] == sym and sym_card["universal"]["trained_on"] == ["BTCEUR", "ETHUSDT"]
        assert sym_card["inputs"]["used"] == card["inputs"]["used"]
        assert (out / "symbols" / sym / "model.onnx").read_bytes() == (out / "model.onnx").read_bytes()
        row = summary["evaluation"][sym]
        assert row["n"] > 0 and isinstance(row["gate"], bool) and row["pinball_vs_har"] > 0
    assert summary["evaluation"]["ETHUSDT"]["inputs"]["unavailable"] == ["trades_ratio"]


def test_evaluate_a_symbol_the_model_never_saw(universal, market, tmp_path):
    from make_us_rich.data import load_klines
    from make_us_rich.evaluation import evaluate_folder

    out, _ = universal
    klines, _ = load_klines(f"csv:{market}", "BTCUSDT")
    test, folder = evaluate_folder(out, klines, "BTCUSDT", tmp_path / "ev", period=(None, None, 10))
    assert test["model_info"]["kind"] == "universal" and "BTCUSDT" not in test["model_info"]["trained_on"]
    predictions = pd.read_csv(folder / "predictions.csv")
    assert list(predictions.columns) == ["timestamp", "last_close", "close", "q05", "q25", "q50", "q75", "q95"]
    assert len(predictions) == test["n"] == 241  # both ends of the 10 days
    assert (predictions[["q05", "q25", "q50", "q75", "q95"]].diff(axis=1).iloc[:, 1:] >= 0).all().all()


def test_a_model_reading_trade_counts_refuses_a_symbol_without_them(trained_artifacts, market, tmp_path):
    from make_us_rich.data import load_klines
    from make_us_rich.evaluation import evaluate_folder

    card = json.loads((trained_artifacts / "model_card.json").read_text())
    card["kind"] = "universal"  # the same model, as if universal: any symbol, but inputs checked
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model_card.json").write_text(json.dumps(card))
    (folder / "model.onnx").write_bytes((trained_artifacts / "model.onnx").read_bytes())
    klines, _ = load_klines(f"csv:{market}", "ETHUSDT")
    with pytest.raises(ConfigError, match="trades_ratio"):
        evaluate_folder(folder, klines, "ETHUSDT", tmp_path / "ev", period=(None, None, 10))


def test_warm_start_begins_where_the_last_model_ended_and_budget_stops(universal, market, tmp_path):
    from make_us_rich.stages import run_universal

    out, summary = universal
    warm = run_universal(f"csv:{market}", ["BTCEUR", "ETHUSDT"], tmp_path / "warm",
                         RunSpec.of(TrainConfig(**TINY), time_budget=1e-3), init_dir=out)
    t, before = warm["training"], summary["training"]
    assert t["warm_start"] and t["budget_exhausted"] and t["epochs_run"] == 1
    # same data, same scaler, the last model's weights: its validation loss before any step
    assert t["initial_val_loss"] == pytest.approx(before["best_val_loss"], rel=1e-5)
    with pytest.raises(ConfigError, match="warm-start"):
        run_universal(f"csv:{market}", ["BTCEUR"], tmp_path / "other", RunSpec(train=TrainConfig(**{**TINY, "lstm_units": 4})),
                      init_dir=out)


def test_cli_trains_a_universal_model_from_a_folder(market, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    from make_us_rich.cli import main

    out = tmp_path / "cli"
    code = main(["train", "--source", f"csv:{market}", "--symbols", "all", "--preset", "tiny",
                 "--test-size", "0", "--end", "2023-09-15T23:00", "--out", str(out), "--no-progress"])
    assert code == 0
    info = json.loads((out / "universal.json").read_text())
    assert info["symbols"] == ["BTCEUR", "BTCUSDT", "ETHUSDT"]
    assert info["test_start"] == {"BTCEUR": None, "BTCUSDT": None, "ETHUSDT": None}
    assert info["periods"]["BTCUSDT"][1] == "2023-09-15T23:00:00+00:00"
    assert not (out / "symbols").exists()
    assert "no test period" in capsys.readouterr().out
    # a universal model serves many symbols: evaluate asks which one instead of guessing
    assert main(["evaluate", "--model", str(out), "--source", f"csv:{market}", "--days", "3",
                 "--out", str(tmp_path / "e")]) == 2
    assert "holds a universal model (trained on BTCEUR, BTCUSDT, ETHUSDT); pass --symbol" in capsys.readouterr().err


def test_a_per_symbol_model_of_an_ohlcv_only_source_says_what_it_reads(market, tmp_path, tiny_config):
    pytest.importorskip("tensorflow")
    from make_us_rich.workflow import train_symbol

    run = train_symbol(f"csv:{market}", "ETHUSDT", tmp_path / "eth", tiny_config, days=75)
    assert "trades_ratio" not in run.card["hyperparameters"]["inputs"]
    assert run.card["inputs"] == {"used": run.card["hyperparameters"]["inputs"], "unavailable": ["trades_ratio"]}
    assert run.metrics["test"]["n"] > 0


def test_warm_start_from_the_store_or_in_full_when_there_is_none(universal, market, tmp_path):
    from make_us_rich.stages import run_universal
    from make_us_rich.store import ModelStore

    out, summary = universal
    store = ModelStore(str(tmp_path / "store"))
    assert store.publish(out / "symbols" / "ETHUSDT", "ETHUSDT").status == "accepted"
    assert "model.keras" in store.manifest("ETHUSDT", store.latest("ETHUSDT")["version"])["files"]
    warm = run_universal(f"csv:{market}", ["BTCEUR", "ETHUSDT"], tmp_path / "warm",
                         RunSpec.of(TrainConfig(**TINY), time_budget=1e-3), warm_store=store.uri)["training"]
    assert warm["warm_start"] and warm["warm_start_from"]["symbol"] == "ETHUSDT"
    assert warm["initial_val_loss"] == pytest.approx(summary["training"]["best_val_loss"], rel=1e-5)
    other = run_universal(f"csv:{market}", ["BTCEUR", "ETHUSDT"], tmp_path / "other",
                          RunSpec.of(TrainConfig(**{**TINY, "lstm_units": 4}), time_budget=1e-3),
                          warm_store=store.uri)["training"]
    assert not other["warm_start"] and "cannot warm-start" in other["warm_start_note"]
    empty = run_universal(f"csv:{market}", ["BTCEUR"], tmp_path / "empty", RunSpec.of(TrainConfig(**TINY), time_budget=1e-3),
                          warm_store=str(tmp_path / "empty-store"))["training"]
    assert not empty["warm_start"] and empty["warm_start_note"] == "no accepted universal model in the store"


def test_cli_trains_a_model_of_several_horizons_and_evaluate_writes_each(market, tmp_path, capsys):
    """``mkrich train --symbols ... --horizons 1,4``: the card lists the horizons, the ONNX model
    has the extra output, and ``mkrich evaluate`` writes predictions_h4.csv beside the 1-hour file."""
    pytest.importorskip("tensorflow")
    import onnxruntime as ort

    from make_us_rich.cli import main
    from make_us_rich.horizons import HORIZON_OUTPUT_NAME

    out = tmp_path / "h"
    assert main(["train", "--source", f"csv:{market}", "--symbols", "BTCEUR,BTCUSDT", "--preset", "tiny",
                 "--test-size", "0", "--end", "2023-09-05T23:00", "--horizons", "4,1", "--out", str(out),
                 "--no-progress"]) == 0
    card = json.loads((out / "model_card.json").read_text())
    assert card["horizons"] == [1, 4] and card["kind"] == "universal"
    session = ort.InferenceSession(str(out / "model.onnx"))
    assert HORIZON_OUTPUT_NAME in [o.name for o in session.get_outputs()]
    assert main(["evaluate", "--model", str(out), "--symbol", "BTCUSDT", "--source", f"csv:{market}",
                 "--start", "2023-09-06", "--end", "2023-09-20T23:00", "--out", str(tmp_path / "e")]) == 0
    one, four = (pd.read_csv(tmp_path / "e" / name) for name in ("predictions.csv", "predictions_h4.csv"))
    assert list(four.columns[:8]) == list(one.columns[:8]) == ["timestamp", "last_close", "close",
                                                               "q05", "q25", "q50", "q75", "q95"]
    assert len(one) == 15 * 24 and 0 < len(four) <= len(one)
    # --tensorboard-dir reaches a horizon model's fit: its logs, or without TensorBoard a clear error
    tb = ["train", "--source", f"csv:{market}", "--symbols", "BTCEUR,BTCUSDT", "--preset", "tiny", "--test-size", "0",
          "--end", "2023-09-05T23:00", "--horizons", "1,4", "--no-progress", "--tensorboard-dir", str(tmp_path / "tb"),
          "--out", str(tmp_path / "tb-model")]
    capsys.readouterr()
    if importlib.util.find_spec("tensorboard") is None:
        assert main(tb) == 2 and "--tensorboard-dir needs TensorBoard" in capsys.readouterr().err
    else:
        assert main(tb) == 0 and list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    # a wrong list is refused before anything is trained
    assert main(["train", "--source", f"csv:{market}", "--symbols", "BTCEUR", "--horizons", "4,24",
                 "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
    assert "including 1 (the next hour)" in capsys.readouterr().err
