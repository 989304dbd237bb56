"""Stage 6 helpers: early stopping that counts the untrained model as epoch 0, an epoch progress
bar, and seeding for deterministic training."""

from __future__ import annotations

import keras


class BestWeights(keras.callbacks.Callback):
    """Early stopping on validation loss that also considers the model *before* training.

    The quantile head starts at the train quantiles of the normalized returns, so the untrained
    model is the empirical-quantile forecast scaled by current volatility: "epoch 0" is the
    baseline to beat. If no epoch improves on it, the initial weights are restored.
    """

    def __init__(self, validation: tuple, patience: int, batch_size: int) -> None:  # (X, y[, w])
        super().__init__()
        self.validation = validation
        self.patience = patience
        self.batch_size = batch_size
        self.best_epoch = 0
        self.initial_val_loss = float("nan")

    def on_train_begin(self, logs=None):
        if isinstance(self.validation, keras.utils.PyDataset):
            loss = self.model.evaluate(self.validation, verbose=0)
        else:
            X_val, y_val, *weights = self.validation
            loss = self.model.evaluate(
                X_val, y_val, sample_weight=weights[0] if weights else None,
                batch_size=self.batch_size, verbose=0,
            )
        self.initial_val_loss = float(loss)
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


class TimeBudget(keras.callbacks.Callback):
    """Stop training once ``seconds`` have passed (checked after each batch); the epoch ends
    with its validation, so :class:`BestWeights` still keeps the best weights seen."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = float(seconds)
        self.exhausted = False

    def on_train_begin(self, logs=None):
        import time

        self.deadline = time.monotonic() + self.seconds

    def on_train_batch_end(self, batch, logs=None):
        import time

        if time.monotonic() >= self.deadline:
            self.exhausted = True
            self.model.stop_training = True


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


class _EpochLines(keras.callbacks.Callback):
    """One log line per epoch (:func:`make_us_rich.progress.epoch_line`) where no terminal bar
    can be drawn: a pipeline step's log, which ``mkrich run`` turns into its progress bar."""

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = total

    def on_epoch_end(self, epoch, logs=None):
        from make_us_rich.progress import epoch_line

        logs = logs or {}
        print(epoch_line(epoch + 1, self.total, loss=logs.get("loss", float("nan")),
                         val_loss=logs.get("val_loss", float("nan"))), flush=True)


def seed_everything(seed: int) -> None:
    """Same data + seed -> same weights on the same machine (Python, NumPy, TF seeds and
    deterministic TF kernels)."""
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
