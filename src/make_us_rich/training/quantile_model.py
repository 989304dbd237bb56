"""The quantile forecaster (issue 11): a Keras 3 LSTM that outputs monotone quantiles of the
next-hour log return, trained on pinball loss with volatility-normalized inputs and targets,
exported as one self-contained ONNX graph that returns quantile closes in price units.

Stages, as in the point forecaster: features (+ :mod:`~make_us_rich.preprocessing.volatility`)
-> chronological split -> MinMax(-1, 1) scaler fit on train -> windows -> LSTM. What differs:

* inputs are divided by the trailing volatility ``norm_vol`` of the window's last step (inside
  the graph, :class:`VolatilityTransform`), so a calm year and a wild one look alike; global
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
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pandas as pd
from sklearn.preprocessing import MinMaxScaler

from make_us_rich.baselines import HAR_REGRESSORS, RANGE_FLOOR, HarFit, fit_har
from make_us_rich.contract import INPUT_NAME, OPSET, OUTPUT_NAME
from make_us_rich.errors import ConfigError, InsufficientHistoryError
from make_us_rich.inference import onnx_session
from make_us_rich.preprocessing.features import FEATURE_COLUMNS
from make_us_rich.preprocessing.scaling import FEATURE_RANGE
from make_us_rich.preprocessing.sequences import contiguous_windows, create_sequences
from make_us_rich.preprocessing.split import holdout_size
from make_us_rich.preprocessing.volatility import NORM_VOL, VOLATILITY_FEATURES
from make_us_rich.scoring import QUANTILE_COLUMNS, QUANTILES
from make_us_rich.training.export import PARITY_RTOL, ExportError, ParityReport
from make_us_rich.training.model import LastValue
from make_us_rich.training.train import BestWeights, seed_everything

#: ONNX output: float32 ``[batch, len(QUANTILES)]`` quantile closes in price units.
QUANTILE_OUTPUT_NAME = "quantile_close"
#: Columns of the served window: the features stage's columns, then the volatility features.
QUANTILE_FEATURES: tuple[str, ...] = FEATURE_COLUMNS + VOLATILITY_FEATURES
TARGET = "log_return"
#: How each input the LSTM reads is made stationary (``v`` = ``norm_vol`` at the last step):
#: ``log_vol``: log(x / v), volatilities; ``vol``: x / v, signed returns; ``log``: log(x), ratios.
INPUT_KINDS: dict[str, str] = {
    "range_vol_6h": "log_vol",
    "range_vol_24h": "log_vol",
    "range_vol_7d": "log_vol",
    "range_vol_30d": "log_vol",
    "bar_range": "log_vol",
    "hour_vol": "log_vol",
    "log_return": "vol",
    "return_24h": "vol",
    "volume_ratio": "log",
    "trades_ratio": "log",
}
_KIND_ORDER = ("log_vol", "vol", "log")
#: floor before a log (a candle with high == low, an hour without trades)
LOG_FLOOR = 1e-2
_STEP = pd.Timedelta(hours=1)


@dataclass(frozen=True)
class QuantileConfig:
    """Defaults of the quantile forecaster, chosen on validation quarters only (2022 Q3 and Q4,
    BTCUSDT and BTCEUR, each trained on the year before; bench/bench_quantile.py), by the mean
    pinball loss ratio vs the empirical-quantile baseline A over those 4 periods:

    ===================================  ======  ===================================
    variant                              ratio   note
    ===================================  ======  ===================================
    median zero + HAR average (default)  0.9593  ``blend_har`` in the graph
    learned median + HAR average         0.9594
    median zero, LSTM alone              0.9616  the median close is persistence
    learned median, LSTM alone           0.9616
    24 h window                          0.9645
    LSTM(16)                             0.9655
    without volume / trade ratios        0.9655
    spread calibration                   0.9643  ``calibrate``
    ===================================  ======  ===================================

    ``max_epochs`` 20 with ``patience`` 3 did not bind on validation (40 gave identical models);
    one retrain on a year takes 12-53 s on the shared 2-core machine. The 720 h normalization window and
    the feature windows were not varied (fixed in :mod:`~make_us_rich.preprocessing.volatility`).
    Differences below ~0.003 are within noise (block-bootstrap intervals are +-0.01-0.03).
    """

    sequence_length: int = 48
    lstm_units: int = 32
    #: the LSTM's inputs, each transformed as :data:`INPUT_KINDS` says
    inputs: tuple[str, ...] = tuple(INPUT_KINDS)
    #: ``learned``: the median is trained like the other quantiles; ``zero``: the LSTM's median
    #: return is 0 and only the spread is learned (with ``blend_har`` the served median is half
    #: of HAR's median return, close to 0)
    median: str = "zero"
    #: after training, scale each quantile's distance from the median so that it minimizes the
    #: pinball loss on the early-stopping windows (:class:`SpreadScale`; 1 = off)
    calibrate: bool = False
    #: serve the average of the LSTM's quantiles and those of a linear HAR fit on the same
    #: training rows (:class:`HarQuantiles`, in the graph); the LSTM stays the learned core
    blend_har: bool = True
    learning_rate: float = 1e-3
    batch_size: int = 128
    max_epochs: int = 20
    patience: int = 3
    #: latest fraction of the training windows used for early stopping
    val_size: float = 0.2
    seed: int = 42

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        problems = []
        unknown = sorted(set(self.inputs) - set(INPUT_KINDS))
        if unknown or not self.inputs:
            problems.append(f"inputs must be a non-empty subset of {list(INPUT_KINDS)} (unknown: {unknown})")
        if self.median not in ("learned", "zero"):
            problems.append("median must be 'learned' or 'zero'")
        if self.sequence_length < 1 or self.lstm_units < 1:
            problems.append("sequence_length and lstm_units must be >= 1")
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 0 or self.learning_rate <= 0:
            problems.append("batch_size, max_epochs >= 1, patience >= 0, learning_rate > 0")
        if not 0.0 < self.val_size < 1.0:
            problems.append("val_size must be in (0, 1)")
        if problems:
            raise ConfigError("invalid quantile config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["inputs"] = list(self.inputs)
        return d

    def with_overrides(self, **overrides: Any) -> QuantileConfig:
        return replace(self, **overrides)


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
        for kind in _KIND_ORDER:
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


def pinball_loss(y_true, y_pred):
    """Mean pinball loss over :data:`QUANTILES` of ``y_pred [B, 5]`` for ``y_true [B]``."""
    ops = keras.ops
    tau = ops.convert_to_tensor(np.asarray(QUANTILES, dtype="float32"))[None, :]
    diff = ops.reshape(ops.cast(y_true, "float32"), (-1, 1)) - y_pred
    return ops.mean(ops.maximum(tau * diff, (tau - 1.0) * diff), axis=-1)


@dataclass
class QuantileWindows:
    """Raw windows and their next-hour log-return targets (valid windows only)."""

    X: np.ndarray  # float32 [n, L, F], raw features
    y: np.ndarray  # float64 [n], log return of the candle after the window
    index: pd.DatetimeIndex  # open time of the forecast candle (the target row)

    @property
    def norm_vol(self) -> np.ndarray:
        return self.X[:, -1, QUANTILE_FEATURES.index(NORM_VOL)].astype(np.float64)


def make_quantile_windows(features: pd.DataFrame, sequence_length: int) -> QuantileWindows:
    """Windows of :data:`QUANTILE_FEATURES` whose rows and target are consecutive candles, hold
    no NaN (volatility warm-up, gaps) and have a finite target. The last window (no target yet)
    is not included; serve it with ``features.iloc[-L:]``."""
    missing = [c for c in QUANTILE_FEATURES if c not in features]
    if missing:
        raise ConfigError(
            f"features lack column(s) {missing}; build them with extract_features_from_dataset "
            "and add_volatility_features"
        )
    frame = features[list(QUANTILE_FEATURES)]
    X, y = create_sequences(frame, TARGET, sequence_length)
    ok = contiguous_windows(frame.index, sequence_length, _STEP) & np.isfinite(y)
    bad_row = ~np.isfinite(frame.to_numpy(np.float64)).all(axis=1)
    bad = np.concatenate([[0], np.cumsum(bad_row)])
    ok &= (bad[sequence_length : sequence_length + len(y)] - bad[: len(y)]) == 0
    if not ok.any():
        raise InsufficientHistoryError(
            f"no complete {sequence_length} h window with a next candle in {len(frame)} rows "
            "(the volatility features need about 15 days of warm-up); load more history"
        )
    keep = np.flatnonzero(ok)
    return QuantileWindows(
        X=np.ascontiguousarray(X[keep]),
        y=frame[TARGET].to_numpy(np.float64)[keep + sequence_length],
        index=frame.index[keep + sequence_length],
    )


@dataclass
class QuantileModel:
    """A trained quantile forecaster: ``core`` maps raw windows to normalized quantiles ``z``,
    ``returns`` to log-return quantiles, ``serving`` to closes (what is exported)."""

    core: keras.Model
    returns: keras.Model
    serving: keras.Model
    scaler: MinMaxScaler  # fit on the transformed train windows
    config: QuantileConfig
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

    def predictions(self, windows: QuantileWindows) -> pd.DataFrame:
        """The ``predictions.csv`` table of issue 11 from the served (price) graph: one row per
        forecast candle, ``timestamp`` (its open time, UTC ISO 8601), ``last_close``, ``close``
        (actual) and :data:`QUANTILE_COLUMNS` in price units."""
        closes, _ = self.serving.predict(windows.X, batch_size=1024, verbose=0)
        last = windows.X[:, -1, QUANTILE_FEATURES.index("close")].astype(np.float64)
        table = pd.DataFrame(np.asarray(closes, dtype=np.float64), columns=list(QUANTILE_COLUMNS))
        table.insert(0, "timestamp", windows.index.strftime("%Y-%m-%dT%H:%M:%SZ"))
        table.insert(1, "last_close", last)
        table.insert(2, "close", last * np.exp(windows.y))
        return table


def _groups(inputs: tuple[str, ...]) -> dict[str, list[int]]:
    return {
        kind: [QUANTILE_FEATURES.index(c) for c in inputs if INPUT_KINDS[c] == kind]
        for kind in _KIND_ORDER
    }


def _inverse_softplus(x: np.ndarray) -> np.ndarray:
    x = np.maximum(x, 1e-3)
    return x + np.log(-np.expm1(-x))


def build_quantile_model(
    config: QuantileConfig, scaler: MinMaxScaler, z_train: np.ndarray, har: HarFit | None = None
) -> QuantileModel:
    """The three graphs sharing one set of layers; the head's bias starts at the quantiles of
    the train targets ``z_train``, so the untrained model is calibrated on train. With ``har``,
    the served log-return quantiles are the average of the LSTM's and HAR's."""
    n_features = len(QUANTILE_FEATURES)
    norm, close = QUANTILE_FEATURES.index(NORM_VOL), QUANTILE_FEATURES.index("close")
    raw = keras.Input((config.sequence_length, n_features), name=INPUT_NAME)
    x = VolatilityTransform(_groups(config.inputs), norm, name="volatility_normalize")(raw)
    x = keras.layers.Rescaling(
        scale=scaler.scale_.astype("float32"), offset=scaler.min_.astype("float32"), name="minmax"
    )(x)
    x = keras.layers.LSTM(config.lstm_units, name="lstm")(x)
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


def fit_input_scaler(X: np.ndarray, config: QuantileConfig) -> MinMaxScaler:
    """MinMax(-1, 1) on the transformed train windows (the same layer the graph runs)."""
    layer = VolatilityTransform(_groups(config.inputs), QUANTILE_FEATURES.index(NORM_VOL))
    t = np.asarray(layer(X.astype("float32")), dtype=np.float64)
    return MinMaxScaler(feature_range=FEATURE_RANGE).fit(t.reshape(-1, t.shape[2]))


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


def train_quantile_model(features: pd.DataFrame, config: QuantileConfig = QuantileConfig()) -> QuantileModel:
    """Train on the windows of ``features`` (the train period; features + volatility features),
    early-stopping on the latest ``config.val_size`` of them. Deterministic for a seed."""
    windows = make_quantile_windows(features, config.sequence_length)
    n = len(windows.y)
    n_val = holdout_size(n, config.val_size)
    if n - n_val < config.batch_size:
        raise InsufficientHistoryError(
            f"{n - n_val} training windows are too few (need at least batch_size="
            f"{config.batch_size}); load more history"
        )
    z = windows.y / windows.norm_vol
    cut = n - n_val
    seed_everything(config.seed)
    scaler = fit_input_scaler(windows.X[:cut], config)
    har = fit_har(features[list(QUANTILE_FEATURES)]) if config.blend_har else None
    model = build_quantile_model(config, scaler, z[:cut], har)
    validation = (windows.X[cut:], z[cut:])
    stopper = BestWeights(validation, config.patience, config.batch_size)
    started = time.perf_counter()
    fit = model.core.fit(
        windows.X[:cut], z[:cut], validation_data=validation, epochs=config.max_epochs,
        batch_size=config.batch_size, shuffle=True, callbacks=[stopper], verbose=0,
    )
    model.seconds = time.perf_counter() - started
    model.history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    model.best_epoch = stopper.best_epoch
    model.extra = {"initial_val_loss": stopper.initial_val_loss, "best_val_loss": stopper.best,
                   "n_train": cut, "n_val": n_val}
    if config.calibrate:
        model.extra["spread_scale"] = calibrate_spread(model, *validation).tolist()
    return model


def to_onnx(model: QuantileModel) -> bytes:
    """The serving graph through tf2onnx (opset 17, batch dynamic), checked by ``onnx.checker``."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    seq_len, n_features = model.serving.input_shape[1:]
    spec = (tf.TensorSpec((None, seq_len, n_features), tf.float32, name=INPUT_NAME),)
    try:
        proto, _ = tf2onnx.convert.from_keras(model.serving, input_signature=spec, opset=OPSET)
    except Exception as exc:  # tf2onnx raises many types
        raise ExportError(f"tf2onnx could not convert the quantile model: {exc}") from exc
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    names = ([i.name for i in proto.graph.input], sorted(o.name for o in proto.graph.output))
    expected = ([INPUT_NAME], sorted([QUANTILE_OUTPUT_NAME, OUTPUT_NAME]))
    if names != expected:
        raise ExportError(f"unexpected ONNX signature {names}; expected {expected}")
    proto.producer_name = "make-us-rich"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker rejected the quantile model: {exc}") from exc
    return proto.SerializeToString()


