"""The quantile forecaster (issue 11): a Keras 3 LSTM that outputs monotone quantiles of the
next-hour log return, trained on pinball loss with volatility-normalized inputs and targets,
exported as one self-contained ONNX graph that returns quantile closes in price units.

Stages, as in the point forecaster: features (+ :mod:`~make_us_rich.preprocessing.volatility`)
-> chronological split -> MinMax(-1, 1) scaler fit on train -> windows -> LSTM. What differs:

* inputs are divided by the trailing volatility ``norm_vol`` of the window's last step (inside
  the graph, :class:`~make_us_rich.training.layers.VolatilityTransform`), so a calm year and a wild one look alike; global
  scaling of raw levels broke on calmer years (issue 11);
* the target is ``z = r_{t+1} / norm_vol_t``; the head (:class:`MonotoneQuantiles`) outputs the
  median plus cumulative softplus increments, so ``q05 <= q25 <= q50 <= q75 <= q95`` always;
  its bias starts at the train quantiles of ``z``, so the untrained model is the empirical
  quantile baseline rescaled by current volatility, and early stopping keeps it unless training
  beats it on validation (:class:`~make_us_rich.training.train.BestWeights`);
* the served graph multiplies back: log-return quantile ``r = norm_vol * z``, optionally
  averaged with a linear HAR fit on the same training rows (``blend_har``, :class:`HarQuantiles`),
  and quantile close = last close * exp(r);
* optionally (``calibrate``) each quantile's distance from the median is rescaled after training
  to minimize the pinball loss on the early-stopping windows (:class:`SpreadScale`).

ONNX signature (opset 17, batch dynamic): input ``window`` float32 ``[batch, L, n_features]``,
raw features (``QuantileModel.feature_names``, oldest hour first); outputs ``quantile_close``
float32 ``[batch, 5]`` (closes at quantiles :data:`~make_us_rich.scoring.QUANTILES`) and
``next_close`` float32 ``[batch, 1]`` (the median close, the point forecast kept for
compatibility).

The graph's layers are in :mod:`~make_us_rich.training.layers`; building and fitting stay in this
one module (~500 lines) because the per-symbol, pooled and multi-horizon models share the trunk,
the calibration and the fit loop.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pandas as pd
from sklearn.preprocessing import MinMaxScaler

from make_us_rich import contract
from make_us_rich.baselines import HAR_REGRESSORS, HarFit, fit_har
from make_us_rich.contract import INPUT_NAME, OUTPUT_NAME
from make_us_rich.errors import ConfigError, InsufficientHistoryError
from make_us_rich.horizons import HORIZON_OUTPUT_NAME
from make_us_rich.preprocessing.pooled import PooledWindows, batch_order
from make_us_rich.preprocessing.split import holdout_size
from make_us_rich.preprocessing.volatility import NORM_VOL
from make_us_rich.preprocessing.windows import (
    QUANTILE_FEATURES,
    QuantileWindows,
    fit_input_scaler,
    input_groups,
    make_quantile_windows,
)
from make_us_rich.scoring import QUANTILE_COLUMNS, QUANTILES
from make_us_rich.training.config import TrainConfig
from make_us_rich.training.layers import (
    Column,
    HarQuantiles,
    LastValue,
    MonotoneQuantiles,
    SpreadScale,
    ToPrice,
    VolatilityTransform,
)
from make_us_rich.training.train import BestWeights, seed_everything

QUANTILE_OUTPUT_NAME = contract.QUANTILE_OUTPUT_NAME


def pinball_loss(y_true, y_pred):
    """Mean pinball loss over :data:`QUANTILES` of ``y_pred [B, 5]`` for ``y_true [B]``."""
    ops = keras.ops
    tau = ops.convert_to_tensor(np.asarray(QUANTILES, dtype="float32"))[None, :]
    diff = ops.reshape(ops.cast(y_true, "float32"), (-1, 1)) - y_pred
    return ops.mean(ops.maximum(tau * diff, (tau - 1.0) * diff), axis=-1)


@dataclass
class QuantileModel:
    """A trained quantile forecaster: ``core`` maps raw windows to normalized quantiles ``z``,
    ``returns`` to log-return quantiles, ``serving`` to closes (what is exported)."""

    core: keras.Model
    returns: keras.Model
    serving: keras.Model
    scaler: MinMaxScaler  # fit on the transformed train windows
    config: TrainConfig
    history: dict[str, list[float]]
    best_epoch: int
    seconds: float
    feature_names: tuple[str, ...] = QUANTILE_FEATURES
    extra: dict[str, Any] = field(default_factory=dict)

    def predict_returns(self, windows: QuantileWindows | np.ndarray) -> pd.DataFrame | np.ndarray:
        """Log-return quantiles; a DataFrame (:data:`QUANTILE_COLUMNS`) indexed by forecast
        hour for :class:`QuantileWindows`, an array ``[n, 5]`` for raw windows."""
        X = windows.X if isinstance(windows, QuantileWindows) else windows
        q = np.asarray(self.returns.predict(X, batch_size=1024, verbose=0), dtype=np.float64)
        if isinstance(windows, QuantileWindows):
            return pd.DataFrame(q, index=windows.index, columns=list(QUANTILE_COLUMNS))
        return q


def _inverse_softplus(x: np.ndarray) -> np.ndarray:
    x = np.maximum(x, 1e-3)
    return x + np.log(-np.expm1(-x))


def _trunk(config: TrainConfig, scaler: MinMaxScaler):
    """The raw window input and the layers every quantile graph shares: volatility-normalized
    stationary inputs, MinMax-scaled, through the LSTM."""
    raw = keras.Input((config.sequence_length, len(QUANTILE_FEATURES)), name=INPUT_NAME)
    x = VolatilityTransform(input_groups(config.inputs), QUANTILE_FEATURES.index(NORM_VOL),
                            name="volatility_normalize")(raw)
    x = keras.layers.Rescaling(
        scale=scaler.scale_.astype("float32"), offset=scaler.min_.astype("float32"), name="minmax"
    )(x)
    return raw, keras.layers.LSTM(config.lstm_units, name="lstm")(x)


def build_quantile_model(
    config: TrainConfig, scaler: MinMaxScaler, z_train: np.ndarray, har: HarFit | None = None
) -> QuantileModel:
    """The three graphs sharing one set of layers; the head's bias starts at the quantiles of
    the train targets ``z_train``, so the untrained model is calibrated on train. With ``har``,
    the served log-return quantiles are the average of the LSTM's and HAR's."""
    raw, x = _trunk(config, scaler)
    norm, close = QUANTILE_FEATURES.index(NORM_VOL), QUANTILE_FEATURES.index("close")
    zq = np.quantile(z_train, QUANTILES)
    center = 0.0 if config.median == "zero" else zq[2]
    bias = _inverse_softplus(np.array([zq[1] - zq[0], center - zq[1], 0.0, zq[3] - center, zq[4] - zq[3]]))
    bias[2] = center
    head = keras.layers.Dense(
        len(QUANTILES), kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(bias.astype("float32")), name="head",
    )(x)
    z = MonotoneQuantiles(config.median == "zero", name="monotone")(head)
    z = SpreadScale(name="z_quantiles")(z)
    core = keras.Model(raw, z, name="quantile_core")
    core.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=pinball_loss)
    v = LastValue(norm, name="norm_vol_last")(raw)
    r = keras.layers.Multiply(name="lstm_log_returns")([z, v])
    if har is not None:
        har_q = HarQuantiles(
            [QUANTILE_FEATURES.index(c) for c in HAR_REGRESSORS], har.coef.tolist(),
            har.z_quantiles.tolist(), name="har_log_returns",
        )(raw)
        r = keras.layers.Average(name="blend_log_returns")([r, har_q])
    returns = keras.Model(raw, r, name="quantile_returns")
    prices = ToPrice(close, name=QUANTILE_OUTPUT_NAME)([raw, r])
    median = Column(QUANTILES.index(0.5), name=OUTPUT_NAME)(prices)
    serving = keras.Model(raw, [prices, median], name="make_us_rich_quantile_forecaster")
    return QuantileModel(core, returns, serving, scaler, config, {}, 0, 0.0)


_SCALE_GRID = np.round(np.arange(0.5, 2.0001, 0.01), 2)


def calibrate_spread(model: QuantileModel, X_val: np.ndarray, z_val: np.ndarray) -> np.ndarray:
    """Set :class:`SpreadScale` to the per-quantile scale (grid 0.5-2.0) of lowest pinball loss
    on ``(X_val, z_val)``; returns the scales."""
    layer = model.core.get_layer("z_quantiles")
    layer.scale.assign(np.ones(len(QUANTILES), dtype="float32"))
    q = np.asarray(model.core.predict(X_val, batch_size=1024, verbose=0), dtype=np.float64)
    median = q[:, 2:3]
    scales = np.ones(len(QUANTILES))
    for j, tau in enumerate(QUANTILES):
        if j == 2:
            continue
        cand = median + _SCALE_GRID[None, :] * (q[:, j : j + 1] - median)  # [n, grid]
        diff = z_val[:, None] - cand
        loss = np.maximum(tau * diff, (tau - 1.0) * diff).mean(axis=0)
        scales[j] = _SCALE_GRID[int(np.argmin(loss))]
    scales[0], scales[4] = max(scales[0], scales[1]), max(scales[4], scales[3])
    layer.scale.assign(scales.astype("float32"))
    return scales


def fit_quantile_model(
    data: dict[str, np.ndarray],
    scaler: MinMaxScaler,
    config: TrainConfig,
    *,
    train_features: pd.DataFrame | None = None,
    progress: bool | str = False,
    tensorboard_dir: str | Path | None = None,
) -> QuantileModel:
    """Fit on raw windows and log-return targets ``X_train, y_train, X_val, y_val`` (targets are
    divided by each window's trailing volatility, as the graph multiplies its outputs back),
    early-stopping on the validation windows. ``train_features`` (the train period's feature
    table) fits the in-graph HAR when ``config.blend_har``. ``progress``: True draws an epoch bar,
    ``"lines"`` logs one line per epoch (pipeline steps). Deterministic for a seed."""

    norm = QUANTILE_FEATURES.index(NORM_VOL)
    X_train, X_val = data["X_train"], data["X_val"]
    z_train = data["y_train"] / X_train[:, -1, norm].astype(np.float64)
    z_val = data["y_val"] / X_val[:, -1, norm].astype(np.float64)
    if len(z_train) < config.batch_size:
        raise InsufficientHistoryError(
            f"{len(z_train)} training windows are too few (need at least batch_size="
            f"{config.batch_size}); load more history or lower batch_size"
        )
    if config.blend_har and train_features is None:
        raise ConfigError("blend_har needs the train period's features to fit the HAR model")
    seed_everything(config.seed)
    har = fit_har(train_features[list(QUANTILE_FEATURES)]) if config.blend_har else None
    model = build_quantile_model(config, scaler, z_train, har)
    validation = (X_val, z_val)
    stopper = BestWeights(validation, config.patience, config.batch_size)
    callbacks: list = [stopper]
    callbacks += _reporting_callbacks(config.max_epochs, progress, tensorboard_dir)
    started = time.perf_counter()
    fit = model.core.fit(
        X_train, z_train, validation_data=validation, epochs=config.max_epochs,
        batch_size=config.batch_size, shuffle=True, callbacks=callbacks, verbose=0,
    )
    model.seconds = time.perf_counter() - started
    model.history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    model.best_epoch = stopper.best_epoch
    model.extra = {"initial_val_loss": stopper.initial_val_loss, "best_val_loss": stopper.best,
                   "n_train": len(z_train), "n_val": len(z_val)}
    if config.calibrate:
        model.extra["spread_scale"] = calibrate_spread(model, X_val, z_val).tolist()
    return model


class WindowBatches(keras.utils.PyDataset):
    """Batches ``(raw windows, z)`` gathered from :class:`~make_us_rich.preprocessing.pooled.
    PooledWindows` on demand (reshuffled each epoch when ``seed`` is given)."""

    def __init__(self, windows: PooledWindows, batch_size: int, seed: int | None = None,
                 z: np.ndarray | None = None) -> None:
        super().__init__()
        self.windows, self.batch_size = windows, int(batch_size)
        self.z = (windows.z if z is None else z).astype("float32")  # z: [n, H] of a horizon model
        self.rng = np.random.default_rng(seed) if seed is not None else None
        self.batches = batch_order(len(windows), self.batch_size, self.rng)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i):
        idx = self.batches[i]
        return self.windows.X(idx), self.z[idx]

    def on_epoch_end(self) -> None:
        if self.rng is not None:
            self.batches = batch_order(len(self.windows), self.batch_size, self.rng)


#: layers whose weights a warm start copies from the last accepted model
WARM_LAYERS = ("lstm", "head", "z_quantiles")


def _check_pooled(train, val, config: TrainConfig) -> None:
    """Enough pooled windows to train on: one batch of training windows, one validation window."""
    if len(train) < config.batch_size:
        raise InsufficientHistoryError(
            f"{len(train)} training windows are too few (need at least batch_size="
            f"{config.batch_size}); load more history or lower batch_size"
        )
    if len(val) == 0:
        raise InsufficientHistoryError("no validation window; load more history")


def _fit_pooled(model, config: TrainConfig, train, val, *, progress: bool, time_budget: float | None,
                tensorboard_dir=None, z_train: np.ndarray | None = None, z_val: np.ndarray | None = None) -> dict:
    """Fit ``model`` on pooled windows (batches gathered on demand; best weights on the
    validation windows kept; stopped by ``time_budget`` seconds when given): the loop of the
    universal model and of its multi-horizon form. Sets ``seconds``, ``history`` and
    ``best_epoch`` on the model and returns what training.json records."""
    from make_us_rich.training.train import TimeBudget

    batches = WindowBatches(train, config.batch_size, seed=config.seed, z=z_train)
    validation = WindowBatches(val, max(config.batch_size, 1024), z=z_val)
    stopper = BestWeights(validation, config.patience, config.batch_size)
    callbacks: list = [stopper]
    budget = TimeBudget(time_budget) if time_budget else None
    if budget is not None:
        callbacks.append(budget)
    callbacks += _reporting_callbacks(config.max_epochs, progress, tensorboard_dir)
    started = time.perf_counter()
    fit = model.core.fit(batches, validation_data=validation, epochs=config.max_epochs,
                         callbacks=callbacks, verbose=0)
    model.seconds = time.perf_counter() - started
    model.history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    model.best_epoch = stopper.best_epoch
    return {"initial_val_loss": stopper.initial_val_loss, "best_val_loss": stopper.best,
            "n_train": len(train), "n_val": len(val), "time_budget": time_budget,
            "budget_exhausted": bool(budget and budget.exhausted)}


def fit_pooled_model(
    train: PooledWindows,
    val: PooledWindows,
    scaler: MinMaxScaler,
    config: TrainConfig,
    *,
    har_features: list[pd.DataFrame] | None = None,
    init_from: keras.Model | None = None,
    time_budget: float | None = None,
    progress: bool | str = False,
    tensorboard_dir: str | Path | None = None,
) -> QuantileModel:
    """The universal model: fit on the pooled windows of every symbol, batches gathered on
    demand, early-stopping on the pooled validation windows. ``har_features`` (each symbol's
    train feature table) fits one HAR on the pooled rows when ``config.blend_har``.
    ``init_from`` (the last accepted serving model, built with the same ``scaler``) warm-starts
    the LSTM and head; ``time_budget`` (seconds) stops training when spent."""
    _check_pooled(train, val, config)
    if config.blend_har and not har_features:
        raise ConfigError("blend_har needs the train period's features to fit the HAR model")
    seed_everything(config.seed)
    har = fit_har([f[list(QUANTILE_FEATURES)] for f in har_features or []]) if config.blend_har else None
    model = build_quantile_model(config, scaler, train.z, har)
    if init_from is not None:
        for name in WARM_LAYERS:
            source, target = init_from.get_layer(name), model.core.get_layer(name)
            weights = source.get_weights()
            if [w.shape for w in weights] != [w.shape for w in target.get_weights()]:
                raise ConfigError(f"cannot warm-start: layer {name!r} differs from the last model's "
                                  "(other units, inputs or window length); retrain in full")
            target.set_weights(weights)
    model.extra = {**_fit_pooled(model, config, train, val, progress=progress, tensorboard_dir=tensorboard_dir,
                                 time_budget=time_budget),
                   "warm_start": init_from is not None}
    if config.calibrate:
        model.extra["spread_scale"] = calibrate_spread(model, val.X(), val.z).tolist()
    return model


# --- forecast horizons (issue 22) ---------------------------------------------------------


@keras.saving.register_keras_serializable(package="make_us_rich")
class StackHorizons(keras.layers.Layer):
    """``H`` tensors ``[B, 5]`` -> ``[B, H, 5]`` (one row per horizon, in the model's order)."""

    def call(self, parts):
        return keras.ops.stack(parts, axis=1)

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], len(input_shapes), input_shapes[0][1])


