"""The artifact folder of one trained model, written by the evaluate stage (the last stage of
``mkrich train`` and of the pipeline alike) and read by the model store:

====================  =====================================================================
``model.onnx``        self-contained forecaster (raw windows in, prices out)
``scaler.pkl``        the MinMaxScaler of the LSTM's inputs (folded into the graph; for reference)
``scaler.json``       its parameters as plain JSON
``metrics.json``      test scores beside the baselines, gate decision, parity, training summary
``predictions.csv``   one row per test hour: last close, actual close, quantile closes
``history.json``      train/validation loss per epoch
``model_card.json``   what the model is: data, features, signature, hyperparameters, versions...
``model.keras``       the Keras graph (training state for a warm start; never served)
``training_curves.png``, ``fan_chart.png``, ``calibration.png``
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

import pandas as pd

from make_us_rich import __version__, contract
from make_us_rich.data import normalize_symbol
from make_us_rich.io import atomic_path, atomic_write_bytes, sha256, write_json
from make_us_rich.preprocessing import save_scaler
from make_us_rich.training.config import TrainConfig
from make_us_rich.training.evaluate import (
    COVERAGE_BAND,
    DEFAULT_TOLERANCE,
    evaluate_model,
    gate_served_horizons,
    promotion_gate,
)

MODEL_CARD_SCHEMA = "make-us-rich/model-card/v3"
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
    features: pd.DataFrame,
    test_start,
    gate_tolerance: float = DEFAULT_TOLERANCE,
    coverage_band: tuple[float, float] = COVERAGE_BAND,
    model_info: dict[str, Any] | None = None,
    keras_model: str | Path | None = None,
    horizons: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """Evaluate the exported model on the test period (forecast hours from ``test_start`` on,
    ``features`` holding the history before it) beside the baselines, apply the gate and write
    every artifact into ``out_dir`` (replaced as a whole). Returns metrics.json's content.
    ``model_info`` (a universal model: its symbols, the inputs it reads, those this symbol
    lacks) goes into the card and metrics as ``universal``; ``keras_model`` (its Keras file) is
    kept beside as ``model.keras`` for the next run's warm start. ``horizons`` (a model of
    several, issue 22): each is scored and gated on its own (metrics' ``horizons``, the gate's
    ``horizons`` and ``served_horizons``: what the store's pointer lets the server answer); the
    model is refused only when its 1-hour horizon fails."""
    from make_us_rich.preprocessing.windows import unavailable_inputs
    from make_us_rich.training.plots import plot_calibration, plot_fan_chart, plot_training_curves

    sym = normalize_symbol(symbol)
    evaluation = evaluate_model(model_bytes, features, config.sequence_length, start=test_start)
    test_metrics = evaluation.metrics
    gate = promotion_gate(test_metrics, bool(parity.get("passed")), gate_tolerance, coverage_band)
    gate_record = gate.to_dict()
    hs: tuple[int, ...] = tuple(int(h) for h in horizons or (1,))
    multi = hs != (1,)
    if multi:
        per_horizon = gate_served_horizons(model_bytes, features, config.sequence_length, hs,
                                           start=test_start, one_hour=gate, parity_passed=bool(parity.get("passed")),
                                           tolerance=gate_tolerance, coverage_band=coverage_band)
        gate_record.update(horizons=per_horizon["gates"], served_horizons=per_horizon["served"])
    metrics = {
        "symbol": sym,
        "test": test_metrics,
        "gate": gate_record,
        "parity": parity,
        "training": training,
        "inputs": {"used": list(config.inputs), "unavailable": list(unavailable_inputs(features))},
    }
    if model_info:
        metrics["universal"] = model_info
    if multi:
        metrics["horizons"] = per_horizon["scores"]
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        atomic_write_bytes(staging / contract.MODEL_FILE, model_bytes)
        if keras_model is not None:
            shutil.copyfile(keras_model, staging / contract.STATE_FILES[0])
        save_scaler(scaler, staging)
        write_json(staging / "metrics.json", metrics)
        write_predictions(evaluation.predictions, staging / "predictions.csv")
        write_json(staging / "history.json", history)
        plot_training_curves(
            history, training["best_epoch"], staging / "training_curves.png",
            initial_val_loss=training.get("initial_val_loss"),
        )
        plot_fan_chart(evaluation.predictions, sym, staging / "fan_chart.png")
        plot_calibration(evaluation.reliability, sym, staging / "calibration.png")
        card = {
            "schema": MODEL_CARD_SCHEMA,
            "symbol": sym,
            "interval": interval,
            "model_name": contract.model_name(sym),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "data": data,
            "features": list(contract.FEATURES),
            "target": "log return to the next close (quantiles " + ", ".join(f"{q:g}" for q in contract.QUANTILES) + ")",
            "sequence_length": config.sequence_length,
            **contract.signature(config.sequence_length, len(contract.FEATURES), len(hs) if multi else 0),
            **({"horizons": list(hs)} if multi else {}),
            "opset": contract.OPSET,
            "hyperparameters": config.to_dict(),
            "inputs": metrics["inputs"],
            **({"universal": model_info} if model_info else {}),
            "metrics": test_metrics,
            "gate": gate_record,
            "parity": parity,
            "training": training,
            "versions": library_versions(),
        }
        card["files"] = {
            name: sha256(staging / name) for name in ARTIFACTS
            if name != "model_card.json" and (staging / name).is_file()
        }
        write_json(staging / "model_card.json", card)
        staging.chmod(0o755)  # mkdtemp makes it private; artifacts are meant to be shared
        swap_into_place(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return metrics


def write_predictions(predictions: pd.DataFrame, path: str | Path) -> None:
    """``predictions.csv``: one row per forecast hour (``timestamp`` of the forecast candle, UTC
    ISO 8601), ``last_close``, ``close`` (actual) and the quantile closes, 10 significant digits."""
    with atomic_path(path) as tmp:
        predictions.to_csv(tmp, index=False, float_format="%.10g")


def swap_into_place(staging: Path, out: Path) -> None:
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
