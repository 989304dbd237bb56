"""Benchmark: one retrain on one year of real hourly klines (BTCUSDT 2023 from ../shared/data),
the default ``fast`` preset end to end (train + ONNX export + evaluation), and the ``large``
preset (the seed project's 2 x LSTM(128), window 120) for a few epochs to compare the cost of an
epoch. Each run is a fresh subprocess so its peak RSS is its own.

    .venv/bin/python bench/bench_training.py [--large-epochs 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from common import machine, save, shared_data

CHILD = r"""
import json, resource, sys, tempfile, time
import pandas as pd
from make_us_rich.data import read_klines_csv, validate_klines
from make_us_rich.training import preset
from make_us_rich.training.workflow import train_from_klines
path, name, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
k = read_klines_csv(path)
k, _ = validate_klines(k[k["timestamp"] >= pd.Timestamp("2023-01-01", tz="UTC")])
cfg = preset(name)
if epochs:
    cfg = cfg.with_overrides(max_epochs=epochs, patience=epochs)
t0 = time.perf_counter()
run = train_from_klines(k, "BTCUSDT", tempfile.mkdtemp(), cfg)
total = time.perf_counter() - t0
t = run.metrics["training"]
print(json.dumps({
    "preset": name, "config": cfg.to_dict(), "windows": t["train_windows"],
    "epochs_run": t["epochs_run"], "best_epoch": t["best_epoch"],
    "train_s": t["seconds"], "s_per_epoch": t["seconds_per_epoch"], "total_s": total,
    "rmse_ratio": run.metrics["test"]["ratio"]["rmse"],
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def run(name: str, epochs: int) -> dict:
    path = shared_data("BTCUSDT_1h_until_2023.csv.gz")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), name, str(epochs)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--large-epochs", type=int, default=3)
    args = ap.parse_args()
    fast = run("fast", 0)
    large = run("large", args.large_epochs)
    result = {"benchmark": "training", "data": "BTCUSDT 1h 2023 (8759 candles)",
              "fast": fast, "large": large,
              "epoch_cost_ratio_large_vs_fast": large["s_per_epoch"] / fast["s_per_epoch"],
              "machine": machine()}
    path = save("training", result)
    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB")
    for r in (fast, large):
        print(f"  {r['preset']:<5} {r['windows']} train windows: {r['s_per_epoch']:.2f} s/epoch, "
              f"{r['epochs_run']} epochs (best {r['best_epoch']}), train {r['train_s']:.1f} s, "
              f"end to end {r['total_s']:.1f} s, peak RSS {r['peak_rss_mib']:.0f} MiB, "
              f"RMSE ratio {r['rmse_ratio']:.4f}")
    print(f"  an epoch of 'large' costs {result['epoch_cost_ratio_large_vs_fast']:.1f}x one of 'fast'  -> {path}")


if __name__ == "__main__":
    main()
