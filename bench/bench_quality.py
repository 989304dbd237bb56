"""Benchmark: forecast quality, honestly. Trains on real klines from ../shared/data and reports
the test RMSE of the model over the RMSE of persistence (next close = last close), < 1 is better.

1. The headline: the default config on BTCUSDT 2018-2023, test = the last 10 % (2023-05..12).
2. The head study behind the default: ``delta`` vs ``level`` head on one-year windows of
   several periods and both quote currencies.

    .venv/bin/python bench/bench_quality.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd

from common import machine, save, shared_data
from make_us_rich.data import read_klines_csv, validate_klines
from make_us_rich.training import TrainConfig
from make_us_rich.training.workflow import train_from_klines

PERIODS = [
    ("BTCUSDT", "2021-01-01", "2021-12-31T23:00Z"),
    ("BTCUSDT", "2022-01-01", "2022-12-31T23:00Z"),
    ("BTCUSDT", "2023-01-01", "2023-12-31T23:00Z"),
    ("BTCEUR", "2022-01-01", "2022-12-31T23:00Z"),
    ("BTCEUR", "2023-01-01", "2023-12-31T23:00Z"),
]


def load(symbol: str) -> pd.DataFrame:
    return read_klines_csv(shared_data(f"{symbol}_1h_until_2023.csv.gz"))


def one(klines: pd.DataFrame, symbol: str, cfg: TrainConfig) -> dict:
    t0 = time.perf_counter()
    run = train_from_klines(klines, symbol, tempfile.mkdtemp(), cfg)
    test = run.metrics["test"]
    return {
        "rmse_ratio": test["ratio"]["rmse"],
        "mae_ratio": test["ratio"]["mae"],
        "model_rmse": test["model"]["rmse"],
        "persistence_rmse": test["persistence"]["rmse"],
        "directional_accuracy": test["model"]["directional_accuracy"],
        "best_epoch": run.metrics["training"]["best_epoch"],
        "epochs_run": run.metrics["training"]["epochs_run"],
        "seconds": time.perf_counter() - t0,
        "test_period": run.card["data"]["test_period"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer epochs (smoke run)")
    args = ap.parse_args()
    base = TrainConfig(max_epochs=3, patience=1) if args.quick else TrainConfig()
    raw = {s: load(s) for s in ("BTCUSDT", "BTCEUR")}

    full, _ = validate_klines(raw["BTCUSDT"])
    headline = one(full, "BTCUSDT", base)
    print(f"BTCUSDT 2018-2023, default config, test {headline['test_period'][0][:10]} .. "
          f"{headline['test_period'][1][:10]}: RMSE ratio {headline['rmse_ratio']:.4f} "
          f"({headline['model_rmse']:.2f} vs persistence {headline['persistence_rmse']:.2f}), "
          f"best epoch {headline['best_epoch']}, {headline['seconds']:.0f} s", flush=True)

    study = []
    for symbol, start, end in PERIODS:
        k = raw[symbol]
        window = k[(k["timestamp"] >= pd.Timestamp(start, tz="UTC")) & (k["timestamp"] <= pd.Timestamp(end))]
        klines, _ = validate_klines(window)
        for head in ("delta", "level"):
            r = one(klines, symbol, base.with_overrides(head=head))
            r.update(symbol=symbol, period=start[:4], head=head)
            study.append(r)
            print(f"  {symbol} {start[:4]} head={head:<5} RMSE ratio {r['rmse_ratio']:.4f} "
                  f"(best epoch {r['best_epoch']}/{r['epochs_run']}, {r['seconds']:.0f} s)", flush=True)

    payload = {"benchmark": "quality", "config": base.to_dict(), "headline": headline,
               "head_study": study, "machine": machine()}
    print(f"  -> {save('quality', payload)}")


if __name__ == "__main__":
    main()
