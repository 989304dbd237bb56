"""Research prototype for issue 21: one quantile forecaster trained on the pooled windows of many
symbols, with per-symbol walk-forward recalibration and HAR blending, scored beside the
project's baselines. Reuses the project's stages (features, volatility features, windows and
their stationary transform, baselines, scoring, the quantile head and pinball loss); only the
pooling, the calibration and the blend are new here. Findings: docs/benchmarks.md and the
research note; the library's universal model is what ships.

Nothing here is imported by the library or the tests.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd

from make_us_rich import baselines
from make_us_rich.data import read_klines_csv, validate_klines
from make_us_rich.preprocessing.features import build_features
from make_us_rich.preprocessing.volatility import NORM_VOL
from make_us_rich.preprocessing.windows import (
    QUANTILE_FEATURES,
    make_quantile_windows,
    stationary_inputs,
)
from make_us_rich.scoring import QUANTILES, score

SYMBOLS = (
    "ADAUSDT", "AVAXUSDT", "BNBUSDT", "BTCUSDT", "DOGEUSDT", "DOTUSDT", "ETHUSDT", "XRPUSDT",
    "ATOMUSDT", "BCHUSDT", "ETCUSDT", "LTCUSDT", "MATICUSDT", "NEOUSDT", "PAXGUSDT", "SHIBUSDT",
    "TRXUSDT", "XLMUSDT", "XMRUSDT", "XTZUSDT",
)
#: the four symbols kept out of training for the "never seen" target (two with trade counts,
#: two without; fixed before any result was seen)
LEFT_OUT = ("AVAXUSDT", "DOTUSDT", "ETCUSDT", "XTZUSDT")
#: inputs every source has (no trade counts)
OHLCV_INPUTS = ("range_vol_6h", "range_vol_24h", "range_vol_7d", "range_vol_30d", "bar_range",
                "hour_vol", "log_return", "return_24h", "volume_ratio")
TAU = np.asarray(QUANTILES)
CACHE = Path(os.environ.get("MKRICH_LAB_CACHE", "/tmp/rs/cache"))


def utc(t) -> pd.Timestamp:
    t = pd.Timestamp(t)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def market_dir() -> Path:
    base = os.environ.get("MKRICH_SHARED_DATA")
    root = Path(base) if base else Path(__file__).resolve().parents[2] / "shared" / "data"
    return root / "market"


def load_features(symbol: str) -> tuple[pd.DataFrame, bool]:
    """The features stage's table of one symbol and whether its source has trade counts (a
    source without them gets the volume as a placeholder that no model here reads)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    cached = CACHE / f"features_{symbol}.pkl"
    if cached.is_file():
        return pickle.loads(cached.read_bytes())
    raw = read_klines_csv(next(market_dir().glob(f"{symbol}_*.csv*")))
    klines, _ = validate_klines(raw, max_missing_fraction=1.0, source=symbol)
    has_trades = bool(klines["trades"].notna().all())
    if not has_trades:
        klines = klines.assign(trades=klines["volume"])
    features = build_features(klines)
    cached.write_bytes(pickle.dumps((features, has_trades)))
    return features, has_trades


@dataclass
class Panel:
    """Stationary inputs of every window of one symbol (float32 [n, L, k]), the raw targets,
    the trailing volatility at the forecast time and the forecast hours."""

    symbol: str
    T: np.ndarray
    y: np.ndarray
    v: np.ndarray
    index: pd.DatetimeIndex
    har_x: np.ndarray  # [n, len(HAR_REGRESSORS)] the last step's HAR regressors
    extra: dict = field(default_factory=dict)

    def mask(self, start=None, end=None) -> np.ndarray:
        keep = np.ones(len(self.y), dtype=bool)
        if start is not None:
            keep &= self.index >= utc(start)
        if end is not None:
            keep &= self.index < utc(end)
        return keep


