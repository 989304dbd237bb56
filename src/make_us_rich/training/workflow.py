"""One training run end to end, usable without Kubeflow:
fetch -> features -> split -> scale -> windows -> train -> ONNX -> evaluate -> gate -> artifacts.

Artifacts (all in one folder, replaced as a whole, never half-written):

====================  =====================================================================
``model.onnx``        self-contained forecaster (raw windows in, price out)
``scaler.pkl``        fitted MinMaxScaler (scikit-learn pickle)
``scaler.json``       its parameters as plain JSON
``metrics.json``      test metrics vs persistence, gate decision, parity, training summary
``history.json``      train/validation loss per epoch
``model_card.json``   what the model is: data, features, shapes, hyperparameters, versions...
``training_curves.png``, ``predictions.png``
====================  =====================================================================
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from make_us_rich import __version__, contract
from make_us_rich.data import DataReport, load_klines, normalize_symbol
from make_us_rich.data.klines import interval_ms
from make_us_rich.errors import InsufficientHistoryError
from make_us_rich.preprocessing import (
    PreprocessResult,
    contiguous_windows,
    create_sequences,
    preprocess,
    save_scaler,
    split_data,
)
from make_us_rich.training.config import TrainConfig
from make_us_rich.training.evaluate import DEFAULT_TOLERANCE, evaluate_forecast, promotion_gate

MODEL_CARD_SCHEMA = "make-us-rich/model-card/v1"
ARTIFACTS = (
    "model.onnx",
    "scaler.pkl",
    "scaler.json",
    "metrics.json",
    "history.json",
    "model_card.json",
    "training_curves.png",
    "predictions.png",
)
_VERSIONED = (
    "numpy", "pandas", "scikit-learn", "tensorflow-cpu", "tensorflow", "keras", "tf2onnx",
    "onnx", "onnxruntime",
)


@dataclass
class TrainingRun:
    out_dir: Path
    metrics: dict[str, Any]
    card: dict[str, Any]

    @property
    def passed_gate(self) -> bool:
        return bool(self.metrics["gate"]["passed"])


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "make-us-rich": __version__}
    for name in _VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def windows_with_times(table: pd.DataFrame, sequence_length: int, target_column: str = "close"):
    """Windows of an *unscaled* feature table (what the served model receives), their targets
    and the open times of the targets."""
    X, y = create_sequences(table, target_column, sequence_length)
    return X, y, table.index[sequence_length:]


def raw_test_windows(prep: PreprocessResult, test_size: float):
    """The unscaled test windows of a preprocessing result, their targets and times."""
    _, test_raw = split_data(prep.features, test_size)
    return windows_with_times(test_raw, prep.sequence_length, prep.target_column)


def train_symbol(
    source: str,
    symbol: str,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    interval: str = "1h",
    days: float | None = None,
    start: Any = None,
    end: Any = None,
    max_missing_fraction: float = 0.01,
    gate_tolerance: float = DEFAULT_TOLERANCE,
    progress: bool = False,
    tensorboard_dir: str | Path | None = None,
    client: object | None = None,
) -> TrainingRun:
    """Load klines from ``source`` and run :func:`train_from_klines`."""
    klines, report = load_klines(
        source, symbol, interval=interval, days=days, start=start, end=end,
        max_missing_fraction=max_missing_fraction, progress=progress, client=client,
    )
    return train_from_klines(
        klines, symbol, out_dir, config, interval=interval, source=str(source),
        data_report=report, gate_tolerance=gate_tolerance, progress=progress,
        tensorboard_dir=tensorboard_dir,
    )


def train_from_klines(
    klines: pd.DataFrame,
    symbol: str,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    interval: str = "1h",
    source: str = "klines",
    data_report: DataReport | None = None,
    gate_tolerance: float = DEFAULT_TOLERANCE,
    progress: bool = False,
    tensorboard_dir: str | Path | None = None,
) -> TrainingRun:
    """Train, export, evaluate and gate one model on validated klines; write the artifacts."""
    from make_us_rich.training.export import export_onnx
    from make_us_rich.training.train import train_model

    config = config or TrainConfig()
    prep = preprocess(
        klines, config.sequence_length, test_size=config.test_size, val_size=config.val_size,
        interval=interval,
    )
    target = prep.feature_names.index(prep.target_column)
    trained = train_model(prep, config, progress=progress, tensorboard_dir=tensorboard_dir)
    _, test_raw = split_data(prep.features, config.test_size)
    X_raw, _, _ = windows_with_times(test_raw, config.sequence_length, prep.target_column)
    model_bytes, parity = export_onnx(trained.model, prep.scaler, target, X_raw)
    summary = prep.summary()
    return evaluate_and_write(
        out_dir,
        symbol=symbol,
        interval=interval,
        config=config,
        data={
            "source": source,
            "start": summary["train_period"][0],
            "end": summary["test_period"][1],
            "rows": summary["rows"],
            "train_period": summary["train_period"],
            "test_period": summary["test_period"],
            "validation": data_report.to_dict() if data_report else None,
        },
        feature_names=prep.feature_names,
        scaler=prep.scaler,
        model_bytes=model_bytes,
        parity=parity.to_dict(),
        history=trained.history,
        training=training_summary(trained, summary),
        test_raw=test_raw,
        gate_tolerance=gate_tolerance,
    )


def training_summary(trained, windows: dict[str, Any]) -> dict[str, Any]:
    """The ``training`` section of metrics.json and the model card."""
    return {
        "epochs_run": trained.epochs_run,
        "best_epoch": trained.best_epoch,
        "seconds": round(trained.seconds, 3),
        "seconds_per_epoch": round(trained.seconds / max(trained.epochs_run, 1), 3),
        "initial_val_loss": trained.extra["initial_val_loss"],
        "best_val_loss": trained.extra["best_val_loss"],
        "train_windows": windows["train_windows"],
        "val_windows": windows["val_windows"],
        "test_windows": windows["test_windows"],
    }


def evaluate_and_write(
    out_dir: str | Path,
    *,
    symbol: str,
    interval: str,
    config: TrainConfig,
    data: dict[str, Any],
    feature_names: list[str],
    scaler,
    model_bytes: bytes,
    parity: dict[str, Any],
    history: dict[str, list[float]],
    training: dict[str, Any],
    test_raw: pd.DataFrame,
    gate_tolerance: float = DEFAULT_TOLERANCE,
    target_column: str = "close",
) -> TrainingRun:
    """Evaluate the exported model on the raw test rows against persistence, apply the gate and
    write every artifact into ``out_dir`` (replaced as a whole). Shared by ``mkrich train`` and
    the pipeline's evaluate component."""
    from make_us_rich.inference import onnx_session
    from make_us_rich.inference import predict as onnx_predict
    from make_us_rich.training.plots import plot_predictions, plot_training_curves

    sym = normalize_symbol(symbol)
    target = feature_names.index(target_column)
    X_raw, y_raw, times = windows_with_times(test_raw, config.sequence_length, target_column)
    # Windows across a gap in the candles would compare multi-hour moves: leave them out.
    keep = contiguous_windows(
        test_raw.index, config.sequence_length, pd.Timedelta(milliseconds=interval_ms(interval))
    )
    if not keep.all():
        X_raw, y_raw, times = X_raw[keep], y_raw[keep], times[keep]
    if len(X_raw) == 0:
        raise InsufficientHistoryError("every test window spans a gap in the candles; use another period")
    # Evaluate what will be served: the exported ONNX model on raw windows.
    predicted = onnx_predict(onnx_session(model_bytes), np.ascontiguousarray(X_raw)).reshape(-1)
    last_close = X_raw[:, -1, target]
    test_metrics = evaluate_forecast(y_raw, predicted, last_close)
    gate = promotion_gate(test_metrics, bool(parity.get("passed")), gate_tolerance)
    metrics = {
        "symbol": sym,
        "test": test_metrics,
        "gate": gate.to_dict(),
        "parity": parity,
        "training": training,
    }
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (staging / contract.MODEL_FILE).write_bytes(model_bytes)
        save_scaler(scaler, staging)
        write_json(staging / "metrics.json", metrics)
        write_json(staging / "history.json", history)
        plot_training_curves(
            history, training["best_epoch"], staging / "training_curves.png",
            initial_val_loss=training.get("initial_val_loss"),
        )
        plot_predictions(
            times, y_raw, predicted, last_close, sym, staging / "predictions.png",
            rmse=(test_metrics["model"]["rmse"], test_metrics["persistence"]["rmse"]),
        )
        card = {
            "schema": MODEL_CARD_SCHEMA,
            "symbol": sym,
            "interval": interval,
            "model_name": contract.model_name(sym),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "data": data,
            "features": list(feature_names),
            "target": target_column,
            "sequence_length": config.sequence_length,
            "input": {
                "name": contract.INPUT_NAME,
                "datatype": contract.DATATYPE,
                "shape": [-1, config.sequence_length, len(feature_names)],
                "description": "raw feature windows, oldest hour first (no scaling needed)",
            },
            "output": {
                "name": contract.OUTPUT_NAME,
                "datatype": contract.DATATYPE,
                "shape": [-1, 1],
                "description": f"next {interval} close of {sym} in quote currency",
            },
            "opset": contract.OPSET,
            "hyperparameters": config.to_dict(),
            "metrics": test_metrics,
            "gate": gate.to_dict(),
            "parity": parity,
            "training": training,
            "versions": library_versions(),
        }
        card["files"] = {
            name: sha256(staging / name) for name in ARTIFACTS if name != "model_card.json"
        }
        write_json(staging / "model_card.json", card)
        staging.chmod(0o755)  # mkdtemp makes it private; artifacts are meant to be shared
        _swap_into_place(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return TrainingRun(out_dir=out, metrics=metrics, card=card)


def write_json(path: str | Path, payload: Any) -> None:
    """Strict (no NaN), indented JSON with a final newline: every JSON artifact we write."""
    Path(path).write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")


def _swap_into_place(staging: Path, out: Path) -> None:
    """Replace ``out`` by the complete ``staging`` folder; an older ``out`` is kept until the new
    one is in place, then removed."""
    if not out.exists():
        staging.rename(out)
        return
    if not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    old = out.with_name(f".{out.name}.old-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}")
    out.rename(old)
    try:
        staging.rename(out)
    except OSError:
        old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)
