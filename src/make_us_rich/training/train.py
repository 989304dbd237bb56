"""Stage 6: fit the LSTM with early stopping on validation loss (best weights restored),
deterministically for a seed, keeping the loss of every epoch."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from make_us_rich.preprocessing import PreprocessResult
from make_us_rich.training.config import TrainConfig
from make_us_rich.training.model import build_model, keras


@dataclass
class TrainingData:
    """What training needs: scaled windows and where the target sits among the features."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    target_index: int
    #: 0/1 weights: windows across a gap in the candles do not count
    w_train: np.ndarray | None = None
    w_val: np.ndarray | None = None

    @classmethod
    def from_preprocess(cls, prep: PreprocessResult) -> TrainingData:
        return cls(prep.X_train, prep.y_train, prep.X_val, prep.y_val,
                   prep.feature_names.index(prep.target_column), prep.w_train, prep.w_val)


@dataclass
class TrainResult:
    model: Any  # keras.Model on scaled windows
    history: dict[str, list[float]]
    best_epoch: int  # 1-based; 0 = the untrained model was best (persistence, delta head)
    epochs_run: int
    seconds: float
    config: TrainConfig
    extra: dict[str, Any] = field(default_factory=dict)


class BestWeights(keras.callbacks.Callback):
    """Early stopping on validation loss that also considers the model *before* training.

    With the ``delta`` head the untrained model is exactly persistence, so "epoch 0" is the
    baseline to beat: if no epoch improves on it, the initial weights are restored and the
    model stays persistence rather than becoming worse than it on validation data.
    """

    def __init__(self, validation: tuple, patience: int, batch_size: int) -> None:  # (X, y[, w])
        super().__init__()
        self.validation = validation
        self.patience = patience
        self.batch_size = batch_size
        self.best_epoch = 0
        self.initial_val_loss = float("nan")

    def on_train_begin(self, logs=None):
        X_val, y_val, *weights = self.validation
        self.initial_val_loss = float(
            self.model.evaluate(
                X_val, y_val, sample_weight=weights[0] if weights else None,
                batch_size=self.batch_size, verbose=0,
            )
        )
        self.best = self.initial_val_loss
        self.best_weights = self.model.get_weights()
        self.best_epoch = 0
        self.wait = 0

    def on_epoch_end(self, epoch, logs=None):
        current = float((logs or {})["val_loss"])
        if current < self.best:
            self.best, self.best_epoch, self.wait = current, epoch + 1, 0
            self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.model.set_weights(self.best_weights)


class _EpochProgress(keras.callbacks.Callback):
    """One tqdm bar over epochs with the current losses (Keras' own bar is per batch)."""

    def __init__(self, total: int, desc: str) -> None:
        super().__init__()
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="epoch", leave=False)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.bar.set_postfix(loss=f"{logs.get('loss', 0):.3g}", val=f"{logs.get('val_loss', 0):.3g}")
        self.bar.update(1)

    def on_train_end(self, logs=None):
        self.bar.close()


def seed_everything(seed: int) -> None:
    """Same data + seed -> same weights on the same machine (Python, NumPy, TF seeds and
    deterministic TF kernels)."""
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def train_model(
    data: TrainingData | PreprocessResult,
    config: TrainConfig,
    *,
    progress: bool = False,
    tensorboard_dir: str | Path | None = None,
) -> TrainResult:
    """Train on ``data.X_train``/``y_train``, early-stopping on ``X_val``/``y_val``."""
    if isinstance(data, PreprocessResult):
        data = TrainingData.from_preprocess(data)
    seed_everything(config.seed)
    model = build_model(config, data.X_train.shape[2], data.target_index)
    validation = (data.X_val, data.y_val) if data.w_val is None else (data.X_val, data.y_val, data.w_val)
    stopper = BestWeights(validation, config.patience, config.batch_size)
    callbacks: list[keras.callbacks.Callback] = [stopper]
    if progress:
        callbacks.append(_EpochProgress(config.max_epochs, "training"))
    if tensorboard_dir:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(tensorboard_dir)))
    started = time.perf_counter()
    fit = model.fit(
        data.X_train,
        data.y_train,
        sample_weight=data.w_train,
        validation_data=validation,
        epochs=config.max_epochs,
        batch_size=config.batch_size,
        shuffle=True,  # windows are independent samples; the splits stay chronological
        callbacks=callbacks,
        verbose=0,
    )
    seconds = time.perf_counter() - started
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    return TrainResult(
        model=model,
        history=history,
        best_epoch=stopper.best_epoch,
        epochs_run=len(history["val_loss"]),
        seconds=seconds,
        config=config,
        extra={"initial_val_loss": stopper.initial_val_loss, "best_val_loss": stopper.best},
    )