def make_panel(symbol: str, features: pd.DataFrame, sequence_length: int, inputs: tuple[str, ...]) -> Panel:
    windows = make_quantile_windows(features, sequence_length)
    parts = [stationary_inputs(windows.X[i : i + 20000], inputs).astype(np.float32)
             for i in range(0, len(windows.y), 20000)]
    har_idx = [QUANTILE_FEATURES.index(c) for c in baselines.HAR_REGRESSORS]
    return Panel(symbol, np.concatenate(parts), windows.y, windows.norm_vol, windows.index,
                 windows.X[:, -1, har_idx].astype(np.float64))


def panels(sequence_length: int = 48, inputs: tuple[str, ...] = OHLCV_INPUTS, symbols=SYMBOLS) -> dict[str, Panel]:
    digest = hashlib.sha256(",".join(inputs).encode()).hexdigest()[:12]  # stable across processes
    key = CACHE / f"panels_{sequence_length}_{digest}.pkl"
    if key.is_file():
        out = pickle.loads(key.read_bytes())
        if all(s in out for s in symbols):
            return {s: out[s] for s in symbols}
    out = {s: make_panel(s, load_features(s)[0], sequence_length, inputs) for s in symbols}
    key.write_bytes(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
    return out


def baseline_forecasts(symbol: str, start: str, end: str) -> dict[str, pd.DataFrame]:
    """Persistence, A, GARCH-t, HAR of the project, walk-forward over ``[start, end)``, cached."""
    path = CACHE / f"baselines_{symbol}_{start}_{end}.pkl"
    if path.is_file():
        return pickle.loads(path.read_bytes())
    features, _ = load_features(symbol)
    t0, t1 = utc(start), utc(end)
    history = features[features.index < t1]
    fit_window = baselines.FIT_WINDOW
    if (history.index < t0).sum() < 24 * 45:  # listed just before the period: fit on what exists
        fit_window = pd.Timedelta(days=31)
    out = {}
    for name, fn in baselines.BASELINES.items():
        kwargs = {"fit_window": fit_window} if name in ("garch_t", "har") else {}
        try:
            out[name] = fn(history, t0, t1 - pd.Timedelta(hours=1), **kwargs)
        except Exception as exc:
            print(f"  baseline {name} failed for {symbol}: {exc}", flush=True)
    path.write_bytes(pickle.dumps(out))
    return out


# --------------------------------------------------------------------------- the pooled model

def build_core(sequence_length: int, n_inputs: int, scaler, z_train: np.ndarray, units: int = 32,
               learning_rate: float = 1e-3, zero_median: bool = True):
    """The project's quantile core (Rescaling -> LSTM -> monotone head, bias at the train
    quantiles) on precomputed stationary inputs."""
    import keras

    from make_us_rich.training.quantile_model import (
        MonotoneQuantiles,
        _inverse_softplus,
        pinball_loss,
    )

    x_in = keras.Input((sequence_length, n_inputs))
    x = keras.layers.Rescaling(scale=scaler.scale_.astype("float32"), offset=scaler.min_.astype("float32"))(x_in)
    x = keras.layers.LSTM(units)(x)
    zq = np.quantile(z_train, QUANTILES)
    center = 0.0 if zero_median else zq[2]
    bias = _inverse_softplus(np.array([zq[1] - zq[0], center - zq[1], 0.0, zq[3] - center, zq[4] - zq[3]]))
    bias[2] = center
    head = keras.layers.Dense(5, kernel_initializer="zeros",
                              bias_initializer=keras.initializers.Constant(bias.astype("float32")))(x)
    z = MonotoneQuantiles(zero_median)(head)
    model = keras.Model(x_in, z)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=pinball_loss)
    return model


