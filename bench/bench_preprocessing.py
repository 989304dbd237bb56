"""Benchmark: the data stages of the loop (price/calendar features, volatility features, windows)
on 5 years of hourly BTCUSDT klines (43,800 rows) with the default sequence_length, against the
row-loop reference in the same run. Outputs are checked equal before anything is timed.

    make bench            # or: .venv/bin/python bench/bench_preprocessing.py
"""

from __future__ import annotations

import numpy as np

from common import machine, save, shared_data, timeit
from make_us_rich.data import read_klines_csv, validate_klines
from make_us_rich.preprocessing import FEATURE_COLUMNS, extract_features_from_dataset
from make_us_rich.preprocessing.volatility import add_volatility_features
from make_us_rich.preprocessing.windows import QUANTILE_FEATURES, TARGET, make_quantile_windows
from make_us_rich.training.config import TrainConfig
from reference_preprocessing import reference_price_calendar, reference_windows

ROWS, SEQ = 43_800, TrainConfig().sequence_length


def main() -> None:
    klines, _ = validate_klines(read_klines_csv(shared_data("BTCUSDT_1h_until_2023.csv.gz")))
    klines = klines.iloc[-ROWS:].reset_index(drop=True)

    ref_features_s, _, ref_features = timeit(lambda: reference_price_calendar(klines), repeat=1)
    features = extract_features_from_dataset(klines)
    if not np.array_equal(ref_features.to_numpy(), features[list(FEATURE_COLUMNS)].to_numpy()):
        raise SystemExit("price/calendar features differ from the reference")
    full = add_volatility_features(features, klines)
    frame = full[list(QUANTILE_FEATURES)]
    ref_windows_s, _, (ref_X, ref_y) = timeit(lambda: reference_windows(frame, SEQ, TARGET), repeat=1)
    ours = make_quantile_windows(full, SEQ)
    if not (np.array_equal(ref_X, ours.X) and np.array_equal(ref_y, ours.y)):
        raise SystemExit("windows differ from the reference")

    features_s, _, _ = timeit(lambda: extract_features_from_dataset(klines), repeat=20)
    volatility_s, _, _ = timeit(lambda: add_volatility_features(features, klines), repeat=5)
    windows_s, _, _ = timeit(lambda: make_quantile_windows(full, SEQ), repeat=20)
    result = {
        "benchmark": "preprocessing",
        "rows": ROWS,
        "sequence_length": SEQ,
        "windows": len(ours.y),
        "reference_features_s": ref_features_s,
        "features_median_s": features_s,
        "features_speedup": ref_features_s / features_s,
        "reference_windows_s": ref_windows_s,
        "windows_median_s": windows_s,
        "windows_speedup": ref_windows_s / windows_s,
        "volatility_features_median_s": volatility_s,
        "machine": machine(),
    }
    path = save("preprocessing", result)
    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}")
    print(f"{ROWS} hourly rows, sequence_length {SEQ}, {len(ours.y)} windows (outputs equal to the reference):")
    print(f"  price/calendar features: reference (iterrows) {ref_features_s:7.3f} s, ours "
          f"{features_s:.4f} s (median of 20): {result['features_speedup']:.0f}x")
    print(f"  windows: reference (a slice per window) {ref_windows_s:7.3f} s, ours "
          f"{windows_s:.4f} s (median of 20): {result['windows_speedup']:.0f}x")
    print(f"  volatility features (no reference): {volatility_s:.3f} s (median of 5)   -> {path}")


if __name__ == "__main__":
    main()
