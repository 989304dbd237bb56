"""Stages 6-7: the Keras LSTM, its honest evaluation and the self-contained ONNX export.

``config`` and ``evaluate`` are light (no TensorFlow); ``model``, ``train``, ``export`` and
``workflow.train_from_klines`` need the ``train`` extra.
"""

from make_us_rich.training.config import PRESETS, TrainConfig, preset
from make_us_rich.training.evaluate import GateDecision, evaluate_forecast, promotion_gate

__all__ = ["PRESETS", "GateDecision", "TrainConfig", "evaluate_forecast", "preset", "promotion_gate"]