def pooled_training_set(pan: dict[str, Panel], symbols, start, end, max_windows: int | None, seed: int,
                        val_days: int = 90, weight: str = "none"):
    """Windows of ``symbols`` with forecast hours in ``[start, end)``; the last ``val_days``
    (by calendar, across all symbols) are the early-stopping set."""
    t_end = utc(end)
    cut = t_end - pd.Timedelta(days=val_days)
    tr_T, tr_z, va_T, va_z, tr_w = [], [], [], [], []
    for s in symbols:
        p = pan[s]
        m_tr = p.mask(start, cut)
        m_va = p.mask(cut, end)
        z = p.y / p.v
        tr_T.append(p.T[m_tr])
        tr_z.append(z[m_tr])
        va_T.append(p.T[m_va])
        va_z.append(z[m_va])
        n = int(m_tr.sum())
        if weight == "vol":  # the per-symbol pinball in return units weighs each hour by its volatility
            tr_w.append(p.v[m_tr] / max(p.v[m_tr].mean(), 1e-12) if n else np.zeros(0))
        else:
            tr_w.append(np.full(n, 1.0 if weight == "none" else 1.0 / max(n, 1)))
    T, z, w = np.concatenate(tr_T), np.concatenate(tr_z), np.concatenate(tr_w)
    w = w / w.mean()
    rng = np.random.default_rng(seed)
    if max_windows and len(z) > max_windows:
        keep = np.sort(rng.choice(len(z), max_windows, replace=False))
        T, z, w = T[keep], z[keep], w[keep]
    return T, z, w, np.concatenate(va_T), np.concatenate(va_z)


