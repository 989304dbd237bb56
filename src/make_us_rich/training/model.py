"""Keras layers shared by the forecaster's graphs (the ``train`` extra; imports TensorFlow).
The quantile forecaster itself is :mod:`make_us_rich.training.quantile_model`."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras


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
