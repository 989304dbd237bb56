"""The loop, once: every stage as a file-in/file-out function, and :func:`run_stages`, the
chain of them that ``mkrich train`` runs in one process. The Kubeflow components call the very
same functions, one per container, so both ways produce the same artifacts.

Every function reads its inputs from paths, calls the library's pure functions and writes its
outputs to paths, so a stage can run in its own container with typed artifacts between stages
and no hidden shared files. Data and preprocessing stages never import TensorFlow;
``train_stage`` and ``convert_stage`` need the ``train`` extra.

File formats: the fetch output is a folder (``klines.csv`` in the Binance dump format and the
validation ``report.json``); feature tables are CSV indexed by open time (floats written with
17 significant digits, so they round-trip exactly); windows are ``.npz``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from make_us_rich.data import DataReport, load_klines, read_klines_csv, write_klines_csv
from make_us_rich.errors import ConfigError, InsufficientHistoryError
from make_us_rich.io import atomic_path, read_json, write_json
from make_us_rich.preprocessing import (
    extract_features_from_dataset,
    load_scaler,
    save_scaler,
    split_data,
)
from make_us_rich.preprocessing.split import holdout_size
from make_us_rich.preprocessing.volatility import add_volatility_features
from make_us_rich.preprocessing.windows import fit_input_scaler, make_quantile_windows
from make_us_rich.training.config import TrainConfig
from make_us_rich.training.evaluate import COVERAGE_BAND, DEFAULT_TOLERANCE

KLINES_FILE = "klines.csv"
REPORT_FILE = "report.json"


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
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, float_format="%.17g", index_label="timestamp")


def read_table(path: str | Path) -> pd.DataFrame:
    """A feature table written by a stage (index: UTC open times)."""
    frame = pd.read_csv(path, index_col="timestamp")
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.index, utc=True), name="timestamp")
    return frame


def _span(frame: pd.DataFrame) -> list[str]:
    return [frame.index[0].isoformat(), frame.index[-1].isoformat()]


# ----------------------------------------------------------------------------- stages
def write_fetched(klines: pd.DataFrame, report: DataReport, out_dir: str | Path) -> dict[str, Any]:
    """The fetch stage's output folder from klines already loaded (and their report)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_klines_csv(klines, out / KLINES_FILE)
    write_json(out / REPORT_FILE, report.to_dict())
    return report.to_dict()


def fetch_stage(
    source: str,
    symbol: str,
    out_dir: str | Path,
    *,
    interval: str = "1h",
    lookback_days: float | None = 365.0,
    start: str | None = None,
    end: str | None = None,
    max_missing_fraction: float = 0.01,
    api_url: str | None = None,
    progress: bool = False,
    client: object | None = None,
) -> dict[str, Any]:
    """Stage 1: klines from ``source`` -> validated ``klines.csv`` + ``report.json`` in
    ``out_dir``. Returns the data report.

    ``lookback_days`` <= 0 or ``None`` means the whole file for replay sources (or everything
    from ``start``). A replay source replays history: its last candle is "now", so an end time
    after it (a run's scheduled time) is taken as that last candle."""
    days = lookback_days if lookback_days and lookback_days > 0 and start is None else None
    klines, report = load_klines(
        source, symbol, interval=interval, days=days, start=start, end=resolve_end(end),
        max_missing_fraction=max_missing_fraction, client=client, api_url=api_url or None,
        clamp_end=True, progress=progress,
    )
    return write_fetched(klines, report, out_dir)


def features_stage(klines_dir: str | Path, out_csv: str | Path) -> dict[str, Any]:
    """Stage 2: klines (validated by the fetch stage, with the run's interval and limits)
    -> feature table: price and calendar features, then the causal volatility features."""
    klines = read_klines_csv(Path(klines_dir) / KLINES_FILE)
    features = add_volatility_features(extract_features_from_dataset(klines), klines)
    _write_table(features, out_csv)
    return {"rows": len(features), "features": list(features.columns)}


def split_stage(
    features_csv: str | Path, train_csv: str | Path, test_csv: str | Path, test_size: float = 0.1
) -> dict[str, Any]:
    """Stage 3: chronological split of the feature table."""
    train, test = split_data(read_table(features_csv), test_size)
    _write_table(train, train_csv)
    _write_table(test, test_csv)
    return {"train_rows": len(train), "test_rows": len(test),
            "train_period": _span(train), "test_period": _span(test)}