def horizon_pinball_loss(y_true, y_pred):
    """Mean pinball loss over horizons and :data:`QUANTILES` of ``y_pred [B, H, 5]`` for
    ``y_true [B, H]`` (normalized targets: each horizon weighs about the same)."""
    ops = keras.ops
    tau = ops.convert_to_tensor(np.asarray(QUANTILES, dtype="float32"))[None, None, :]
    diff = ops.expand_dims(ops.cast(y_true, "float32"), -1) - y_pred
    return ops.mean(ops.maximum(tau * diff, (tau - 1.0) * diff), axis=(-2, -1))


def horizon_scale(norm_vol: np.ndarray, horizons: tuple[int, ...]) -> np.ndarray:
    """``[n, H]`` scale of each window's h-hour return: its trailing hourly volatility x sqrt(h);
    the model learns ``z = r_h / scale`` and its graph multiplies back."""
    return np.asarray(norm_vol, dtype=np.float64)[:, None] * np.sqrt(np.asarray(horizons, dtype=np.float64))[None, :]


def build_horizon_model(config: TrainConfig, scaler: MinMaxScaler, z_train: np.ndarray,
                        horizons: tuple[int, ...], hars: list[HarFit] | None = None) -> QuantileModel:
    """One LSTM, one monotone quantile head per horizon (bias at that horizon's train quantiles
    of ``z_train [n, H]``), optionally averaged with a HAR fitted directly for each horizon.
    Outputs: the contract's 1-hour ``quantile_close`` and ``next_close`` (horizon 1, so the
    model serves as a 1-hour model unchanged) and :data:`HORIZON_OUTPUT_NAME` ``[B, H, 5]``
    (closes at each horizon's quantiles); ``core`` -> z ``[B, H, 5]``, ``returns`` -> log
    returns ``[B, H, 5]``."""
    horizons = tuple(int(h) for h in horizons)
    if 1 not in horizons:
        raise ConfigError(f"a horizon model includes the 1-hour horizon (the contract's outputs); got {horizons}")
    z_train = np.asarray(z_train, dtype=np.float64).reshape(len(z_train), len(horizons))
    raw, x = _trunk(config, scaler)
    norm, close = QUANTILE_FEATURES.index(NORM_VOL), QUANTILE_FEATURES.index("close")
    v = LastValue(norm, name="norm_vol_last")(raw)
    zs, rs, prices = [], [], []
    for j, h in enumerate(horizons):
        zq = np.quantile(z_train[:, j], QUANTILES)
        center = 0.0 if config.median == "zero" else zq[2]
        bias = _inverse_softplus(np.array([zq[1] - zq[0], center - zq[1], 0.0, zq[3] - center, zq[4] - zq[3]]))
        bias[2] = center
        head = keras.layers.Dense(
            len(QUANTILES), kernel_initializer="zeros",
            bias_initializer=keras.initializers.Constant(bias.astype("float32")), name=f"head_h{h}",
        )(x)
        z = MonotoneQuantiles(config.median == "zero", name=f"monotone_h{h}")(head)
        z = SpreadScale(name=f"z_quantiles_h{h}")(z)
        zs.append(z)
        r = keras.layers.Multiply(name=f"lstm_log_returns_h{h}")([z, v])
        r = keras.layers.Rescaling(float(np.sqrt(h)), name=f"sqrt_h{h}")(r)
        if hars is not None:
            har_q = HarQuantiles(
                [QUANTILE_FEATURES.index(c) for c in HAR_REGRESSORS], hars[j].coef.tolist(),
                hars[j].z_quantiles.tolist(), name=f"har_log_returns_h{h}",
            )(raw)
            r = keras.layers.Average(name=f"blend_log_returns_h{h}")([r, har_q])
        rs.append(r)
        prices.append(ToPrice(close, name=QUANTILE_OUTPUT_NAME if h == 1 else f"quantile_close_h{h}")([raw, r]))
    core = keras.Model(raw, StackHorizons(name="z_horizons")(zs), name="quantile_horizon_core")
    core.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=horizon_pinball_loss)
    returns = keras.Model(raw, StackHorizons(name="log_returns_horizons")(rs), name="quantile_horizon_returns")
    one_hour = prices[horizons.index(1)]
    median = Column(QUANTILES.index(0.5), name=OUTPUT_NAME)(one_hour)
    stacked = StackHorizons(name=HORIZON_OUTPUT_NAME)(prices)
    serving = keras.Model(raw, [one_hour, median, stacked], name="make_us_rich_horizon_forecaster")
    model = QuantileModel(core, returns, serving, scaler, config, {}, 0, 0.0)
    model.extra["horizons"] = list(horizons)
    return model


