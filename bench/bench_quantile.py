"""Benchmark: the quantile forecast (issue 11) against honest baselines, by rolling origin.

For each quarter (the forecast period) a model is trained on the year before it, as the hourly
retrain does, and forecasts every hour of the quarter from the 48 h before it (walk-forward).
Beside it, computed by our code on the same hours: persistence, A = empirical quantiles of the
last 720 returns, GARCH(1,1)-t refit monthly, linear HAR refit monthly.

1. Validation quarters (2022 Q3, Q4): every variant, scored alone and averaged with HAR
   (quantile averaging); the lowest mean pinball ratio vs A over them is chosen. The test
   quarters play no part in this choice.
2. Test quarters (2023 Q1-Q4): the chosen variant only (both forecasts are reported).
3. Single-window onnxruntime latency of the quantile model vs today's point model.

    .venv/bin/python bench/bench_quantile.py [--quick] [--symbols BTCUSDT BTCEUR]

Needs ../shared/data (BTCUSDT 2018-2023, BTCEUR 2020-2023; MKRICH_SHARED_DATA overrides); says
so and exits when it is missing. Results: bench/results/quantile.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd

from common import machine, save, timeit
from make_us_rich import baselines
from make_us_rich.data import read_klines_csv, validate_klines
from make_us_rich.preprocessing.features import build_features
from make_us_rich.scoring import pinball_ratio_ci, point_errors, score

VALIDATION = [("2022-07-01", "2022-10-01"), ("2022-10-01", "2023-01-01")]
TEST = [("2023-01-01", "2023-04-01"), ("2023-04-01", "2023-07-01"),
        ("2023-07-01", "2023-10-01"), ("2023-10-01", "2024-01-01")]
TRAIN_SPAN = pd.Timedelta(days=365)
#: forecasts scored per trained model: ``lstm`` = what the model serves (with ``blend_har``
#: already averaged with its own HAR), ``lstm+har`` = that averaged with the monthly HAR baseline
CANDIDATES = ("lstm", "lstm+har")
_LSTM_ONLY = {"median": "learned", "blend_har": False}
#: Variants compared on validation; every one spells out what differs from the defaults of the
#: time (they were run in three rounds, each against the previous winner; the results files
#: quantile_round1..3.json hold them).
VARIANTS = {
    "learned-median": _LSTM_ONLY,
    "zero-median": {**_LSTM_ONLY, "median": "zero"},
    "window-24h": {**_LSTM_ONLY, "sequence_length": 24},
    "lstm-16": {**_LSTM_ONLY, "lstm_units": 16},
    "no-volume": {**_LSTM_ONLY, "inputs": ("range_vol_6h", "range_vol_24h", "range_vol_7d",
                                           "range_vol_30d", "bar_range", "hour_vol", "log_return",
                                           "return_24h")},
    "zero-calibrated": {**_LSTM_ONLY, "median": "zero", "calibrate": True},
    "zero-epochs-40": {**_LSTM_ONLY, "median": "zero", "max_epochs": 40},
    # the HAR average inside the served graph (HAR fit on the training year)
    "zero-blend": {"median": "zero", "blend_har": True},
    "learned-blend": {"median": "learned", "blend_har": True},
}
TARGETS = "ratio vs A <= 0.97 and <= GARCH's; cov90 0.88-0.92; cov50 0.47-0.53; RMSE ratio <= 1.00"


def shared_dir() -> Path:
    base = os.environ.get("MKRICH_SHARED_DATA")
    return Path(base) if base else Path(__file__).resolve().parents[2] / "shared" / "data"


def load_features(symbol: str) -> pd.DataFrame:
    klines, _ = validate_klines(read_klines_csv(shared_dir() / f"{symbol}_1h_until_2023.csv.gz"))
    return build_features(klines)


def evaluate_period(features: pd.DataFrame, start: str, end: str, config, label: str) -> dict:
    """Train on the year before ``start``, forecast ``[start, end)``, score beside the baselines."""
    from make_us_rich.training import quantile_model as qm

    t0, t1 = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    train = features[(features.index >= t0 - TRAIN_SPAN) & (features.index < t0)]
    started = time.perf_counter()
    model = qm.train_quantile_model(train, config)
    train_seconds = time.perf_counter() - started
    margin = pd.Timedelta(hours=config.sequence_length + 1)
    windows = qm.make_quantile_windows(features[(features.index >= t0 - margin) & (features.index < t1)],
                                       config.sequence_length)
    keep = windows.index >= t0
    lstm = model.predict_returns(windows)[keep]
    index = lstm.index
    y = features["log_return"].reindex(index).to_numpy()
    last_close = features["close"].shift(1).reindex(index).to_numpy()
    history = features[features.index < t1]
    base = {
        name: fn(history, t0, t1 - pd.Timedelta(hours=1)).reindex(index)
        for name, fn in baselines.BASELINES.items()
    }
    candidates = {"lstm": lstm, "lstm+har": (lstm + base["har"]) / 2.0}  # quantile averaging
    scores = {name: score(y, f) for name, f in {**candidates, **base}.items()}
    close = last_close * np.exp(y)
    rmse = {name: point_errors(close, last_close * np.exp(f["q50"].to_numpy()))["rmse"]
            for name, f in {**candidates, "persistence": base["persistence"]}.items()}
    mp = {name: s["mean_pinball"] for name, s in scores.items()}
    row = {
        "period": label,
        "start": start,
        "end": end,
        "n": scores["lstm"]["n"],
        "garch_vs_A": mp["garch_t"] / mp["empirical"],
        "har_vs_A": mp["har"] / mp["empirical"],
        "baseline_coverage": {n: [scores[n]["intervals"]["90"]["coverage"], scores[n]["intervals"]["50"]["coverage"]]
                              for n in ("empirical", "garch_t", "har")},
        "train_seconds": train_seconds,
        "best_epoch": model.best_epoch,
        "epochs_run": len(model.history.get("val_loss", [])),
        "scores": scores,
    }
    for name, f in candidates.items():
        ci = pinball_ratio_ci(y, f.to_numpy(), base["empirical"].to_numpy())
        row[name] = {
            "ratio_vs_A": mp[name] / mp["empirical"],
            "ratio_vs_A_ci95": [ci["low"], ci["high"]],
            "ratio_vs_garch": mp[name] / mp["garch_t"],
            "ratio_vs_har": mp[name] / mp["har"],
            "cov90": scores[name]["intervals"]["90"]["coverage"],
            "cov50": scores[name]["intervals"]["50"]["coverage"],
            "median_rmse_ratio": rmse[name] / rmse["persistence"],
        }
        m = row[name]
        print(f"  {label} {start[:10]}..{end[:10]} {name:<8}: ratio vs A {m['ratio_vs_A']:.3f} "
              f"[{ci['low']:.3f}-{ci['high']:.3f}], vs GARCH {m['ratio_vs_garch']:.3f}, vs HAR "
              f"{m['ratio_vs_har']:.3f}; cov90 {m['cov90']:.3f} cov50 {m['cov50']:.3f}; RMSE ratio "
              f"{m['median_rmse_ratio']:.4f}", flush=True)
    print(f"    train {train_seconds:.0f} s (best epoch {row['best_epoch']}/{row['epochs_run']})", flush=True)
    return row


def inference_latency(features: pd.DataFrame, config) -> dict:
    """Single-window onnxruntime latency (median ms) of the quantile model, untrained weights:
    latency does not depend on training."""
    from make_us_rich import contract
    from make_us_rich.inference import onnx_session
    from make_us_rich.training import quantile_model as qm
    from make_us_rich.training.export import to_onnx

    year = features[features.index >= pd.Timestamp("2023-01-01", tz="UTC")]
    w = qm.make_quantile_windows(year, config.sequence_length)
    har = qm.fit_har(year[list(qm.QUANTILE_FEATURES)]) if config.blend_har else None
    model = qm.build_quantile_model(config, qm.fit_input_scaler(w.X, config.inputs), w.y / w.norm_vol, har)
    session = onnx_session(to_onnx(model.serving))
    feed = {contract.INPUT_NAME: np.ascontiguousarray(w.X[:1])}
    session.run(None, feed)
    out = {"quantile_b1_ms": timeit(lambda: session.run(None, feed), 500)[0] * 1e3}
    print(f"single-window onnxruntime: quantile model {out['quantile_b1_ms']:.3f} ms", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="2 epochs, one validation quarter (smoke run)")
    ap.add_argument("--symbols", nargs="+", default=["BTCUSDT", "BTCEUR"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--skip-validation", metavar="VARIANT", help="use this variant on test directly")
    ap.add_argument("--out", default="quantile", help="results file name in bench/results")
    ap.add_argument("--latency-only", action="store_true", help="only the single-window latency")
    args = ap.parse_args()
    missing = [s for s in args.symbols if not (shared_dir() / f"{s}_1h_until_2023.csv.gz").is_file()]
    if missing:
        print(f"benchmark data missing for {missing} in {shared_dir()} (set MKRICH_SHARED_DATA); skipped")
        sys.exit(0)
    from make_us_rich.training.config import TrainConfig

    base = TrainConfig(max_epochs=2, patience=1) if args.quick else TrainConfig()
    features = {s: load_features(s) for s in args.symbols}
    payload: dict = {"benchmark": "quantile", "targets": TARGETS, "machine": machine(),
                     "base_config": base.to_dict(), "validation": {}, "test": {}}

    if args.latency_only:
        payload["latency"] = inference_latency(features[args.symbols[0]], base)
        print(f"  -> {save('quantile_latency', payload)}")
        return
    kind = None
    if args.skip_validation:
        chosen = args.skip_validation
    else:
        periods = VALIDATION[-1:] if args.quick else VALIDATION
        mean_ratio = {}
        for name in args.variants:
            cfg = base.with_overrides(**VARIANTS[name])
            print(f"validation, variant {name}: {cfg.to_dict()}", flush=True)
            rows = [evaluate_period(features[s], a, b, cfg, s) for s in args.symbols for a, b in periods]
            payload["validation"][name] = rows
            for kind in CANDIDATES:
                mean_ratio[f"{name}/{kind}"] = float(np.mean([r[kind]["ratio_vs_A"] for r in rows]))
            save(args.out, payload)
        chosen, kind = min(mean_ratio, key=mean_ratio.get).split("/")
        payload["validation_mean_ratio_vs_A"] = mean_ratio
        print(f"chosen on validation: {chosen} ({mean_ratio})", flush=True)

    cfg = base.with_overrides(**VARIANTS[chosen])
    payload["chosen"] = {"variant": chosen, "forecast": kind, "config": cfg.to_dict()}
    print(f"test, variant {chosen}", flush=True)
    rows = []
    for s in args.symbols:
        for a, b in TEST[-1:] if args.quick else TEST:
            rows.append(evaluate_period(features[s], a, b, cfg, s))
            payload["test"] = rows
            save(args.out, payload)
    payload["latency"] = inference_latency(features[args.symbols[0]], cfg)
    print(f"  -> {save(args.out, payload)}")


if __name__ == "__main__":
    main()