def sequences_stage(
    train_csv: str | Path,
    test_csv: str | Path,
    out_npz: str | Path,
    sequence_length: int = 48,
    val_size: float = 0.2,
) -> dict[str, Any]:
    """Stage 4: raw windows and next-hour log-return targets for train / validation (the latest
    ``val_size`` of the train windows) and test (windows whose forecast hour is in the test
    period; their history may reach back into train, which is the past). Windows across a gap
    in the candles or over the volatility warm-up are left out."""
    train, test = read_table(train_csv), read_table(test_csv)
    tr = make_quantile_windows(train, sequence_length)
    te = make_quantile_windows(pd.concat([train, test]), sequence_length).since(test.index[0])
    n_val = holdout_size(len(tr.y), val_size)
    if len(tr.y) - n_val < 1 or len(te.y) < 1:
        raise InsufficientHistoryError(
            f"{len(tr.y)} train and {len(te.y)} test windows of {sequence_length} h: too few to train "
            "and evaluate; load more history (the volatility features need ~30 days of warm-up)"
        )
    cut = len(tr.y) - n_val
    with atomic_path(out_npz) as tmp, tmp.open("wb") as fh:
        np.savez(
            fh, X_train=tr.X[:cut], y_train=tr.y[:cut], X_val=tr.X[cut:], y_val=tr.y[cut:],
            X_test=te.X, y_test=te.y, t_test=te.index.asi8,
        )
    return {"train_windows": cut, "val_windows": n_val, "test_windows": len(te.y),
            "train_rows": len(train), "test_rows": len(test)}


def scale_stage(sequences_npz: str | Path, scaler_dir: str | Path, inputs: tuple[str, ...]) -> dict[str, Any]:
    """Stage 5: MinMax(-1, 1) fit on the train windows only (not validation, not test), on the
    stationary inputs the LSTM reads (each window divided by its trailing volatility)."""
    with np.load(sequences_npz) as z:
        X = z["X_train"]
    scaler = fit_input_scaler(X, tuple(inputs))
    save_scaler(scaler, scaler_dir)
    return {"inputs": list(inputs), "fit_rows": int(X.shape[0] * X.shape[1])}


def train_stage(
    sequences_npz: str | Path,
    scaler_dir: str | Path,
    config: dict[str, Any] | TrainConfig,
    model_dir: str | Path,
    *,
    train_csv: str | Path | None = None,
    progress: bool | str = False,
    tensorboard_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Stage 6: fit the quantile LSTM on pinball loss, early-stopping on the validation windows
    (the untrained, empirically calibrated model counts as epoch 0). Writes the serving graph
    ``model.keras`` (raw windows -> prices), ``history.json``, ``training.json`` and
    ``config.json``. ``train_csv`` (the train features) is needed with ``blend_har``."""
    from make_us_rich.training.quantile_model import fit_quantile_model

    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    with np.load(sequences_npz) as z:
        data = {k: z[k] for k in ("X_train", "y_train", "X_val", "y_val")}
        n_test = len(z["y_test"])
    if data["X_train"].shape[1] != cfg.sequence_length:
        raise ConfigError(
            f"windows have length {data['X_train'].shape[1]} but the config says "
            f"sequence_length={cfg.sequence_length}"
        )
    if cfg.blend_har and train_csv is None:
        raise ConfigError("blend_har needs the train features (train_csv) to fit the HAR model")
    trained = fit_quantile_model(
        data, load_scaler(scaler_dir), cfg, train_features=read_table(train_csv) if cfg.blend_har else None,
        progress=progress, tensorboard_dir=tensorboard_dir,
    )
    out = Path(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    trained.serving.save(out / "model.keras")
    epochs = len(trained.history["val_loss"])
    summary = {
        "epochs_run": epochs,
        "best_epoch": trained.best_epoch,
        "seconds": round(trained.seconds, 3),
        "seconds_per_epoch": round(trained.seconds / max(epochs, 1), 3),
        "initial_val_loss": trained.extra["initial_val_loss"],
        "best_val_loss": trained.extra["best_val_loss"],
        "train_windows": len(data["y_train"]),
        "val_windows": len(data["y_val"]),
        "test_windows": n_test,
        **({"spread_scale": trained.extra["spread_scale"]} if "spread_scale" in trained.extra else {}),
    }
    write_json(out / "history.json", trained.history)
    write_json(out / "training.json", summary)
    write_json(out / "config.json", cfg.to_dict())
    return summary


def convert_stage(model_dir: str | Path, sequences_npz: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Stage 7: self-contained ONNX with parity on the real test windows (raises on failure,
    writing nothing). Writes ``model.onnx`` and ``parity.json``."""
    from make_us_rich.contract import MODEL_FILE
    from make_us_rich.io import atomic_write_bytes
    from make_us_rich.training.export import export_onnx
    from make_us_rich.training.quantile_model import load_serving_model

    model = load_serving_model(Path(model_dir) / "model.keras")
    with np.load(sequences_npz) as z:
        X_test = z["X_test"]
    model_bytes, parity = export_onnx(model, X_test)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / MODEL_FILE, model_bytes)
    write_json(out / "parity.json", parity.to_dict())
    return parity.to_dict()


