"""Evaluation metrics and the promotion gate, against hand-computed values (no TensorFlow)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from make_us_rich.errors import ConfigError
from make_us_rich.training import TrainConfig, evaluate_forecast, preset, promotion_gate


def test_metrics_equal_hand_computed_values():
    last = np.array([100.0, 102.0, 101.0, 105.0])
    true = np.array([102.0, 101.0, 105.0, 105.0])
    pred = np.array([101.0, 103.0, 104.0, 106.0])
    m = evaluate_forecast(true, pred, last)
    # model errors: -1, 2, -1, 1
    assert m["model"]["rmse"] == pytest.approx(math.sqrt((1 + 4 + 1 + 1) / 4))
    assert m["model"]["mae"] == pytest.approx(5 / 4)
    assert m["model"]["mape"] == pytest.approx(100 * (1 / 102 + 2 / 101 + 1 / 105 + 1 / 105) / 4)
    # directions on the 3 hours that moved: up/up, down/up, up/up -> 2 of 3
    assert m["model"]["directional_accuracy"] == pytest.approx(2 / 3)
    assert m["model"]["direction_call_rate"] == 1.0
    # persistence errors: -2, 1, -4, 0
    assert m["persistence"]["rmse"] == pytest.approx(math.sqrt((4 + 1 + 16 + 0) / 4))
    assert m["persistence"]["mae"] == pytest.approx(7 / 4)
    assert m["persistence"]["directional_accuracy"] is None
    assert m["ratio"]["rmse"] == pytest.approx(math.sqrt(7 / 4) / math.sqrt(21 / 4))
    assert m["n"] == 4


def test_a_model_that_calls_no_move_has_no_directional_accuracy():
    last = np.array([100.0, 102.0, 101.0])
    true = np.array([102.0, 101.0, 105.0])
    m = evaluate_forecast(true, last * (1 + 1e-8), last)  # float noise around persistence
    assert m["model"]["directional_accuracy"] is None and m["model"]["direction_call_rate"] == 0.0
    assert m["ratio"]["rmse"] == pytest.approx(1.0)


def test_metrics_refuse_bad_input():
    with pytest.raises(ConfigError, match="equal length"):
        evaluate_forecast(np.ones(3), np.ones(2), np.ones(3))
    with pytest.raises(ConfigError, match="NaN"):
        evaluate_forecast(np.ones(3), np.array([1.0, np.nan, 1.0]), np.ones(3))


def _metrics(ratio):
    return {"ratio": {"rmse": ratio}}


@pytest.mark.parametrize(
    "ratio, parity, tolerance, passed, reason",
    [
        (0.97, True, 0.02, True, "0.9700 <= 1.0200"),
        (1.02, True, 0.02, True, "1.0200 <= 1.0200"),
        (1.0201, True, 0.02, False, "worse than persistence by more than 2.0%"),
        (1.04, True, 0.05, True, "1.0400 <= 1.0500"),
        (0.90, False, 0.02, False, "ONNX parity failed"),
        (None, True, 0.02, False, "no price moves"),
    ],
)
def test_gate(ratio, parity, tolerance, passed, reason):
    decision = promotion_gate(_metrics(ratio), parity, tolerance)
    assert decision.passed is passed
    assert any(reason in r for r in decision.reasons), decision.reasons
    assert decision.to_dict()["tolerance"] == tolerance


def test_gate_rejects_negative_tolerance():
    with pytest.raises(ConfigError):
        promotion_gate(_metrics(1.0), True, -0.1)


def test_config_validation_and_presets():
    assert TrainConfig().lstm_units == (64,)
    assert preset("large").lstm_units == (128, 128) and preset("large").sequence_length == 120
    with pytest.raises(ConfigError, match="dropout must be in"):
        TrainConfig(dropout=1.5)
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("huge")
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainConfig.from_dict({"epochs": 3})
    cfg = TrainConfig().with_overrides(max_epochs=3, seed=None)
    assert cfg.max_epochs == 3 and cfg.seed == 42
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
