"""Running an exported forecaster with onnxruntime (no TensorFlow): shared by the trainer's
parity check, the KServe predictor and the benchmarks."""

from __future__ import annotations

import numpy as np

from make_us_rich import contract


class ModelSignatureError(ValueError):
    """The ONNX model does not have the forecaster's input/output signature."""


def onnx_session(model_bytes: bytes, intra_op_threads: int = 0):
    """An onnxruntime CPU session (quiet logs). ``intra_op_threads=0``: onnxruntime decides."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = intra_op_threads
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def check_signature(session, sequence_length: int, n_features: int) -> None:
    """Raise :class:`ModelSignatureError` unless the session has the documented contract:
    input ``window`` float ``[batch, L, F]`` (batch dynamic), output ``next_close``."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if [i.name for i in inputs] != [contract.INPUT_NAME] or [o.name for o in outputs] != [contract.OUTPUT_NAME]:
        raise ModelSignatureError(
            f"model signature {[i.name for i in inputs]} -> {[o.name for o in outputs]}, expected "
            f"[{contract.INPUT_NAME}] -> [{contract.OUTPUT_NAME}]"
        )
    shape = inputs[0].shape
    if len(shape) != 3 or isinstance(shape[0], int) or list(shape[1:]) != [sequence_length, n_features]:
        raise ModelSignatureError(
            f"model input shape {shape}, expected [batch, {sequence_length}, {n_features}] with a "
            "dynamic batch dimension"
        )
    if inputs[0].type != "tensor(float)":
        raise ModelSignatureError(f"model input type {inputs[0].type}, expected tensor(float)")


def predict(session, windows: np.ndarray) -> np.ndarray:
    """Raw windows float32 ``[batch, L, F]`` -> next close ``[batch, 1]`` float32."""
    return session.run([contract.OUTPUT_NAME], {contract.INPUT_NAME: windows})[0]
