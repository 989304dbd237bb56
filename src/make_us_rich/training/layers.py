"""The custom Keras layers of the forecaster's served graph (the ``train`` extra; imports
TensorFlow), built and trained by :mod:`make_us_rich.training.quantile_model`. Each is registered
under ``make_us_rich>NAME``: that name, not this module's, is what a saved ``model.keras`` (a
warm start's) refers to, so a layer may move between modules but not be renamed."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from make_us_rich.baselines import RANGE_FLOOR
from make_us_rich.preprocessing.windows import KIND_ORDER, LOG_FLOOR


@keras.saving.register_keras_serializable(package="make_us_rich")
class LastValue(keras.layers.Layer):
    """``x[:, -1, index:index+1]``: one feature of the window's last step (the last close)."""

    def __init__(self, index: int, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, x):
        return x[:, -1, self.index : self.index + 1]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)

    def get_config(self):
        return {**super().get_config(), "index": self.index}


@keras.saving.register_keras_serializable(package="make_us_rich")
class VolatilityTransform(keras.layers.Layer):
    """Raw feature window ``[B, L, F]`` -> the LSTM's stationary inputs ``[B, L, n_inputs]``,
    grouped by kind (``log_vol``, ``vol``, ``log``), divided by the last step's ``norm_vol``."""

    def __init__(self, groups: dict[str, list[int]], norm_index: int, **kwargs):
        super().__init__(**kwargs)
        self.groups = {k: [int(i) for i in v] for k, v in groups.items()}
        self.norm_index = int(norm_index)

    def call(self, x):
        ops = keras.ops
        v = x[:, -1:, self.norm_index : self.norm_index + 1]
        parts = []
        for kind in KIND_ORDER:
            idx = self.groups.get(kind)
            if not idx:
                continue
            cols = ops.take(x, idx, axis=2)
            if kind == "log_vol":
                parts.append(ops.log(ops.maximum(cols / v, LOG_FLOOR)))
            elif kind == "vol":
                parts.append(cols / v)
            else:
                parts.append(ops.log(ops.maximum(cols, LOG_FLOOR)))
        return ops.concatenate(parts, axis=2) if len(parts) > 1 else parts[0]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], sum(len(v) for v in self.groups.values()))

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "norm_index": self.norm_index}


@keras.saving.register_keras_serializable(package="make_us_rich")
class MonotoneQuantiles(keras.layers.Layer):
    """``[B, 5]`` free outputs -> monotone quantiles: the median (or 0) and cumulative softplus
    steps down to q25, q05 and up to q75, q95."""

    def __init__(self, zero_median: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.zero_median = bool(zero_median)

    def call(self, h):
        ops = keras.ops
        median = ops.zeros_like(h[:, 2:3]) if self.zero_median else h[:, 2:3]
        steps = ops.softplus(h)
        q25 = median - steps[:, 1:2]
        q05 = q25 - steps[:, 0:1]
        q75 = median + steps[:, 3:4]
        q95 = q75 + steps[:, 4:5]
        return ops.concatenate([q05, q25, median, q75, q95], axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "zero_median": self.zero_median}


@keras.saving.register_keras_serializable(package="make_us_rich")
class SpreadScale(keras.layers.Layer):
    """``q -> median + s * (q - median)`` per quantile, ``s`` fixed after training by
    :func:`calibrate_spread` (ones: identity). Outer scales are kept >= inner ones on each side,
    so the quantiles stay monotone."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", trainable=False, name="scale")

    def call(self, q):
        median = q[:, 2:3]
        return median + self.scale[None, :] * (q - median)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="make_us_rich")
class ToPrice(keras.layers.Layer):
    """``(raw window, log-return quantiles)`` -> closes: last close * exp(quantile)."""

    def __init__(self, close_index: int, **kwargs):
        super().__init__(**kwargs)
        self.close_index = int(close_index)

    def call(self, inputs):
        x, r = inputs
        return x[:, -1, self.close_index : self.close_index + 1] * keras.ops.exp(r)

    def compute_output_shape(self, input_shapes):
        return input_shapes[1]

    def get_config(self):
        return {**super().get_config(), "close_index": self.close_index}


@keras.saving.register_keras_serializable(package="make_us_rich")
class HarQuantiles(keras.layers.Layer):
    """:class:`~make_us_rich.baselines.HarFit` in the graph: the last step's regressors ->
    log-return quantiles ``exp(coef @ [1, log regressors]) * z_quantiles``."""

    def __init__(self, indices: list[int], coef: list[float], z_quantiles: list[float], **kwargs):
        super().__init__(**kwargs)
        self.indices = [int(i) for i in indices]
        self.coef = [float(c) for c in coef]
        self.z_quantiles = [float(q) for q in z_quantiles]

    def call(self, x):
        ops = keras.ops
        regressors = ops.take(x[:, -1, :], self.indices, axis=1)
        logs = ops.log(ops.maximum(regressors, RANGE_FLOOR))
        weights = ops.convert_to_tensor(np.asarray(self.coef[1:], dtype="float32"))
        scale = ops.exp(self.coef[0] + ops.sum(logs * weights[None, :], axis=1, keepdims=True))
        return scale * ops.convert_to_tensor(np.asarray(self.z_quantiles, dtype="float32"))[None, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self.z_quantiles))

    def get_config(self):
        return {**super().get_config(), "indices": self.indices, "coef": self.coef,
                "z_quantiles": self.z_quantiles}


@keras.saving.register_keras_serializable(package="make_us_rich")
class Column(keras.layers.Layer):
    """``x[:, index:index+1]`` of a ``[B, n]`` tensor (the median of the quantiles)."""

    def __init__(self, index: int, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, x):
        return x[:, self.index : self.index + 1]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)

    def get_config(self):
        return {**super().get_config(), "index": self.index}
