"""Kubeflow Pipelines v2 components (``make_us_rich.components``): one per stage of the loop.

Each is a thin shell: it maps typed KFP artifacts to paths and calls one function of
:mod:`make_us_rich.stages`. No ML logic lives here.
"""

from make_us_rich.components.stages import (
    convert_to_onnx,
    evaluate_and_gate,
    evaluate_and_publish,
    extract_features,
    fetch_klines,
    fetch_market,
    make_sequences,
    notify_run,
    publish_model,
    scale_features,
    split_dataset,
    train_lstm,
    train_universal,
)

__all__ = [
    "convert_to_onnx",
    "evaluate_and_gate",
    "evaluate_and_publish",
    "extract_features",
    "fetch_klines",
    "fetch_market",
    "make_sequences",
    "notify_run",
    "publish_model",
    "scale_features",
    "split_dataset",
    "train_lstm",
    "train_universal",
]
