"""Benchmark: one hourly retrain of one symbol on one year of real klines (BTCUSDT 2023 from
../shared/data) with the default config, end to end through the stage chain (features ->
split -> sequences -> scale -> train -> ONNX -> evaluation beside the baselines -> gate), and
the ``tiny`` preset on the same data as the in-run reference. Each run is a fresh subprocess so
its peak RSS is its own.

    .venv/bin/python bench/bench_training.py
"""

from __future__ import annotations

import json
import subprocess
import sys

from common import machine, save, shared_data

CHILD = r"""
import json, resource, sys, tempfile, time
import pandas as pd
from make_us_rich.data import read_klines_csv, validate_klines
from make_us_rich.training import preset
from make_us_rich.workflow import train_from_klines
path, name = sys.argv[1], sys.argv[2]
k = read_klines_csv(path)
k, _ = validate_klines(k[k["timestamp"] >= pd.Timestamp("2023-01-01", tz="UTC")])
cfg = preset(name)
t0 = time.perf_counter()
run = train_from_klines(k, "BTCUSDT", tempfile.mkdtemp(), cfg)
total = time.perf_counter() - t0
t, test = run.metrics["training"], run.metrics["test"]
print(json.dumps({
    "preset": name, "config": cfg.to_dict(), "windows": t["train_windows"],
    "epochs_run": t["epochs_run"], "best_epoch": t["best_epoch"],
    "train_s": t["seconds"], "s_per_epoch": t["seconds_per_epoch"], "total_s": total,
    "pinball_vs_empirical": test["ratio"].get("pinball_vs_empirical"),
    "coverage90": test["model"]["intervals"]["90"]["coverage"], "gate": run.metrics["gate"]["passed"],
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def run(name: str) -> dict:
    path = shared_data("BTCUSDT_1h_until_2023.csv.gz")
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), name], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    fast, tiny = run("fast"), run("tiny")
    result = {"benchmark": "training", "data": "BTCUSDT 1h 2023 (8759 candles; test = last 10 %)",
              "fast": fast, "tiny": tiny, "total_ratio_fast_vs_tiny": fast["total_s"] / tiny["total_s"],
              "machine": machine()}
    path = save("training", result)
    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB")
    for r in (fast, tiny):
        print(f"  {r['preset']:<5} {r['windows']} train windows: {r['s_per_epoch']:.2f} s/epoch, "
              f"{r['epochs_run']} epochs (best {r['best_epoch']}), train {r['train_s']:.1f} s, "
              f"end to end {r['total_s']:.1f} s, peak RSS {r['peak_rss_mib']:.0f} MiB, "
              f"pinball vs A {r['pinball_vs_empirical']:.4f}, cov90 {r['coverage90']:.3f}, gate {r['gate']}")
    print(f"  one default retrain end to end = {result['total_ratio_fast_vs_tiny']:.1f}x the tiny one  -> {path}")


if __name__ == "__main__":
    main()
