"""Stage 7: a self-contained ONNX model, checked for validity and numeric parity.

The exported graph folds the MinMax scaling of the inputs and the inverse scaling of the output
around the trained network, so it takes *raw* feature windows float32
``[batch, sequence_length, n_features]`` (input ``window``, batch dynamic) and returns the next
close in price units float32 ``[batch, 1]`` (output ``next_close``), opset 17.

A conversion that fails ``onnx.checker`` or parity raises :class:`ExportError` and writes nothing.
Parity: onnxruntime on raw windows vs (scikit-learn scaler -> Keras -> inverse scaling) in
float64 on the same windows; max relative error <= ``PARITY_RTOL`` (1e-4).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.preprocessing import MinMaxScaler

from make_us_rich import contract
from make_us_rich.contract import INPUT_NAME, OPSET, OUTPUT_NAME
from make_us_rich.errors import MakeUsRichError
from make_us_rich.inference import onnx_session
from make_us_rich.inference import predict as onnx_predict

PARITY_RTOL = 1e-4


class ExportError(MakeUsRichError, RuntimeError):
    """The ONNX export is invalid or does not reproduce the trained model."""


@dataclass
class ParityReport:
    n_windows: int
    max_abs_error: float
    max_rel_error: float
    rtol: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fold_scaling(model, scaler: MinMaxScaler, target_index: int):
    """Wrap a Keras model on scaled windows into one on raw windows returning price units."""
    import keras

    seq_len, n_features = model.input_shape[1:]
    if n_features != len(scaler.scale_):
        raise ExportError(f"model expects {n_features} features, the scaler has {len(scaler.scale_)}")
    raw = keras.Input((seq_len, n_features), name=INPUT_NAME)
    scaled = keras.layers.Rescaling(
        scale=scaler.scale_.astype("float32"), offset=scaler.min_.astype("float32"), name="minmax"
    )(raw)
    y_scaled = model(scaled)
    s, m = float(scaler.scale_[target_index]), float(scaler.min_[target_index])
    price = keras.layers.Rescaling(scale=1.0 / s, offset=-m / s, name=OUTPUT_NAME)(y_scaled)
    return keras.Model(raw, price, name="make_us_rich_forecaster")


def to_onnx(model, scaler: MinMaxScaler, target_index: int) -> bytes:
    """Convert with tf2onnx (opset 17, dynamic batch named ``batch``) and run ``onnx.checker``."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    full = fold_scaling(model, scaler, target_index)
    seq_len, n_features = full.input_shape[1:]
    spec = (tf.TensorSpec((None, seq_len, n_features), tf.float32, name=INPUT_NAME),)
    try:
        proto, _ = tf2onnx.convert.from_keras(full, input_signature=spec, opset=OPSET)
    except Exception as exc:  # tf2onnx raises many types
        raise ExportError(f"tf2onnx could not convert the model: {exc}") from exc
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    names = ([i.name for i in proto.graph.input], [o.name for o in proto.graph.output])
    if names != ([INPUT_NAME], list(contract.OUTPUT_NAMES)):
        raise ExportError(f"unexpected ONNX signature {names}; expected ([{INPUT_NAME}], {list(contract.OUTPUT_NAMES)})")
    proto.producer_name = "make-us-rich"
    _canonical_names(proto)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker rejected the model: {exc}") from exc
    return proto.SerializeToString()


