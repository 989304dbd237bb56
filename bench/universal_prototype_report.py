"""The 2023 figures of the research prototype in bench_universal.py's format: the setting chosen
on 2022 (the pooled LSTM averaged with the pooled HAR, no calibration), from the runs

    P=".venv/bin/python bench/universal_experiment.py --train-end 2023-01-01 --period 2023-01-01 2024-01-01"
    $P --name final23_16               # trained on the 16 pairs outside the left-out set
    $P --name final23_20 --train-all   # trained on all 20
    .venv/bin/python bench/universal_per_symbol.py --period 2023-01-01 2024-01-01

    .venv/bin/python bench/universal_prototype_report.py [--results /tmp/rs/results]

-> bench/results/universal_prototype.json and the Markdown table of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench_universal import LEFT_OUT, TARGETS, markdown, targets
from common import machine, save

CHOSEN = "pooledHAR0.5/none"


def rows_of(results: dict, symbols=None) -> dict:
    out = {}
    for s, r in results.items():
        if symbols is None or s in symbols:
            out[s] = {**r, "har_ratio_A": r["ratio_A"] / r["ratio_har"], "ratio_A_ci95": None}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default="/tmp/rs/results")
    args = ap.parse_args()
    base = Path(args.results)
    all20 = json.loads((base / "final23_20.json").read_text())
    seen16 = json.loads((base / "final23_16.json").read_text())
    per_symbol = json.loads((base / "per_symbol_2023-01-01.json").read_text())
    rows = rows_of(all20["rows"][CHOSEN])
    left_out = rows_of(seen16["rows"][CHOSEN], LEFT_OUT)
    per = rows_of(per_symbol)
    payload = {
        "benchmark": "universal quality (issue 21), research prototype",
        "machine": machine(),
        "setting": CHOSEN,
        "train": {"all20": all20["args"], "infos": all20["infos"], "seen16_infos": seen16["infos"]},
        "targets": targets(rows, per, left_out),
        "target_texts": TARGETS,
        "universal": rows,
        "per_symbol_models": per,
        "universal_16_on_left_out": left_out,
    }
    print(markdown(payload))
    print(f"  -> {save('universal_prototype', payload)}")


if __name__ == "__main__":
    main()
