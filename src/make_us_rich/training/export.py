"""Stage 7: a self-contained ONNX model, checked for validity and numeric parity.

The Keras serving graph already holds everything (volatility normalization, the MinMax scaler,
the LSTM and the way back to prices), so the export takes *raw* feature windows float32
``[batch, sequence_length, n_features]`` (input ``window``, batch dynamic) and returns the
outputs of :data:`make_us_rich.contract.OUTPUTS` in price units, opset 17.

A conversion that fails ``onnx.checker`` or parity raises :class:`ExportError` and writes nothing.
Parity: onnxruntime vs Keras on the same real windows, every output; max relative error <=
``PARITY_RTOL`` (1e-4). Node and tensor names are canonicalized, so the same weights give the
same bytes whichever process converts them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from make_us_rich import contract
from make_us_rich.errors import MakeUsRichError
from make_us_rich.inference import onnx_session

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


def in_contract_order(model, output_names: tuple[str, ...] = contract.OUTPUT_NAMES):
    """The Keras model with its outputs in the order of :data:`contract.OUTPUTS` (outputs are
    matched by the names of the layers that produce them); ``output_names``: the contract's
    followed by a multi-horizon model's extra output."""
    import keras

    by_name = dict(zip(model.output_names, model.outputs, strict=True))
    missing = [n for n in output_names if n not in by_name]
    if missing:
        raise ExportError(f"the model has no output(s) {missing}; it has {list(by_name)}")
    return keras.Model(model.inputs, [by_name[n] for n in output_names], name=model.name)


def to_onnx(model, output_names: tuple[str, ...] = contract.OUTPUT_NAMES) -> bytes:
    """Convert with tf2onnx (opset 17, dynamic batch named ``batch``) and run ``onnx.checker``."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    ordered = in_contract_order(model, output_names)
    seq_len, n_features = ordered.input_shape[1:]
    spec = (tf.TensorSpec((None, seq_len, n_features), tf.float32, name=contract.INPUT_NAME),)
    try:
        proto, _ = tf2onnx.convert.from_keras(ordered, input_signature=spec, opset=contract.OPSET)
    except Exception as exc:  # tf2onnx raises many types
        raise ExportError(f"tf2onnx could not convert the model: {exc}") from exc
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    names = ([i.name for i in proto.graph.input], [o.name for o in proto.graph.output])
    expected = ([contract.INPUT_NAME], list(output_names))
    if names != expected:
        raise ExportError(f"unexpected ONNX signature {names}; expected {expected}")
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
    for node in graph.node:  # constant tensors inside attributes carry counter-made names too
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                a.t.name = ""
            for t in a.tensors:
                t.name = ""
        node.doc_string = ""
    keep = {v.name for v in (*graph.input, *graph.output)}
    known = {v.name: v.name for v in graph.input}  # available name -> structural label
    for init in graph.initializer:
        if init.name not in keep:
            unnamed = onnx.TensorProto()
            unnamed.CopyFrom(init)
            unnamed.name = ""
            known[init.name] = "c" + hashlib.sha256(unnamed.SerializeToString(deterministic=True)).hexdigest()[:16]

    def key(node) -> tuple:
        attrs = b"".join(a.SerializeToString(deterministic=True) for a in node.attribute)
        return (node.op_type, tuple(known.get(n, "") for n in node.input), attrs, node.domain)

    pending, ordered = list(graph.node), []
    first: dict[tuple, Any] = {}  # structural key -> the node that computes it
    alias: dict[str, str] = {}  # output of a dropped duplicate -> the same value's first name
    while pending:
        ready = [n for n in pending if all(not i or i in known for i in n.input)]
        if not ready:
            return  # not a DAG over known names: leave it as converted
        node = min(ready, key=key)
        pending.remove(node)
        k = key(node)
        twin = first.get(k)
        if twin is not None and not set(node.output) & keep:
            # the same op on the same inputs (tf2onnx repeats Shape/Slice/... pieces): one copy,
            # else which twin comes first would depend on tf2onnx's counters
            for out, same in zip(node.output, twin.output, strict=True):
                alias[out], known[out] = same, known[same]
            continue
        first.setdefault(k, node)
        ordered.append(node)
        for out in node.output:
            if out:
                known[out] = out if out in keep else f"v{len(ordered)}.{list(node.output).index(out)}"
    names: dict[str, str] = {}

    def canon(name: str) -> str:
        name = alias.get(name, name)
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


def check_parity(model_bytes: bytes, model, raw_windows: np.ndarray, rtol: float = PARITY_RTOL,
                 output_names: tuple[str, ...] = contract.OUTPUT_NAMES) -> ParityReport:
    """onnxruntime vs the Keras serving graph on the same raw windows, every output."""
    windows = np.ascontiguousarray(raw_windows, dtype=np.float32)
    session = onnx_session(model_bytes)
    got = dict(zip(output_names, session.run(list(output_names), {contract.INPUT_NAME: windows}), strict=True))
    ref = dict(zip(output_names, in_contract_order(model, output_names)(windows, training=False), strict=True))
    a = np.hstack([got[n].reshape(len(windows), -1) for n in output_names]).astype(np.float64)
    b = np.hstack([np.asarray(ref[n], dtype=np.float64).reshape(len(windows), -1) for n in output_names])
    abs_err = np.abs(a - b)
    rel = abs_err / np.maximum(np.abs(b), 1e-12)
    max_rel = float(rel.max()) if rel.size else float("nan")
    return ParityReport(
        n_windows=len(windows),
        max_abs_error=float(abs_err.max()) if abs_err.size else float("nan"),
        max_rel_error=max_rel,
        rtol=rtol,
        passed=bool(rel.size) and bool(np.isfinite(a).all()) and max_rel <= rtol,
    )


def export_onnx(model, raw_windows: np.ndarray, rtol: float = PARITY_RTOL,
                output_names: tuple[str, ...] = contract.OUTPUT_NAMES) -> tuple[bytes, ParityReport]:
    """Convert and verify. Raises :class:`ExportError` when parity fails: no model that only
    looks fine ever leaves this function."""
    model_bytes = to_onnx(model, output_names)
    parity = check_parity(model_bytes, model, raw_windows, rtol, output_names)
    if not parity.passed:
        raise ExportError(
            f"ONNX parity failed on {parity.n_windows} windows: max relative error "
            f"{parity.max_rel_error:.3g} > {rtol:g}"
        )
    return model_bytes, parity