def train_pooled(pan, symbols, start, end, *, units=32, epochs=4, patience=2, batch_size=256,
                 learning_rate=1e-3, max_windows=None, seed=0, val_days=90, weight="none",
                 clip=None, verbose=True):
    """One pooled core; returns (model, scaler, info)."""
    import keras
    from sklearn.preprocessing import MinMaxScaler

    from make_us_rich.training.train import BestWeights, seed_everything

    T, z, w, Tv, zv = pooled_training_set(pan, symbols, start, end, max_windows, seed, val_days, weight)
    if clip:
        T = np.clip(T, -clip, clip)
        Tv = np.clip(Tv, -clip, clip)
    flat = T.reshape(-1, T.shape[2])
    scaler = MinMaxScaler((-1.0, 1.0)).fit(flat[:: max(1, len(flat) // 2_000_000)])
    seed_everything(seed)
    model = build_core(T.shape[1], T.shape[2], scaler, z, units, learning_rate)
    stopper = BestWeights((Tv, zv), patience, 4096)
    t0 = time.perf_counter()
    fit = model.fit(T, z, sample_weight=w if weight != "none" else None, validation_data=(Tv, zv),
                    epochs=epochs, batch_size=batch_size, shuffle=True, callbacks=[stopper],
                    verbose=2 if verbose else 0)
    info = {"n_train": len(z), "n_val": len(zv), "seconds": time.perf_counter() - t0,
            "best_epoch": stopper.best_epoch, "initial_val_loss": stopper.initial_val_loss,
            "val_loss": [float(x) for x in fit.history["val_loss"]], "clip": clip}
    del keras
    return model, scaler, info


def predict_z(model, p: Panel, keep: np.ndarray, clip=None) -> np.ndarray:
    T = p.T[keep]
    if clip:
        T = np.clip(T, -clip, clip)
    return np.asarray(model.predict(T, batch_size=4096, verbose=0), dtype=np.float64)


# --------------------------------------------------------------------------- HAR and calibration

def pooled_har(pan, symbols, start, end) -> baselines.HarFit:
    """One HAR fit on the pooled training hours of ``symbols`` (the log-range regression is
    scale-free up to its intercept, so one fit serves every symbol)."""
    frames = []
    for s in symbols:
        f, _ = load_features(s)
        f = f[((f.index >= utc(start)) if start is not None else True) & (f.index < utc(end))]
        frames.append(f[list(QUANTILE_FEATURES)])
    # fit_har shifts inside each frame: fit per symbol's design then stack
    xs, ys, rs = [], [], []
    for f in frames:
        x = baselines.har_design(f.shift(1))
        y = np.log(np.maximum(f["bar_range"].to_numpy(np.float64), baselines.RANGE_FLOOR))
        ok = np.isfinite(x).all(axis=1) & np.isfinite(y) & f["log_return"].notna().to_numpy()
        xs.append(x[ok])
        ys.append(y[ok])
        rs.append(f["log_return"].to_numpy()[ok])
    x, y, r = np.concatenate(xs), np.concatenate(ys), np.concatenate(rs)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    zq = np.quantile(r / np.exp(x @ coef), QUANTILES)
    return baselines.HarFit(coef=coef, z_quantiles=zq)


def har_from_panel(fit: baselines.HarFit, p: Panel, keep: np.ndarray) -> np.ndarray:
    """Log-return quantiles of a HAR fit from the window's last-step regressors."""
    logs = np.log(np.maximum(p.har_x[keep], baselines.RANGE_FLOOR))
    design = np.column_stack([np.ones(len(logs)), logs])
    return np.exp(design @ fit.coef)[:, None] * fit.z_quantiles[None, :]


SCALE_BOUNDS = (0.5, 2.0)


def _weighted_quantile(u: np.ndarray, w: np.ndarray, level: float) -> float:
    order = np.argsort(u)
    cum = np.cumsum(w[order])
    return float(u[order][min(np.searchsorted(cum, level * cum[-1]), len(u) - 1)])


def fit_scales(z: np.ndarray, q: np.ndarray, bounds=SCALE_BOUNDS) -> np.ndarray:
    """Per-quantile spread multipliers ``s`` (median fixed) of lowest pinball loss on ``(z, q)``:
    with ``d = q - median``, the loss is ``sum |d| rho(u - s)`` for ``u = (z - median) / d``,
    minimized by a weighted quantile of ``u`` (exact, O(n log n))."""
    ok = np.isfinite(z) & np.isfinite(q).all(axis=1)
    z, q = z[ok], q[ok]
    s = np.ones(5)
    if len(z) < 100:
        return s
    med = q[:, 2]
    for j, tau in enumerate(QUANTILES):
        if j == 2:
            continue
        d = q[:, j] - med
        nz = np.abs(d) > 0
        u = (z[nz] - med[nz]) / d[nz]
        level = tau if j > 2 else 1.0 - tau
        s[j] = np.clip(_weighted_quantile(u, np.abs(d[nz]), level), *bounds)
    s[0], s[4] = max(s[0], s[1]), max(s[4], s[3])
    return s


def apply_scales(q: np.ndarray, s: np.ndarray) -> np.ndarray:
    med = q[:, 2:3]
    return med + s[None, :] * (q - med)


def monthly_recalibrate(z_all: np.ndarray, q_all: np.ndarray, index: pd.DatetimeIndex, start, end,
                        trailing_days: int, shrink: float = 0.0) -> tuple[np.ndarray, list]:
    """Walk-forward: at each month of ``[start, end)``, the scales fit on the trailing
    ``trailing_days`` of residuals (hours before the month only) apply to the month's
    forecasts. ``z_all``, ``q_all`` span history before ``start`` too (normalized units)."""
    t0, t1 = utc(start), utc(end)
    out = q_all.copy()
    scales = []
    for m0 in pd.date_range(t0, t1, freq="MS", inclusive="left"):
        m1 = m0 + pd.offsets.MonthBegin(1)
        past = (index >= m0 - pd.Timedelta(days=trailing_days)) & (index < m0)
        s = fit_scales(z_all[past], q_all[past])
        s = 1.0 + (1.0 - shrink) * (s - 1.0)
        rows = (index >= m0) & (index < m1)
        out[rows] = apply_scales(q_all[rows], s)
        scales.append(s.tolist())
    return out, scales


# --------------------------------------------------------------------------- scoring

def scores_row(y: np.ndarray, q: np.ndarray, base: dict[str, np.ndarray], last_close=None) -> dict:
    s = score(y, q)
    mp = s["mean_pinball"]
    row = {"ratio_A": mp / score(y, base["empirical"])["mean_pinball"],
           "cov90": s["intervals"]["90"]["coverage"], "cov50": s["intervals"]["50"]["coverage"],
           "n": s["n"], "pinball": mp}
    for name in ("har", "garch_t"):
        if name in base:
            row[f"ratio_{name}"] = mp / score(y, base[name])["mean_pinball"]
    # median close vs persistence in price units
    yy = np.asarray(y)
    ok = np.isfinite(yy) & np.isfinite(q).all(axis=1)
    lc = np.ones_like(yy) if last_close is None else last_close
    close = lc * np.exp(yy)
    rmse_m = np.sqrt(np.mean((close[ok] - lc[ok] * np.exp(q[ok, 2])) ** 2))
    rmse_p = np.sqrt(np.mean((close[ok] - lc[ok]) ** 2))
    row["rmse_ratio"] = rmse_m / rmse_p
    return row


def targets_check(rows: dict[str, dict], left_out_rows: dict[str, dict] | None = None,
                  per_symbol: dict[str, float] | None = None) -> dict:
    """The issue's quality targets over per-symbol rows (ratio_A, ratio_har, cov90, cov50,
    rmse_ratio); ``per_symbol``: each symbol's per-symbol model pinball ratio vs A."""
    ra = np.array([r["ratio_A"] for r in rows.values()])
    out = {
        "mean_ratio_A": float(ra.mean()),
        "mean_ratio_A_ok": bool(ra.mean() <= 0.95),
        "mean_ratio_har": float(np.mean([r["ratio_har"] for r in rows.values()])),
        "cov90_all_ok": all(0.88 <= r["cov90"] <= 0.92 for r in rows.values()),
        "cov50_all_ok": all(0.47 <= r["cov50"] <= 0.53 for r in rows.values()),
        "cov90_misses": {s: round(r["cov90"], 3) for s, r in rows.items() if not 0.88 <= r["cov90"] <= 0.92},
        "cov50_misses": {s: round(r["cov50"], 3) for s, r in rows.items() if not 0.47 <= r["cov50"] <= 0.53},
        "median_rmse_ratio": float(np.median([r["rmse_ratio"] for r in rows.values()])),
    }
    # <= HAR on the mean: mean pinball ratio vs A of the model vs HAR's
    out["har_mean_ratio_A"] = float(np.mean([r["ratio_A"] / r["ratio_har"] for r in rows.values()]))
    out["le_har_on_mean"] = bool(out["mean_ratio_A"] <= out["har_mean_ratio_A"])
    if per_symbol:
        wins = [s for s in rows if s in per_symbol and rows[s]["ratio_A"] <= per_symbol[s]]
        out["beats_per_symbol"] = f"{len(wins)}/{len([s for s in rows if s in per_symbol])}"
    if left_out_rows:
        out["left_out_mean_ratio_A"] = float(np.mean([r["ratio_A"] for r in left_out_rows.values()]))
    return out


# --------------------------------------------------------------------------- market-wide inputs

MARKET_INPUTS = ("btc_z", "market_abs_z", "market_regime")


def market_frame(basket) -> pd.DataFrame:
    """Hourly market-wide inputs from the symbols of ``basket`` (each causal at its hour):
    BTC's return over its trailing volatility, the basket's mean absolute normalized return and
    its mean log ratio of 24 h to 30 d range volatility (the volatility regime)."""
    z, reg = {}, {}
    for s in basket:
        f, _ = load_features(s)
        z[s] = (f["log_return"] / f[NORM_VOL]).clip(-10, 10)
        reg[s] = np.log(np.maximum(f["range_vol_24h"], 1e-6) / np.maximum(f["range_vol_30d"], 1e-6))
    z, reg = pd.DataFrame(z), pd.DataFrame(reg)
    btc = z["BTCUSDT"] if "BTCUSDT" in z else z.mean(axis=1)
    out = pd.DataFrame({"btc_z": btc, "market_abs_z": z.abs().mean(axis=1).clip(upper=10),
                        "market_regime": reg.mean(axis=1)})
    return out


def add_market(p: Panel, market: pd.DataFrame, sequence_length: int) -> Panel:
    """``p`` with the market inputs appended to every step (0 where the market has no value)."""
    features, _ = load_features(p.symbol)
    m = market.reindex(features.index).fillna(0.0).to_numpy(np.float32)
    pos = features.index.get_indexer(p.index)
    rows = pos[:, None] - sequence_length + np.arange(sequence_length)[None, :]
    T = np.concatenate([p.T, m[rows]], axis=2)
    return Panel(p.symbol, T, p.y, p.v, p.index, p.har_x, p.extra)


# --------------------------------------------------------------------------- calendar inputs

CALENDAR_INPUTS = ("hour_sin", "hour_cos", "dow_sin", "dow_cos", "week_hour_vol")


def _week_hour_vol(features: pd.DataFrame, weeks: int = 8) -> pd.Series:
    """Mean ``|log_return|`` at the hour of the week of the *next* candle over the previous
    ``weeks`` weeks (``t + 1h - 168h * k``), on the hourly grid: the weekly cycle, known at t."""
    r = features["log_return"].abs()
    grid = r.reindex(pd.date_range(r.index[0], r.index[-1], freq="1h"))
    values = grid.to_numpy()
    lagged = np.full((weeks, len(values)), np.nan)
    for k in range(1, weeks + 1):
        lag = 168 * k - 1
        if lag < len(values):
            lagged[k - 1, lag:] = values[: len(values) - lag]
    count = np.isfinite(lagged).sum(axis=0)
    mean = np.where(count >= weeks // 2, np.nansum(lagged, axis=0) / np.maximum(count, 1), np.nan)
    return pd.Series(mean, index=grid.index).reindex(r.index)


def add_calendar(p: Panel, sequence_length: int, which=CALENDAR_INPUTS) -> Panel:
    """``p`` with hour-of-day / day-of-week of each step's *next* hour (sin, cos) and the
    weekly-seasonal volatility (log, over the window's last trailing volatility) appended."""
    features, _ = load_features(p.symbol)
    nxt = features.index + pd.Timedelta(hours=1)
    hour = nxt.hour.to_numpy() + 0.0
    dow = nxt.dayofweek.to_numpy() + hour / 24.0
    cols = {"hour_sin": np.sin(2 * np.pi * hour / 24), "hour_cos": np.cos(2 * np.pi * hour / 24),
            "dow_sin": np.sin(2 * np.pi * dow / 7), "dow_cos": np.cos(2 * np.pi * dow / 7)}
    pos = features.index.get_indexer(p.index)
    rows = pos[:, None] - sequence_length + np.arange(sequence_length)[None, :]
    parts = [np.stack([cols[c] for c in which if c in cols], axis=1).astype(np.float32)[rows]]
    if "week_hour_vol" in which:
        wv = np.log(np.maximum(_week_hour_vol(features).to_numpy(), 1e-6))
        wv = np.nan_to_num(wv, nan=np.nan)  # NaN in the warm-up: filled with the hour_vol below
        hv = np.log(np.maximum(features["hour_vol"].to_numpy(), 1e-6))
        wv = np.where(np.isfinite(wv), wv, hv)
        w = wv[rows] - np.log(p.v)[:, None]
        parts.append(np.maximum(w, np.log(1e-2)).astype(np.float32)[..., None])
    T = np.concatenate([p.T, *parts], axis=2)
    return Panel(p.symbol, T, p.y, p.v, p.index, p.har_x, p.extra)
