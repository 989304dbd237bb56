"""The loop as file-in/file-out stages: what each Kubeflow component calls, in one line.

Every function reads its inputs from paths, calls the library's pure functions (the same ones
``mkrich train`` chains in memory) and writes its outputs to paths, so a stage can run in its own
container with typed artifacts between stages and no hidden shared files. Data and preprocessing
stages never import TensorFlow; ``train_stage`` and ``convert_stage`` need the ``train`` extra.

File formats: klines as the Binance dump CSV; feature tables as CSV indexed by open time (floats
written with 17 significant digits, so they round-trip exactly); windows as ``.npz``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from make_us_rich.data import load_klines, read_klines_csv, write_klines_csv
from make_us_rich.errors import ConfigError
from make_us_rich.preprocessing import (
    extract_features_from_dataset,
    load_scaler,
    save_scaler,
    scale_data,
    split_data,
)
from make_us_rich.training.config import TrainConfig
from make_us_rich.training.evaluate import DEFAULT_TOLERANCE
from make_us_rich.training.workflow import write_json


def resolve_end(end: str | None) -> str | None:
    """A run's end of window: the scheduled time of a recurring run, or ``None`` (= now / the
    file's last candle) for ad-hoc runs, where KFP may pass the placeholder through unresolved
    or empty."""
    if end is None:
        return None
    text = str(end).strip()
    if not text or text.startswith("{{") or text.lower() in ("none", "null", "now"):
        return None
    return text


def _write_table(frame: pd.DataFrame, path: str | Path) -> None:
    frame.to_csv(path, float_format="%.17g", index_label="timestamp")


def read_table(path: str | Path) -> pd.DataFrame:
    """A feature table written by a stage (index: UTC open times)."""
    frame = pd.read_csv(path, index_col="timestamp")
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.index, utc=True), name="timestamp")
    return frame


def fetch_stage(
    source: str,
    symbol: str,
    out_csv: str | Path,
    *,
    interval: str = "1h",
    lookback_days: float | None = 365.0,
    end: str | None = None,
    max_missing_fraction: float = 0.01,
    api_url: str | None = None,
) -> dict[str, Any]:
    """Stage 1: klines from ``source`` -> validated CSV. Returns the data report.

    ``lookback_days`` <= 0 or ``None`` means the whole file for replay sources. A replay source
    replays history: its last candle is "now", so an end time after it (a run's scheduled time)
    is taken as that last candle."""
    from make_us_rich.data import parse_source

    client = None
    if parse_source(source).kind == "binance":
        from make_us_rich.data.binance import BinanceClient

        client = BinanceClient(api_url=api_url or None)
    days = lookback_days if lookback_days and lookback_days > 0 else None
    klines, report = load_klines(
        source, symbol, interval=interval, days=days, end=resolve_end(end),
        max_missing_fraction=max_missing_fraction, client=client, clamp_end=True,
    )
    write_klines_csv(klines, out_csv)
    return report.to_dict()


def features_stage(klines_csv: str | Path, out_csv: str | Path) -> dict[str, Any]:
    """Stage 2: klines CSV (validated by the fetch stage, with the run's interval and limits)
    -> feature table."""
    klines = read_klines_csv(klines_csv)
    features = extract_features_from_dataset(klines)
    _write_table(features, out_csv)
    return {"rows": len(features), "features": list(features.columns)}


def split_stage(
    features_csv: str | Path, train_csv: str | Path, test_csv: str | Path, test_size: float = 0.1
) -> dict[str, Any]:
    """Stage 3: chronological split of the feature table."""
    train, test = split_data(read_table(features_csv), test_size)
    _write_table(train, train_csv)
    _write_table(test, test_csv)
    return {
        "train_rows": len(train),
        "test_rows": len(test),
        "train_period": [train.index[0].isoformat(), train.index[-1].isoformat()],
        "test_period": [test.index[0].isoformat(), test.index[-1].isoformat()],
    }


def scale_stage(
    train_csv: str | Path,
    test_csv: str | Path,
    train_out: str | Path,
    test_out: str | Path,
    scaler_dir: str | Path,
) -> dict[str, Any]:
    """Stage 4: MinMax(-1, 1) fit on train only; writes scaled tables and the scaler."""
    train_s, test_s, scaler = scale_data(read_table(train_csv), read_table(test_csv))
    _write_table(train_s, train_out)
    _write_table(test_s, test_out)
    save_scaler(scaler, scaler_dir)
    return {"features": list(train_s.columns)}


def sequences_stage(
    train_scaled_csv: str | Path,
    test_scaled_csv: str | Path,
    out_npz: str | Path,
    sequence_length: int = 24,
    val_size: float = 0.2,
    target_column: str = "close",
    interval: str = "1h",
) -> dict[str, Any]:
    """Stage 5: windows for train/validation (latest) and test, with 0/1 weights that leave out
    windows across a gap in the candles."""
    from make_us_rich.preprocessing import make_windows

    train, test = read_table(train_scaled_csv), read_table(test_scaled_csv)
    w = make_windows(train, test, sequence_length, val_size=val_size,
                     target_column=target_column, interval=interval)
    with Path(out_npz).open("wb") as fh:
        np.savez(
            fh, X_train=w["X_train"], y_train=w["y_train"], X_val=w["X_val"], y_val=w["y_val"],
            X_test=w["X_test"], y_test=w["y_test"], w_train=w["w_train"], w_val=w["w_val"],
            target_index=np.int64(train.columns.get_loc(target_column)),
        )
    gaps = int((w["w_train"] == 0).sum() + (w["w_val"] == 0).sum())
    return {"train_windows": len(w["X_train"]), "val_windows": len(w["X_val"]),
            "test_windows": len(w["X_test"]), "windows_across_gaps": gaps}


def train_stage(
    sequences_npz: str | Path, config: dict[str, Any] | TrainConfig, model_dir: str | Path
) -> dict[str, Any]:
    """Stage 6: fit the LSTM; writes ``model.keras``, ``history.json`` and ``training.json``."""
    from make_us_rich.training.train import TrainingData, train_model
    from make_us_rich.training.workflow import training_summary

    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    with np.load(sequences_npz) as z:
        data = TrainingData(z["X_train"], z["y_train"], z["X_val"], z["y_val"], int(z["target_index"]),
                            z["w_train"], z["w_val"])
        windows = {"train_windows": len(z["X_train"]), "val_windows": len(z["X_val"]),
                   "test_windows": len(z["X_test"])}
    if data.X_train.shape[1] != cfg.sequence_length:
        raise ConfigError(
            f"windows have length {data.X_train.shape[1]} but the config says "
            f"sequence_length={cfg.sequence_length}"
        )
    trained = train_model(data, cfg)
    out = Path(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    trained.model.save(out / "model.keras")
    summary = training_summary(trained, windows)
    write_json(out / "history.json", trained.history)
    write_json(out / "training.json", summary)
    write_json(out / "config.json", cfg.to_dict())
    return summary


def convert_stage(
    model_dir: str | Path,
    scaler_dir: str | Path,
    test_raw_csv: str | Path,
    out_dir: str | Path,
    target_column: str = "close",
) -> dict[str, Any]:
    """Stage 7: self-contained ONNX with parity on the real test windows (raises on failure,
    writing nothing). Writes ``model.onnx`` and ``parity.json``."""
    import keras

    import make_us_rich.training.model  # noqa: F401 - registers the custom layer for loading
    from make_us_rich.training.export import export_onnx

    model = keras.models.load_model(Path(model_dir) / "model.keras")
    scaler = load_scaler(scaler_dir)
    test = read_table(test_raw_csv)
    seq_len = model.input_shape[1]
    from make_us_rich.training.workflow import windows_with_times

    X_raw, _, _ = windows_with_times(test, seq_len, target_column)
    model_bytes, parity = export_onnx(model, scaler, test.columns.get_loc(target_column), X_raw)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(model_bytes)
    write_json(out / "parity.json", parity.to_dict())
    return parity.to_dict()


def evaluate_stage(
    onnx_dir: str | Path,
    scaler_dir: str | Path,
    model_dir: str | Path,
    test_raw_csv: str | Path,
    out_dir: str | Path,
    *,
    symbol: str,
    interval: str = "1h",
    data: dict[str, Any] | None = None,
    gate_tolerance: float = DEFAULT_TOLERANCE,
) -> dict[str, Any]:
    """Stage 8a: evaluate vs persistence, gate, and write the full artifact folder (the same
    layout as ``mkrich train --out``). Returns metrics.json's content."""
    from make_us_rich.training.workflow import evaluate_and_write

    model_dir = Path(model_dir)
    config = TrainConfig.from_dict(json.loads((model_dir / "config.json").read_text()))
    scaler = load_scaler(scaler_dir)
    test = read_table(test_raw_csv)
    run = evaluate_and_write(
        out_dir,
        symbol=symbol,
        interval=interval,
        config=config,
        data=data or {},
        feature_names=list(test.columns),
        scaler=scaler,
        model_bytes=(Path(onnx_dir) / "model.onnx").read_bytes(),
        parity=json.loads((Path(onnx_dir) / "parity.json").read_text()),
        history=json.loads((model_dir / "history.json").read_text()),
        training=json.loads((model_dir / "training.json").read_text()),
        test_raw=test,
        gate_tolerance=gate_tolerance,
    )
    return run.metrics


def publish_stage(artifacts_dir: str | Path, symbol: str, store_uri: str, keep: int = 10) -> dict[str, Any]:
    """Stage 8b: publish through the gate to the model store."""
    from dataclasses import asdict

    from make_us_rich.store import ModelStore

    return asdict(ModelStore(store_uri, keep=keep).publish(artifacts_dir, symbol))