def evaluate_stage(
    onnx_dir: str | Path,
    scaler_dir: str | Path,
    model_dir: str | Path,
    klines_dir: str | Path,
    train_csv: str | Path,
    test_csv: str | Path,
    out_dir: str | Path,
    *,
    symbol: str,
    source: str,
    interval: str = "1h",
    gate_tolerance: float = DEFAULT_TOLERANCE,
    coverage_min: float = COVERAGE_BAND[0],
    coverage_max: float = COVERAGE_BAND[1],
) -> dict[str, Any]:
    """Stage 8a: evaluate the exported model on the test period beside the baselines, gate, and
    write the full artifact folder (what ``publish_stage`` takes). Returns metrics.json's
    content."""
    from make_us_rich.contract import MODEL_FILE
    from make_us_rich.training.artifacts import write_artifacts

    model_dir, onnx_dir = Path(model_dir), Path(onnx_dir)
    train, test = read_table(train_csv), read_table(test_csv)
    data = {
        "source": source,
        "start": _span(train)[0],
        "end": _span(test)[1],
        "rows": len(train) + len(test),
        "train_period": _span(train),
        "test_period": _span(test),
        "validation": read_json(Path(klines_dir) / REPORT_FILE),
    }
    return write_artifacts(
        out_dir,
        symbol=symbol,
        interval=interval,
        config=TrainConfig.from_dict(read_json(model_dir / "config.json")),
        data=data,
        scaler=load_scaler(scaler_dir),
        model_bytes=(onnx_dir / MODEL_FILE).read_bytes(),
        parity=read_json(onnx_dir / "parity.json"),
        history=read_json(model_dir / "history.json"),
        training=read_json(model_dir / "training.json"),
        features=pd.concat([train, test]),
        test_start=test.index[0],
        gate_tolerance=gate_tolerance,
        coverage_band=(coverage_min, coverage_max),
    )


def publish_stage(
    artifacts_dir: str | Path, symbol: str, store_uri: str, keep: int = 10, allow_contract_change: bool = False
) -> dict[str, Any]:
    """Stage 8b: publish through the gate (with the serving contract check) to the model store;
    then the run's metrics to the Pushgateway when ``MKRICH_PUSHGATEWAY_URL`` is set."""
    from dataclasses import asdict

    from make_us_rich.observability import push_publish
    from make_us_rich.store import ModelStore

    store = ModelStore(store_uri, keep=keep)
    result = asdict(store.publish(artifacts_dir, symbol, allow_contract_change=allow_contract_change))
    push_publish(store, result["symbol"], artifacts_dir, version=result["version"])
    return result


# ----------------------------------------------------------------------------- the chain
def run_stages(
    source: str,
    symbol: str,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    interval: str = "1h",
    lookback_days: float | None = None,
    start: str | None = None,
    end: str | None = None,
    max_missing_fraction: float = 0.01,
    api_url: str | None = None,
    gate_tolerance: float = DEFAULT_TOLERANCE,
    coverage_band: tuple[float, float] = COVERAGE_BAND,
    klines: tuple[pd.DataFrame, DataReport] | None = None,
    work_dir: str | Path | None = None,
    progress: bool = False,
    tensorboard_dir: str | Path | None = None,
    client: object | None = None,
    on_stage: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Fetch -> features -> split -> sequences -> scale -> train -> ONNX -> evaluate + gate, in
    this process, over the stages' own files (in ``work_dir``, default a temporary folder), the
    same chain the pipeline runs as components. Writes the artifact folder ``out_dir`` and
    returns metrics.json's content. ``klines`` (already loaded, with their report) skips the
    fetch; ``on_stage(name, info)`` is called as each stage finishes."""
    config = config or TrainConfig()
    done = on_stage or (lambda name, info: None)
    with tempfile.TemporaryDirectory(prefix="mkrich-stages-") as tmp:
        w = Path(work_dir) if work_dir else Path(tmp)
        w.mkdir(parents=True, exist_ok=True)
        if klines is not None:
            info = write_fetched(*klines, w / "klines")
        else:
            info = fetch_stage(
                source, symbol, w / "klines", interval=interval, lookback_days=lookback_days,
                start=start, end=end, max_missing_fraction=max_missing_fraction, api_url=api_url,
                progress=progress, client=client,
            )
        done("fetch", info)
        done("features", features_stage(w / "klines", w / "features.csv"))
        done("split", split_stage(w / "features.csv", w / "train.csv", w / "test.csv", config.test_size))
        done("sequences", sequences_stage(w / "train.csv", w / "test.csv", w / "sequences.npz",
                                          config.sequence_length, config.val_size))
        done("scale", scale_stage(w / "sequences.npz", w / "scaler", config.inputs))
        done("train", train_stage(w / "sequences.npz", w / "scaler", config, w / "model",
                                  train_csv=w / "train.csv", progress=progress,
                                  tensorboard_dir=tensorboard_dir))
        done("convert", convert_stage(w / "model", w / "sequences.npz", w / "onnx"))
        metrics = evaluate_stage(
            w / "onnx", w / "scaler", w / "model", w / "klines", w / "train.csv", w / "test.csv", out_dir,
            symbol=symbol, source=str(source), interval=interval, gate_tolerance=gate_tolerance,
            coverage_min=coverage_band[0], coverage_max=coverage_band[1],
        )
        done("evaluate", metrics)
    return metrics