def _canonical_names(proto) -> None:
    """Put nodes in a canonical topological order and rename nodes and inner tensors by it.
    tf2onnx names (and so orders) them with process-wide counters, so the same weights
    converted in two processes (``mkrich train`` and a pipeline component) would give
    different bytes; after this, same model -> same ``model.onnx``."""
    import hashlib

    import onnx

    graph = proto.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
           for node in graph.node for a in node.attribute):
        return  # subgraphs may refer to outer names: leave such a graph as converted
    keep = {v.name for v in (*graph.input, *graph.output)}
    known = {name: name for name in keep}  # name -> structural label while ordering
    for init in graph.initializer:
        if init.name not in keep:
            known[init.name] = "c" + hashlib.sha256(init.SerializeToString(deterministic=True).replace(
                init.name.encode(), b"")).hexdigest()[:16]

    def key(node) -> tuple:
        attrs = b"".join(a.SerializeToString(deterministic=True) for a in node.attribute)
        return (node.op_type, tuple(known.get(n, "") for n in node.input), attrs, node.domain)

    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(not i or i in known for i in n.input)]
        if not ready:
            return  # not a DAG over known names: leave it as converted
        node = min(ready, key=key)
        pending.remove(node)
        ordered.append(node)
        for out in node.output:
            if out and out not in keep:
                known[out] = f"v{len(ordered)}.{list(node.output).index(out)}"
    names: dict[str, str] = {}

    def canon(name: str) -> str:
        if not name or name in keep:
            return name
        return names.setdefault(name, f"t{len(names)}")

    nodes = []
    for i, node in enumerate(ordered):
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = f"n{i}"
        copy.input[:] = [canon(n) for n in node.input]
        copy.output[:] = [canon(n) for n in node.output]
        nodes.append(copy)
    inits = []
    for init in graph.initializer:
        copy = onnx.TensorProto()
        copy.CopyFrom(init)
        copy.name = canon(init.name)
        inits.append(copy)
    inits.sort(key=lambda t: (not t.name[1:].isdigit(), int(t.name[1:]) if t.name[1:].isdigit() else 0))
    graph.ClearField("node")
    graph.node.extend(nodes)
    graph.ClearField("initializer")
    graph.initializer.extend(inits)
    infos = []
    for info in graph.value_info:
        if info.name in names:
            copy = onnx.ValueInfoProto()
            copy.CopyFrom(info)
            copy.name = names[info.name]
            infos.append(copy)
    infos.sort(key=lambda v: int(v.name[1:]))
    graph.ClearField("value_info")
    graph.value_info.extend(infos)


def reference_predict(model, scaler: MinMaxScaler, target_index: int, raw_windows: np.ndarray) -> np.ndarray:
    """The unexported path: scikit-learn scaling (float64) -> Keras -> inverse scaling."""
    n, seq_len, n_features = raw_windows.shape
    flat = raw_windows.reshape(-1, n_features).astype(np.float64)
    names = getattr(scaler, "feature_names_in_", None)
    scaled = scaler.transform(pd.DataFrame(flat, columns=names) if names is not None else flat)
    scaled = scaled.reshape(n, seq_len, n_features).astype(np.float32)
    y_scaled = np.asarray(model(scaled, training=False), dtype=np.float64).reshape(-1)
    return (y_scaled - scaler.min_[target_index]) / scaler.scale_[target_index]


def check_parity(
    model_bytes: bytes,
    model,
    scaler: MinMaxScaler,
    target_index: int,
    raw_windows: np.ndarray,
    rtol: float = PARITY_RTOL,
) -> ParityReport:
    """Compare the ONNX model (onnxruntime) with :func:`reference_predict` on real windows."""
    windows = np.ascontiguousarray(raw_windows, dtype=np.float32)
    onnx_out = onnx_predict(onnx_session(model_bytes), windows).reshape(-1)
    ref = reference_predict(model, scaler, target_index, windows)
    abs_err = np.abs(onnx_out.astype(np.float64) - ref)
    rel_err = abs_err / np.maximum(np.abs(ref), 1e-12)
    max_rel = float(rel_err.max()) if len(rel_err) else float("nan")
    return ParityReport(
        n_windows=len(windows),
        max_abs_error=float(abs_err.max()) if len(abs_err) else float("nan"),
        max_rel_error=max_rel,
        rtol=rtol,
        passed=bool(len(rel_err)) and bool(np.isfinite(onnx_out).all()) and max_rel <= rtol,
    )


def export_onnx(
    model, scaler: MinMaxScaler, target_index: int, raw_windows: np.ndarray, rtol: float = PARITY_RTOL
) -> tuple[bytes, ParityReport]:
    """Convert and verify. Raises :class:`ExportError` when parity fails: no model that only
    looks fine ever leaves this function."""
    model_bytes = to_onnx(model, scaler, target_index)
    parity = check_parity(model_bytes, model, scaler, target_index, raw_windows, rtol)
    if not parity.passed:
        raise ExportError(
            f"ONNX parity failed on {parity.n_windows} windows: max relative error "
            f"{parity.max_rel_error:.3g} > {rtol:g}"
        )
    return model_bytes, parity
