"""Reference for the pooled-model research: the project's per-symbol quantile model (default
config; without the trade-count input where the source has none) trained on the year before a
period and scored on it walk-forward, per symbol. Results: --results/per_symbol_<period>.json.

    .venv/bin/python bench/universal_per_symbol.py --period 2022-01-01 2023-01-01
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import universal_lab as L


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--period", nargs=2, default=["2022-01-01", "2023-01-01"])
    ap.add_argument("--train-days", type=int, default=365)
    ap.add_argument("--results", default="/tmp/rs/results")
    args = ap.parse_args()
    from make_us_rich.training import quantile_model as qm
    from make_us_rich.training.config import TrainConfig

    t0, t1 = (L.utc(x) for x in args.period)
    rows = {}
    for s in L.SYMBOLS:
        features, has_trades = L.load_features(s)
        train = features[(features.index >= t0 - pd.Timedelta(days=args.train_days)) & (features.index < t0)]
        if len(train) < 24 * 120:
            print(f"{s}: {len(train)} training hours, skipped", flush=True)
            continue
        config = TrainConfig() if has_trades else TrainConfig(inputs=L.OHLCV_INPUTS)
        started = time.perf_counter()
        model = qm.train_quantile_model(train, config)
        margin = pd.Timedelta(hours=config.sequence_length + 1)
        w = qm.make_quantile_windows(features[(features.index >= t0 - margin) & (features.index < t1)],
                                     config.sequence_length).since(t0)
        q = model.predict_returns(w)
        base = {k: v.reindex(w.index).to_numpy() for k, v in L.baseline_forecasts(s, *args.period).items()}
        rows[s] = L.scores_row(w.y, q.to_numpy(), base)
        rows[s]["seconds"] = time.perf_counter() - started
        print(s, {k: round(v, 4) for k, v in rows[s].items()}, flush=True)
    Path(args.results).mkdir(parents=True, exist_ok=True)
    path = Path(args.results) / f"per_symbol_{args.period[0]}.json"
    path.write_text(json.dumps(rows, indent=1))
    print(f"-> {path}")


if __name__ == "__main__":
    main()
