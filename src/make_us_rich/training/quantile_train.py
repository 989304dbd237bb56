"""Stage 6 on the stage files: fit the quantile LSTM (:mod:`make_us_rich.training.quantile_model`)
on windows and a scaler that earlier stages wrote, and load its serving graph back."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.preprocessing import MinMaxScaler

from make_us_rich.errors import InsufficientHistoryError
from make_us_rich.preprocessing.volatility import NORM_VOL
from make_us_rich.preprocessing.windows import QUANTILE_FEATURES
from make_us_rich.training.config import TrainConfig


@dataclass
class FittedQuantileModel:
    serving: Any  # keras.Model: raw windows -> (quantile closes, median close)
    history: dict[str, list[float]]
    best_epoch: int  # 0 = the untrained (empirically calibrated) model was best
    epochs_run: int
    seconds: float
    initial_val_loss: float
    best_val_loss: float
    spread_scale: list[float] | None


def fit_quantile_model(
    data: dict[str, np.ndarray],
    scaler: MinMaxScaler,
    config: TrainConfig,
    *,
    train_features: pd.DataFrame | None = None,
    progress: bool = False,
    tensorboard_dir: str | Path | None = None,
) -> FittedQuantileModel:
    """``data``: raw windows and log-return targets ``X_train, y_train, X_val, y_val``. Targets
    are divided by each window's trailing volatility, as the graph does with its outputs."""
    import keras

    from make_us_rich.baselines import fit_har
    from make_us_rich.training import quantile_model as qm
    from make_us_rich.training.train import BestWeights, _EpochProgress, seed_everything

    norm = QUANTILE_FEATURES.index(NORM_VOL)
    X_train, X_val = data["X_train"], data["X_val"]
    z_train = data["y_train"] / X_train[:, -1, norm].astype(np.float64)
    z_val = data["y_val"] / X_val[:, -1, norm].astype(np.float64)
    if len(z_train) < config.batch_size:
        raise InsufficientHistoryError(
            f"{len(z_train)} training windows are too few (need at least batch_size="
            f"{config.batch_size}); load more history or lower batch_size"
        )
    seed_everything(config.seed)
    har = fit_har(train_features[list(QUANTILE_FEATURES)]) if config.blend_har else None
    model = qm.build_quantile_model(config, scaler, z_train, har)
    validation = (X_val, z_val)
    stopper = BestWeights(validation, config.patience, config.batch_size)
    callbacks: list = [stopper]
    if progress:
        callbacks.append(_EpochProgress(config.max_epochs, "training"))
    if tensorboard_dir:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(tensorboard_dir)))
    started = time.perf_counter()
    fit = model.core.fit(
        X_train, z_train, validation_data=validation, epochs=config.max_epochs,
        batch_size=config.batch_size, shuffle=True, callbacks=callbacks, verbose=0,
    )
    seconds = time.perf_counter() - started
    scales = qm.calibrate_spread(model, X_val, z_val).tolist() if config.calibrate else None
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    return FittedQuantileModel(
        serving=model.serving, history=history, best_epoch=stopper.best_epoch,
        epochs_run=len(history["val_loss"]), seconds=seconds,
        initial_val_loss=stopper.initial_val_loss, best_val_loss=stopper.best, spread_scale=scales,
    )


def load_serving_model(path: str | Path):
    """The serving graph saved by the train stage (its custom layers registered on import)."""
    import keras

    import make_us_rich.training.quantile_model  # noqa: F401 - registers the custom layers

    return keras.models.load_model(path)
