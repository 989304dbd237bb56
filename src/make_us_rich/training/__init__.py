"""Stages 6-8: the quantile LSTM, its self-contained ONNX export and its honest evaluation.
``config``, ``evaluate``, ``report``, ``artifacts`` and ``plots`` need no TensorFlow;
``quantile_model``, ``model`` (its quantile layer), ``train`` (its callbacks) and ``export``
need the ``train`` extra.
"""

from make_us_rich.training.config import PRESETS, TrainConfig, preset
from make_us_rich.training.evaluate import GateDecision, evaluate_model, promotion_gate

__all__ = ["PRESETS", "GateDecision", "TrainConfig", "evaluate_model", "preset", "promotion_gate"]