def fit_horizon_model(
    train: PooledWindows,
    val: PooledWindows,
    y_train: np.ndarray,
    y_val: np.ndarray,
    scaler: MinMaxScaler,
    config: TrainConfig,
    horizons: tuple[int, ...],
    *,
    har_features: list[pd.DataFrame] | None = None,
    init_from: keras.Model | None = None,
    time_budget: float | None = None,
    progress: bool | str = False,
    tensorboard_dir: str | Path | None = None,
) -> QuantileModel:
    """The universal model with a horizon axis: fit on pooled windows and their h-hour log-return
    targets ``y_train``/``y_val`` ``[n, H]`` (:func:`make_us_rich.horizons.pooled_horizon_targets`;
    purge the windows whose longest target crosses a cut first), normalized per horizon by
    :func:`horizon_scale`; early stopping on the validation windows. ``har_features`` (each
    symbol's train feature table) fits one HAR per horizon on the pooled rows when
    ``config.blend_har``. ``init_from`` (the last accepted serving model of the same horizons,
    built with the same ``scaler``) warm-starts the LSTM and every horizon's head. The 1-hour
    model and its functions are untouched."""
    from make_us_rich.horizons import check_horizons, fit_har_horizon

    horizons = check_horizons(horizons)
    _check_pooled(train, val, config)
    for name, w, y in (("train", train, y_train), ("validation", val, y_val)):
        if np.shape(y) != (len(w), len(horizons)) or not np.isfinite(y).all():
            raise ConfigError(f"{name} targets must be finite [{len(w)}, {len(horizons)}], got shape "
                              f"{np.shape(y)}; drop the windows whose h-hour target is unknown")
    if config.blend_har and not har_features:
        raise ConfigError("blend_har needs the train period's features to fit the HAR model")
    if config.calibrate:
        raise ConfigError("calibrate is not built for a horizon model; train it with calibrate=False")
    seed_everything(config.seed)
    hars = None
    if config.blend_har:
        frames = [f[list(QUANTILE_FEATURES)] for f in har_features or []]
        hars = [fit_har_horizon(frames, h) for h in horizons]
    z_train = y_train / horizon_scale(train.norm_vol, horizons)
    z_val = y_val / horizon_scale(val.norm_vol, horizons)
    model = build_horizon_model(config, scaler, z_train, horizons, hars)
    if init_from is not None:
        for name in ("lstm", *(f"{layer}_h{h}" for h in horizons for layer in ("head", "z_quantiles"))):
            try:
                source = init_from.get_layer(name)
            except ValueError:
                raise ConfigError(f"cannot warm-start: the last model has no layer {name!r} (other horizons); "
                                  "retrain in full") from None
            target = model.core.get_layer(name)
            weights = source.get_weights()
            if [w.shape for w in weights] != [w.shape for w in target.get_weights()]:
                raise ConfigError(f"cannot warm-start: layer {name!r} differs from the last model's "
                                  "(other units, inputs or window length); retrain in full")
            target.set_weights(weights)
    model.extra.update(_fit_pooled(model, config, train, val, progress=progress, time_budget=time_budget,
                                   tensorboard_dir=tensorboard_dir,
                                   z_train=z_train, z_val=z_val))
    model.extra["warm_start"] = init_from is not None
    return model


