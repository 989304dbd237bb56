"""The promotion gate and the configuration, against hand-made values (no TensorFlow)."""

from __future__ import annotations

import pytest

from make_us_rich.errors import ConfigError
from make_us_rich.training import TrainConfig, preset, promotion_gate


def _metrics(pinball_ratio, coverage90, rmse_ratio):
    return {
        "ratio": {"pinball_vs_empirical": pinball_ratio, "median_rmse_vs_persistence": rmse_ratio},
        "model": {"intervals": {"90": {"coverage": coverage90}, "50": {"coverage": 0.5}}},
    }


@pytest.mark.parametrize(
    "pinball, coverage, rmse, parity, tolerance, passed, reason",
    [
        (0.96, 0.90, 1.0, True, 0.02, True, "mean pinball ratio vs empirical quantiles 0.9600 <= 1.0200"),
        (1.02, 0.90, 1.0, True, 0.02, True, "1.0200 <= 1.0200"),
        (1.0201, 0.90, 1.0, True, 0.02, False, "mean pinball ratio vs empirical quantiles 1.0201 > 1.0200"),
        (0.96, 0.84, 1.0, True, 0.02, False, "90 % interval coverage 0.840 outside 0.85-0.95"),
        (0.96, 0.951, 1.0, True, 0.02, False, "outside 0.85-0.95"),
        (0.96, 0.85, 1.0, True, 0.02, True, "0.850 within 0.85-0.95"),
        (0.96, 0.90, 1.03, True, 0.02, False, "median RMSE ratio vs persistence 1.0300 > 1.0200"),
        (0.96, 0.90, 1.04, True, 0.05, True, "1.0400 <= 1.0500"),
        (0.90, 0.90, 1.0, False, 0.02, False, "ONNX parity failed"),
        (None, 0.90, 1.0, True, 0.02, False, "no score"),
    ],
)
def test_gate(pinball, coverage, rmse, parity, tolerance, passed, reason):
    decision = promotion_gate(_metrics(pinball, coverage, rmse), parity, tolerance)
    assert decision.passed is passed
    assert any(reason in r for r in decision.reasons), decision.reasons
    assert decision.to_dict()["tolerance"] == tolerance
    assert len(decision.reasons) == 4  # every check is recorded, passed or not


def test_gate_rejects_a_bad_tolerance_or_band():
    with pytest.raises(ConfigError):
        promotion_gate(_metrics(1.0, 0.9, 1.0), True, -0.1)
    with pytest.raises(ConfigError, match="coverage band"):
        promotion_gate(_metrics(1.0, 0.9, 1.0), True, 0.02, (0.95, 0.85))
    assert not promotion_gate(_metrics(0.9, 0.9, 1.0), True, 0.02, (0.92, 0.99)).passed


def test_config_validation_and_presets():
    assert TrainConfig().lstm_units == 32 and TrainConfig().sequence_length == 48
    assert preset("tiny").lstm_units == 8
    with pytest.raises(ConfigError, match="inputs must be"):
        TrainConfig(inputs=("open",))
    with pytest.raises(ConfigError, match="median must be"):
        TrainConfig(median="mean")
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("huge")
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainConfig.from_dict({"epochs": 3})
    cfg = TrainConfig().with_overrides(max_epochs=3, seed=None)
    assert cfg.max_epochs == 3 and cfg.seed == 42
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
