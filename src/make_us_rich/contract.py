"""The serving contract: names and shapes every part agrees on (trainer, ONNX export, model
store, KServe predictor, manifests). One source of truth, imported everywhere, tested.

The exported model is self-contained: it takes *raw* feature windows (prices in quote currency,
calendar numbers as they are) and returns the next close in price units.
"""

from __future__ import annotations

from make_us_rich.preprocessing.features import FEATURE_COLUMNS

#: ONNX input: float32 ``[batch, sequence_length, n_features]``, batch dimension dynamic.
INPUT_NAME = "window"
#: ONNX output: float32 ``[batch, 1]``, the predicted next close in price units.
OUTPUT_NAME = "next_close"
DATATYPE = "FP32"  # Open Inference Protocol name of float32
OPSET = 17
FEATURES: tuple[str, ...] = FEATURE_COLUMNS
MODEL_FILE = "model.onnx"


def model_name(symbol: str) -> str:
    """KServe/Triton model name of a symbol's forecaster (also the Triton folder name)."""
    return f"{symbol.lower()}-close"
