"""Request tensors for the forecaster: parsing and validation of Open Inference Protocol v2 and
v1 bodies into float32 windows ``[batch, sequence_length, n_features]``. Framework-free (numpy),
so every rule here is tested without a server; the KServe predictor only calls it.

Every problem raises :class:`BadRequest` with a message naming the problem and the fix; the
server maps it to HTTP 400.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from make_us_rich import contract

DEFAULT_MAX_BATCH = 1024


class BadRequest(ValueError):
    """The request cannot be served as sent (HTTP 400)."""


def check_window(array: np.ndarray, sequence_length: int, n_features: int, max_batch: int) -> np.ndarray:
    """Validate a batch of windows; returns it as C-contiguous float32."""
    if array.ndim != 3 or tuple(array.shape[1:]) != (sequence_length, n_features):
        raise BadRequest(
            f"expected shape [batch, {sequence_length}, {n_features}] (windows of "
            f"{sequence_length} hours x {n_features} features: {', '.join(contract.FEATURES)}), "
            f"got {list(array.shape)}"
        )
    if array.shape[0] == 0:
        raise BadRequest("empty batch: send at least one window")
    if array.shape[0] > max_batch:
        raise BadRequest(f"batch of {array.shape[0]} windows exceeds the limit of {max_batch}; split it")
    if not np.isfinite(array).all():
        raise BadRequest("the windows contain NaN or infinity; send finite numbers")
    return np.ascontiguousarray(array, dtype=np.float32)


def parse_v2_input(
    name: str, datatype: str, shape: list[int], data: Any, raw: bytes | None,
    sequence_length: int, n_features: int, max_batch: int = DEFAULT_MAX_BATCH,
) -> np.ndarray:
    """One v2 input tensor (JSON ``data`` or binary ``raw``) -> validated windows."""
    if name != contract.INPUT_NAME:
        raise BadRequest(f"unknown input {name!r}; the model's input is {contract.INPUT_NAME!r}")
    if datatype != contract.DATATYPE:
        raise BadRequest(f"input datatype must be {contract.DATATYPE}, got {datatype!r}")
    if not isinstance(shape, list | tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise BadRequest(f"shape must be a list of non-negative integers, got {shape!r}")
    expected = math.prod(shape)
    if raw is not None:
        if len(raw) != expected * 4:
            raise BadRequest(f"binary data holds {len(raw)} bytes; shape {list(shape)} needs {expected * 4}")
        flat = np.frombuffer(raw, dtype="<f4")
    else:
        try:
            parsed = np.asarray(data)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"data must be a (nested) list of numbers: {exc}") from None
        if parsed.dtype.kind not in "iuf":  # strings, booleans, ragged lists, null
            raise BadRequest("data must be numbers (JSON numbers, not strings or null)")
        flat = parsed.astype(np.float32).reshape(-1)
        if flat.size != expected:
            raise BadRequest(
                f"data holds {flat.size} value(s) but shape {list(shape)} needs {expected}"
            )
    return check_window(flat.reshape(shape), sequence_length, n_features, max_batch)


def parse_v1_body(body: Any, sequence_length: int, n_features: int, max_batch: int = DEFAULT_MAX_BATCH) -> np.ndarray:
    """``{"instances": [window, ...]}`` with each window ``[sequence_length][n_features]``."""
    if not isinstance(body, dict) or "instances" not in body:
        raise BadRequest('a v1 request body must be a JSON object {"instances": [window, ...]}')
    instances = body["instances"]
    if not isinstance(instances, list):
        raise BadRequest('"instances" must be a list of windows')
    try:
        array = np.asarray(instances, dtype=np.float32)
    except (TypeError, ValueError):
        raise BadRequest(
            f"each instance must be a {sequence_length} x {n_features} array of numbers"
        ) from None
    if array.size == 0:
        raise BadRequest("empty batch: send at least one window")
    return check_window(array, sequence_length, n_features, max_batch)
