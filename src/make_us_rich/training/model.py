"""The Keras 3 LSTM forecaster (the ``train`` extra; imports TensorFlow).

Two heads (``TrainConfig.head``):

* ``delta`` (default): output = last scaled close of the window + Dense(LSTM features), the
  Dense layer zero-initialized. Untrained, the model *is* persistence; training can only move it
  away from persistence where that lowers the validation loss. Robust when prices leave the
  train range (the README's head study).
* ``level``: Dense predicts the scaled close directly (the classic tutorial model).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from make_us_rich.contract import INPUT_NAME
from make_us_rich.training.config import TrainConfig


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


def build_model(config: TrainConfig, n_features: int, target_index: int) -> keras.Model:
    """The forecaster on *scaled* windows ``[batch, sequence_length, n_features]`` -> ``[batch, 1]``
    scaled next close. Compiled with Adam + MSE."""
    inputs = keras.Input((config.sequence_length, n_features), name=INPUT_NAME)
    x = inputs
    for i, units in enumerate(config.lstm_units):
        x = keras.layers.LSTM(
            units, return_sequences=i < len(config.lstm_units) - 1, name=f"lstm_{i}"
        )(x)
        if config.dropout:
            x = keras.layers.Dropout(config.dropout, name=f"dropout_{i}")(x)
    if config.head == "delta":
        delta = keras.layers.Dense(
            1, kernel_initializer="zeros", bias_initializer="zeros", name="delta"
        )(x)
        outputs = keras.layers.Add(name="scaled_close")(
            [LastValue(target_index, name="last_close")(inputs), delta]
        )
    else:
        outputs = keras.layers.Dense(1, name="scaled_close")(x)
    model = keras.Model(inputs, outputs, name="make_us_rich_lstm")
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mse")
    return model
