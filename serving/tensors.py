"""Request tensors for the forecaster: parsing and validation of Open Inference Protocol v2 and
v1 bodies into float32 windows ``[batch, sequence_length, n_features]``. Framework-free (numpy),
so every rule here is tested without a server; the KServe predictor only calls it.

Every problem raises :class:`BadRequest` with a message naming the problem and the fix; the
server maps it to HTTP 400.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
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


def _check_tensor_header(name: Any, datatype: Any, shape: Any) -> int:
    """Name, datatype and shape of an input tensor; returns its number of values."""
    if name != contract.INPUT_NAME:
        raise BadRequest(f"unknown input {name!r}; the model's input is {contract.INPUT_NAME!r}")
    if datatype != contract.DATATYPE:
        raise BadRequest(f"input datatype must be {contract.DATATYPE}, got {datatype!r}")
    if not isinstance(shape, list | tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise BadRequest(f"shape must be a list of non-negative integers, got {shape!r}")
    return math.prod(shape)


def binary_input(tensor: Any) -> bytes | None:
    """The bytes of an input sent with the v2 binary tensor extension (``None``: sent as JSON
    ``data``), read through KServe's public decoder once the tensor's header is known good."""
    if tensor.data is not None:
        return None
    _check_tensor_header(tensor.name, tensor.datatype, tensor.shape)
    try:
        return tensor.as_numpy().astype("<f4", copy=False).tobytes()
    except ValueError:
        raise BadRequest(f"the binary data does not hold shape {list(tensor.shape)} of "
                         f"{contract.DATATYPE} values") from None


def check_binary_framing(header_length: bytes | str, body: bytes) -> None:
    """The framing of a v2 binary tensor extension body (``Inference-Header-Content-Length``
    bytes of JSON, then the tensors' bytes), checked before KServe slices the body with it."""
    text = header_length.decode("latin-1") if isinstance(header_length, bytes) else header_length
    if not text.strip().isdigit() or not 0 < int(text) <= len(body):
        raise BadRequest(
            f"Inference-Header-Content-Length must be the byte length of the JSON header, an "
            f"integer between 1 and the body size {len(body)}; got {text[:40]!r}"
        )
    n = int(text)
    try:
        header = json.loads(body[:n])
    except ValueError:
        raise BadRequest(f"the first {n} bytes of the body (Inference-Header-Content-Length) are not JSON") from None
    inputs = header.get("inputs") if isinstance(header, dict) else None
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise BadRequest('the JSON header must be an object {"inputs": [{"name", "shape", "datatype", ...}]}')
    total = 0
    for tensor in inputs:
        values = _check_tensor_header(tensor.get("name"), tensor.get("datatype"), tensor.get("shape"))
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is None:
            continue
        if not isinstance(size, int) or isinstance(size, bool) or size != values * 4:
            raise BadRequest(
                f"binary_data_size of {tensor['name']!r} is {size!r}; shape {tensor['shape']} of "
                f"{contract.DATATYPE} needs {values * 4} bytes"
            )
        total += size
    if total != len(body) - n:
        raise BadRequest(
            f"the body holds {len(body) - n} bytes after the JSON header but binary_data_size "
            f"adds up to {total}"
        )


def parse_v2_input(
    name: str, datatype: str, shape: list[int], data: Any, raw: bytes | None,
    sequence_length: int, n_features: int, max_batch: int = DEFAULT_MAX_BATCH,
) -> np.ndarray:
    """One v2 input tensor (JSON ``data`` or binary ``raw``) -> validated windows."""
    expected = _check_tensor_header(name, datatype, shape)
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


#: What any window built by the features stage satisfies (checked for the features a model has).
_POSITIVE = ("open", "high", "low", "close", "norm_vol")
_NON_NEGATIVE = ("range_vol_6h", "range_vol_24h", "range_vol_7d", "range_vol_30d", "bar_range",
                 "hour_vol", "volume_ratio", "trades_ratio")
_WHOLE_IN = {"hour": (0, 23), "day_of_week": (0, 6), "day_of_month": (1, 31), "week_of_year": (1, 53),
             "month": (1, 12)}
#: the largest move within the hour a sane forecast's 90 % interval may imply (x2 or /2)
MAX_MOVE = 2.0
_HINT = ("send raw features built as in training (make_us_rich.preprocessing; prices in the "
         "quote currency), see docs/serving.md")


def _where(mask: np.ndarray) -> str:
    """The first True of a ``[batch, L]`` mask: "window i, row j" (row 0 = oldest hour)."""
    window, row = np.argwhere(mask)[0]
    return f"window {window}, row {row}"


def _window(mask: np.ndarray) -> str:
    return f"window {np.argwhere(mask)[0][0]}"


def check_domain(windows: np.ndarray, features: Sequence[str]) -> None:
    """Refuse windows no features stage can produce (a calendar hour of 2,300,000, a negative
    price, a high below the low): the model's answer to them is meaningless, often not finite."""
    col = {name: windows[..., i] for i, name in enumerate(features)}
    for name in _POSITIVE:
        if name in col and (bad := ~(col[name] > 0)).any():
            raise BadRequest(f"{_where(bad)}: {name!r} must be > 0, got {col[name][bad][0]:g}; {_HINT}")
    for name in _NON_NEGATIVE:
        if name in col and (bad := col[name] < 0).any():
            raise BadRequest(f"{_where(bad)}: {name!r} must be >= 0, got {col[name][bad][0]:g}; {_HINT}")
    for name, (low, high) in _WHOLE_IN.items():
        if name in col:
            value = col[name]
            bad = (value < low) | (value > high) | (value != np.round(value))
            if bad.any():
                raise BadRequest(f"{_where(bad)}: {name!r} must be a whole number from {low} to {high}, "
                                 f"got {value[bad][0]:g}; {_HINT}")
    if {"open", "high", "low", "close"} <= col.keys():
        top = np.maximum(col["open"], col["close"])
        bottom = np.minimum(col["open"], col["close"])
        bad = (col["high"] < top) | (col["low"] > bottom)
        if bad.any():
            raise BadRequest(f"{_where(bad)}: a candle needs low <= open, close <= high; {_HINT}")


def check_forecasts(windows: np.ndarray, outputs: dict[str, np.ndarray], features: Sequence[str],
                    horizons: Sequence[int] = ()) -> None:
    """Refuse to answer forecasts that are not finite, whose quantiles are not ordered, or whose
    90 % interval implies the close doubling or halving within the hour (at ``h`` hours, the rows
    of ``quantile_close_horizons`` in ``horizons``' order: moving beyond x2^sqrt(h)): the windows
    are outside what the model can forecast, even if they passed :func:`check_domain`."""
    for name, values in outputs.items():
        if not np.isfinite(values).all():
            raise BadRequest(f"the model's {name} for {_window(~np.isfinite(values))} is not finite: the "
                             f"window is outside what it can forecast; {_HINT}")
    quantiles = outputs.get(contract.QUANTILE_OUTPUT_NAME)
    if quantiles is None:
        return
    if (bad := np.diff(quantiles, axis=1) < 0).any():
        raise BadRequest(f"the model's quantiles for {_window(bad)} are not ordered: the window is "
                         f"outside what it can forecast; {_HINT}")
    by_horizon = outputs.get(contract.HORIZON_OUTPUT_NAME)
    if by_horizon is not None and (bad := np.diff(by_horizon, axis=-1) < 0).any():
        raise BadRequest(f"the model's quantiles at a longer horizon for {_window(bad)} are not ordered: the "
                         f"window is outside what it can forecast; {_HINT}")
    if "close" in features:
        close = windows[:, -1, list(features).index("close"), None]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = quantiles / close
        bad = ~((ratio >= 1 / MAX_MOVE) & (ratio <= MAX_MOVE))
        if bad.any():
            raise BadRequest(f"the model's forecast for {_window(bad)} moves the close beyond x{MAX_MOVE:g} "
                             f"or /{MAX_MOVE:g} within the hour: the window is outside what it can "
                             f"forecast; {_HINT}")
        if by_horizon is not None and len(horizons) == by_horizon.shape[1]:
            limit = MAX_MOVE ** np.sqrt(np.asarray(horizons, dtype=float))[None, :, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = by_horizon / close[:, :, None]
            bad = ~((ratio >= 1 / limit) & (ratio <= limit))
            if bad.any():
                raise BadRequest(f"the model's forecast at a longer horizon for {_window(bad)} moves the close "
                                 f"beyond x{MAX_MOVE:g}^sqrt(hours): the window is outside what it can "
                                 f"forecast; {_HINT}")