def onnx_quantiles(session, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(quantile_close [n, 5], next_close [n, 1])`` from an onnxruntime session."""
    q, m = session.run([QUANTILE_OUTPUT_NAME, OUTPUT_NAME], {INPUT_NAME: windows})
    return q, m


def check_quantile_parity(model_bytes: bytes, model: QuantileModel, raw_windows: np.ndarray,
                          rtol: float = PARITY_RTOL) -> ParityReport:
    """onnxruntime vs the Keras serving graph on the same raw windows, every output."""
    windows = np.ascontiguousarray(raw_windows, dtype=np.float32)
    onnx_q, onnx_m = onnx_quantiles(onnx_session(model_bytes), windows)
    ref_q, ref_m = (np.asarray(a, dtype=np.float64) for a in model.serving(windows, training=False))
    got, ref = np.hstack([onnx_q, onnx_m]).astype(np.float64), np.hstack([ref_q, ref_m])
    abs_err = np.abs(got - ref)
    rel = abs_err / np.maximum(np.abs(ref), 1e-12)
    max_rel = float(rel.max()) if rel.size else float("nan")
    return ParityReport(
        n_windows=len(windows),
        max_abs_error=float(abs_err.max()) if abs_err.size else float("nan"),
        max_rel_error=max_rel,
        rtol=rtol,
        passed=bool(rel.size) and bool(np.isfinite(got).all()) and max_rel <= rtol,
    )


def export_quantile_onnx(model: QuantileModel, raw_windows: np.ndarray,
                         rtol: float = PARITY_RTOL) -> tuple[bytes, ParityReport]:
    """Convert and verify; raises :class:`ExportError` when parity fails."""
    model_bytes = to_onnx(model)
    parity = check_quantile_parity(model_bytes, model, raw_windows, rtol)
    if not parity.passed:
        raise ExportError(
            f"ONNX parity failed on {parity.n_windows} windows: max relative error "
            f"{parity.max_rel_error:.3g} > {rtol:g}"
        )
    return model_bytes, parity