def train_horizon_model(tables: dict[str, pd.DataFrame] | pd.DataFrame, config: TrainConfig | None = None,
                        horizons: tuple[int, ...] = (1, 4, 24)) -> QuantileModel:
    """In memory, for benchmarks and notebooks: a horizon model of one feature table (a
    per-symbol model) or several (pooled), the latest ``config.val_size`` of each symbol's
    windows for early stopping (purged by the longest horizon), the scaler fit on the rest."""
    from make_us_rich.horizons import pooled_horizon_targets, split_pooled_horizons
    from make_us_rich.preprocessing.pooled import fit_pooled_scaler, pool_windows

    config = config or TrainConfig()
    tables = tables if isinstance(tables, dict) else {"symbol": tables}
    pooled = pool_windows(tables, config.sequence_length)
    y = pooled_horizon_targets(pooled, tables, horizons)
    (train, y_train), (val, y_val), _ = split_pooled_horizons(pooled, y, horizons, config.val_size, {})
    scaler = fit_pooled_scaler(train, config.inputs)
    last_train = train.index.max()
    har = [t[t.index <= last_train] for t in tables.values()]
    return fit_horizon_model(train, val, y_train, y_val, scaler, config, horizons, har_features=har)


def train_quantile_model(features: pd.DataFrame, config: TrainConfig | None = None) -> QuantileModel:
    """In memory, for benchmarks and notebooks: the windows of ``features`` (the train period),
    the latest ``config.val_size`` for early stopping, the scaler fit on the rest, then
    :func:`fit_quantile_model` - what the sequences, scale and train stages do over files."""
    config = config or TrainConfig()
    windows = make_quantile_windows(features, config.sequence_length)
    cut = len(windows.y) - holdout_size(len(windows.y), config.val_size)
    data = {"X_train": windows.X[:cut], "y_train": windows.y[:cut],
            "X_val": windows.X[cut:], "y_val": windows.y[cut:]}
    scaler = fit_input_scaler(data["X_train"], config.inputs)
    return fit_quantile_model(data, scaler, config, train_features=features)


def load_serving_model(path: str | Path):
    """The serving graph saved by the train stage (the custom layers are registered here)."""
    return keras.models.load_model(path)


def _reporting_callbacks(max_epochs: int, progress: bool | str, tensorboard_dir) -> list:
    """Epoch lines (``progress="lines"``, for the pipeline's log), a bar, and TensorBoard."""
    from make_us_rich.training.train import _EpochLines, _EpochProgress

    out: list = []
    if progress == "lines":
        out.append(_EpochLines(max_epochs))
    elif progress:
        out.append(_EpochProgress(max_epochs, "training"))
    if tensorboard_dir:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:  # tensorflow no longer brings it
            raise ConfigError("--tensorboard-dir needs TensorBoard, which is not installed here: "
                              "pip install tensorboard, or leave the flag out")
        out.append(keras.callbacks.TensorBoard(log_dir=str(tensorboard_dir)))
    return out
