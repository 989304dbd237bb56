"""Honest evaluation: the model beside the naive persistence baseline, in price units, and the
promotion gate. Pure numpy: no TensorFlow, so the pipeline's gate step and tests run anywhere.

Persistence predicts that the next close equals the last close. A forecaster that does not beat
it (or at least match it) has learned nothing useful about the next hour.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from make_us_rich.errors import ConfigError

DEFAULT_TOLERANCE = 0.02  # the model may be at most 2 % worse than persistence in RMSE


def _errors(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    err = y_pred - y_true
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "mape": float(np.mean(np.abs(err) / np.abs(y_true)) * 100.0),
    }


#: A predicted change smaller than this (relative to the price) is "no call": float32 rounding
#: in the exported graph is ~1e-7, and a model that stays at persistence calls no direction.
CALL_THRESHOLD = 1e-6


def directional_accuracy(y_true: np.ndarray, y_pred: np.ndarray, last: np.ndarray) -> tuple[float | None, float]:
    """``(accuracy, call_rate)``: among the hours in which the close moved and the model called a
    move (predicted change above :data:`CALL_THRESHOLD`), the share with the right sign; and the
    share of hours with a call. Accuracy is ``None`` when the model made no call."""
    moved = y_true != last
    called = np.abs(y_pred - last) > CALL_THRESHOLD * np.abs(last)
    judged = moved & called
    call_rate = float(np.mean(called))
    if not judged.any():
        return None, call_rate
    hits = np.sign(y_pred[judged] - last[judged]) == np.sign(y_true[judged] - last[judged])
    return float(np.mean(hits)), call_rate


def evaluate_forecast(
    y_true: np.ndarray, y_pred: np.ndarray, last_close: np.ndarray
) -> dict[str, Any]:
    """Metrics of ``y_pred`` and of persistence (``last_close``) against ``y_true``, all in price
    units, with the ratios model / persistence.

    Persistence never predicts a move, so its directional accuracy is ``None`` (not 0 or 0.5),
    and so is a model's that calls no move.
    """
    y_true, y_pred, last = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (y_true, y_pred, last_close))
    if not (len(y_true) == len(y_pred) == len(last)) or len(y_true) == 0:
        raise ConfigError("y_true, y_pred and last_close must be non-empty and of equal length")
    if not (np.isfinite(y_true).all() and np.isfinite(y_pred).all() and np.isfinite(last).all()):
        raise ConfigError("predictions or targets contain NaN/inf")
    model = _errors(y_true, y_pred)
    model["directional_accuracy"], model["direction_call_rate"] = directional_accuracy(
        y_true, y_pred, last
    )
    persistence = _errors(y_true, last)
    persistence["directional_accuracy"], persistence["direction_call_rate"] = None, 0.0
    ratio = {
        k: (model[k] / persistence[k] if persistence[k] > 0 else None) for k in ("rmse", "mae", "mape")
    }
    return {"n": len(y_true), "model": model, "persistence": persistence, "ratio": ratio}


@dataclass
class GateDecision:
    """Whether a model may be published, and why. Recorded in metrics.json and the model card."""

    passed: bool
    tolerance: float
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def promotion_gate(
    metrics: dict[str, Any], parity_passed: bool, tolerance: float = DEFAULT_TOLERANCE
) -> GateDecision:
    """A model is published only if its ONNX export passed numeric parity *and* its test RMSE is
    at most ``(1 + tolerance)`` x the persistence RMSE."""
    if tolerance < 0:
        raise ConfigError(f"gate tolerance must be >= 0, got {tolerance}")
    reasons = []
    ok = True
    if parity_passed:
        reasons.append("ONNX parity passed")
    else:
        ok = False
        reasons.append("ONNX parity failed")
    ratio = metrics["ratio"]["rmse"]
    limit = 1.0 + tolerance
    if ratio is None:
        ok = False
        reasons.append("persistence RMSE is 0: the test period has no price moves to judge on")
    elif ratio <= limit:
        reasons.append(f"RMSE ratio model/persistence {ratio:.4f} <= {limit:.4f}")
    else:
        ok = False
        reasons.append(
            f"RMSE ratio model/persistence {ratio:.4f} > {limit:.4f}: worse than persistence by "
            f"more than {tolerance:.1%}"
        )
    return GateDecision(passed=ok, tolerance=tolerance, reasons=reasons)
