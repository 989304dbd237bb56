"""The artifact folder of one trained model, written by the evaluate stage (the last stage of
``mkrich train`` and of the pipeline alike) and read by the model store:

====================  =====================================================================
``model.onnx``        self-contained forecaster (raw windows in, prices out)
``scaler.pkl``        fitted MinMaxScaler (scikit-learn pickle)
``scaler.json``       its parameters as plain JSON
``metrics.json``      test metrics vs the baselines, gate decision, parity, training summary
``history.json``      train/validation loss per epoch
``model_card.json``   what the model is: data, features, signature, hyperparameters, versions...
``training_curves.png``, ``predictions.png``
====================  =====================================================================

The folder is written beside its destination and swapped in as a whole: never half-written.
"""

from __future__ import annotations

import platform
import shutil
import tempfile
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from make_us_rich import __version__, contract
from make_us_rich.data import normalize_symbol
from make_us_rich.data.klines import interval_ms
from make_us_rich.errors import InsufficientHistoryError
from make_us_rich.io import atomic_write_bytes, sha256, write_json
from make_us_rich.preprocessing import contiguous_windows, raw_windows, save_scaler
from make_us_rich.training.config import TrainConfig
from make_us_rich.training.evaluate import DEFAULT_TOLERANCE, evaluate_forecast, promotion_gate

MODEL_CARD_SCHEMA = "make-us-rich/model-card/v2"
ARTIFACTS = contract.ARTIFACT_FILES
_VERSIONED = (
    "numpy", "pandas", "scikit-learn", "tensorflow-cpu", "tensorflow", "keras", "tf2onnx",
    "onnx", "onnxruntime",
)


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "make-us-rich": __version__}
    for name in _VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def write_artifacts(
    out_dir: str | Path,
    *,
    symbol: str,
    interval: str,
    config: TrainConfig,
    data: dict[str, Any],
    scaler,
    model_bytes: bytes,
    parity: dict[str, Any],
    history: dict[str, list[float]],
    training: dict[str, Any],
    test_raw: pd.DataFrame,
    gate_tolerance: float = DEFAULT_TOLERANCE,
    target_column: str = "close",
) -> dict[str, Any]:
    """Evaluate the exported model on the raw test rows against persistence, apply the gate and
    write every artifact into ``out_dir`` (replaced as a whole). Returns metrics.json's content."""
    from make_us_rich.inference import onnx_session, predict_all
    from make_us_rich.training.plots import plot_predictions, plot_training_curves

    sym = normalize_symbol(symbol)
    feature_names = list(test_raw.columns)
    target = feature_names.index(target_column)
    X_raw, y_raw, times = raw_windows(test_raw, config.sequence_length, target_column)
    # Windows across a gap in the candles would compare multi-hour moves: leave them out.
    keep = contiguous_windows(
        test_raw.index, config.sequence_length, pd.Timedelta(milliseconds=interval_ms(interval))
    )
    if not keep.all():
        X_raw, y_raw, times = X_raw[keep], y_raw[keep], times[keep]
    if len(X_raw) == 0:
        raise InsufficientHistoryError("every test window spans a gap in the candles; use another period")
    # Evaluate what will be served: the exported ONNX model on raw windows.
    outputs = predict_all(onnx_session(model_bytes), np.ascontiguousarray(X_raw))
    predicted = outputs[contract.OUTPUT_NAME].reshape(-1)
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
        atomic_write_bytes(staging / contract.MODEL_FILE, model_bytes)
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
            "features": feature_names,
            "target": target_column,
            "sequence_length": config.sequence_length,
            **contract.signature(config.sequence_length, len(feature_names)),
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
    return metrics


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
