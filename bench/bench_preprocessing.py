"""Benchmark: preprocessing (features -> split -> scale -> windows) of 5 years of hourly
BTCUSDT klines (43,800 rows) with sequence_length 120, against the row-loop reference in the
same run. Outputs are checked equal before anything is timed.

    make bench            # or: .venv/bin/python bench/bench_preprocessing.py
"""

from __future__ import annotations

import numpy as np

from common import machine, save, shared_data, timeit
from make_us_rich.data import read_klines_csv, validate_klines
from make_us_rich.preprocessing import preprocess
from reference_preprocessing import reference_preprocess

ROWS, SEQ = 43_800, 120


def main() -> None:
    klines, _ = validate_klines(read_klines_csv(shared_data("BTCUSDT_1h_until_2023.csv.gz")))
    klines = klines.iloc[-ROWS:].reset_index(drop=True)

    ref_time, _, ref = timeit(lambda: reference_preprocess(klines, SEQ), repeat=1)
    ours = preprocess(klines, SEQ)
    for a, b, name in zip(
        ref,
        (ours.X_train, ours.y_train, ours.X_val, ours.y_val, ours.X_test, ours.y_test),
        ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"),
        strict=True,
    ):
        if a.shape != b.shape or not np.array_equal(a, b):
            raise SystemExit(f"outputs differ from the reference in {name}")
    our_time, times, _ = timeit(lambda: preprocess(klines, SEQ), repeat=30)

    result = {
        "benchmark": "preprocessing",
        "rows": ROWS,
        "sequence_length": SEQ,
        "windows": len(ours.X_train) + len(ours.X_val) + len(ours.X_test),
        "reference_row_loop_s": ref_time,
        "vectorized_median_s": our_time,
        "vectorized_min_s": min(times),
        "speedup": ref_time / our_time,
        "machine": machine(),
    }
    path = save("preprocessing", result)
    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}")
    print(f"preprocessing {ROWS} hourly rows, sequence_length {SEQ} (outputs equal):")
    print(f"  reference (iterrows + slice per window): {ref_time:8.3f} s")
    print(f"  make_us_rich (vectorized, strided):      {our_time:8.4f} s (median of 30)")
    print(f"  speedup: {result['speedup']:.0f}x   -> {path}")


if __name__ == "__main__":
    main()
