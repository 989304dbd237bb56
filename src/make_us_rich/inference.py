"""Running an exported forecaster with onnxruntime (no TensorFlow): shared by the trainer's
parity check, the KServe predictor and the benchmarks."""

from __future__ import annotations

import numpy as np

from make_us_rich import contract
from make_us_rich.errors import MakeUsRichError


class ModelSignatureError(MakeUsRichError, ValueError):
    """The ONNX model does not have the forecaster's input/output signature."""


def onnx_session(model_bytes: bytes, intra_op_threads: int = 0):
    """An onnxruntime CPU session (quiet logs). ``intra_op_threads=0``: onnxruntime decides."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = intra_op_threads
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def check_signature(session, sequence_length: int, n_features: int, horizons: bool = False) -> None:
    """Raise :class:`ModelSignatureError` unless the session has the documented contract:
    input ``window`` float ``[batch, L, F]`` (batch dynamic) and the outputs of
    :data:`make_us_rich.contract.OUTPUTS`, in that order (``horizons``: then
    :data:`~make_us_rich.contract.HORIZON_OUTPUT_NAME`, a model of several horizons)."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    found = ([i.name for i in inputs], [o.name for o in outputs])
    expected = ([contract.INPUT_NAME], list(contract.OUTPUT_NAMES) + [contract.HORIZON_OUTPUT_NAME] * horizons)
    if found != expected:
        raise ModelSignatureError(f"model signature {found[0]} -> {found[1]}, expected {expected[0]} -> {expected[1]}")
    shape = inputs[0].shape
    if len(shape) != 3 or isinstance(shape[0], int) or list(shape[1:]) != [sequence_length, n_features]:
        raise ModelSignatureError(
            f"model input shape {shape}, expected [batch, {sequence_length}, {n_features}] with a "
            "dynamic batch dimension"
        )
    if inputs[0].type != "tensor(float)":
        raise ModelSignatureError(f"model input type {inputs[0].type}, expected tensor(float)")


def predict_all(session, windows: np.ndarray) -> dict[str, np.ndarray]:
    """Raw windows float32 ``[batch, L, F]`` -> every output of the contract, by name (and a
    model of several horizons' :data:`~make_us_rich.contract.HORIZON_OUTPUT_NAME`)."""
    names = list(contract.OUTPUT_NAMES)
    if any(o.name == contract.HORIZON_OUTPUT_NAME for o in session.get_outputs()):
        names.append(contract.HORIZON_OUTPUT_NAME)
    return dict(zip(names, session.run(names, {contract.INPUT_NAME: windows}), strict=True))


def predict(session, windows: np.ndarray) -> np.ndarray:
    """Raw windows float32 ``[batch, L, F]`` -> the point forecast (next close) ``[batch, 1]``."""
    return session.run([contract.OUTPUT_NAME], {contract.INPUT_NAME: windows})[0]
