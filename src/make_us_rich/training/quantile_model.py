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
* the served graph multiplies back: quantile close = last close * exp(norm_vol * z).

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
    """Defaults of the quantile forecaster.

    Evidence (bench/bench_quantile.py, validation periods only; see its results): LSTM(32) on a
    48 h window is the issue's measured setting; the variants compared on validation were the
    median head (``learned`` vs ``zero``) and the input set (all of :data:`INPUT_KINDS` vs the
    volatilities only).
    """

    sequence_length: int = 48
    lstm_units: int = 32
    #: the LSTM's inputs, each transformed as :data:`INPUT_KINDS` says
    inputs: tuple[str, ...] = tuple(INPUT_KINDS)
    #: ``learned``: the median is trained like the other quantiles; ``zero``: the median return
    #: is 0 (the median close is persistence) and only the spread is learned
    median: str = "learned"
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
class ToPrice(keras.layers.Layer):
    """``(raw window, z quantiles)`` -> closes: last close * exp(norm_vol_last * z)."""

    def __init__(self, close_index: int, norm_index: int, **kwargs):
        super().__init__(**kwargs)
        self.close_index, self.norm_index = int(close_index), int(norm_index)

    def call(self, inputs):
        x, z = inputs
        close = x[:, -1, self.close_index : self.close_index + 1]
        v = x[:, -1, self.norm_index : self.norm_index + 1]
        return close * keras.ops.exp(v * z)

    def compute_output_shape(self, input_shapes):
        return input_shapes[1]

    def get_config(self):
        return {**super().get_config(), "close_index": self.close_index, "norm_index": self.norm_index}


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


def _groups(inputs: tuple[str, ...]) -> dict[str, list[int]]:
    return {
        kind: [QUANTILE_FEATURES.index(c) for c in inputs if INPUT_KINDS[c] == kind]
        for kind in _KIND_ORDER
    }


def _inverse_softplus(x: np.ndarray) -> np.ndarray:
    x = np.maximum(x, 1e-3)
    return x + np.log(-np.expm1(-x))


def build_quantile_model(config: QuantileConfig, scaler: MinMaxScaler, z_train: np.ndarray) -> QuantileModel:
    """The three graphs sharing one set of layers; the head's bias starts at the quantiles of
    the train targets ``z_train``, so the untrained model is calibrated on train."""
    n_features = len(QUANTILE_FEATURES)
    norm, close = QUANTILE_FEATURES.index(NORM_VOL), QUANTILE_FEATURES.index("close")
    raw = keras.Input((config.sequence_length, n_features), name=INPUT_NAME)
    x = VolatilityTransform(_groups(config.inputs), norm, name="volatility_normalize")(raw)
    x = keras.layers.Rescaling(
        scale=scaler.scale_.astype("float32"), offset=scaler.min_.astype("float32"), name="minmax"
    )(x)
    x = keras.layers.LSTM(config.lstm_units, name="lstm")(x)
    zq = np.quantile(z_train, QUANTILES)
    steps = np.array([zq[1] - zq[0], zq[2] - zq[1], zq[2], zq[3] - zq[2], zq[4] - zq[3]])
    bias = _inverse_softplus(steps)
    bias[2] = zq[2]
    head = keras.layers.Dense(
        len(QUANTILES), kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(bias.astype("float32")), name="head",
    )(x)
    z = MonotoneQuantiles(config.median == "zero", name="z_quantiles")(head)
    core = keras.Model(raw, z, name="quantile_core")
    core.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=pinball_loss)
    v = LastValue(norm, name="norm_vol_last")(raw)
    returns = keras.Model(raw, keras.layers.Multiply(name="log_return_quantiles")([z, v]), name="quantile_returns")
    prices = ToPrice(close, norm, name=QUANTILE_OUTPUT_NAME)([raw, z])
    median = Column(QUANTILES.index(0.5), name=OUTPUT_NAME)(prices)
    serving = keras.Model(raw, [prices, median], name="make_us_rich_quantile_forecaster")
    return QuantileModel(core, returns, serving, scaler, config, {}, 0, 0.0)


def fit_input_scaler(X: np.ndarray, config: QuantileConfig) -> MinMaxScaler:
    """MinMax(-1, 1) on the transformed train windows (the same layer the graph runs)."""
    layer = VolatilityTransform(_groups(config.inputs), QUANTILE_FEATURES.index(NORM_VOL))
    t = np.asarray(layer(X.astype("float32")), dtype=np.float64)
    return MinMaxScaler(feature_range=FEATURE_RANGE).fit(t.reshape(-1, t.shape[2]))


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
    model = build_quantile_model(config, scaler, z[:cut])
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
