"""One experiment of the pooled-model research (issue 21): train a pooled core on the symbols
outside :data:`universal_lab.LEFT_OUT`, forecast a period walk-forward for all 20 symbols, and
score every post-processing (HAR blend weight x calibration) beside the baselines.

    .venv/bin/python bench/universal_experiment.py --name base --train-end 2022-01-01 \
        --period 2022-01-01 2023-01-01 [--max-windows 200000] [--epochs 3] [--seeds 0]

Choices are made on the validation year (2022, model trained on data before it); the test
year is run once with the chosen settings. Results: a JSON per experiment in --results.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import universal_lab as L

BLENDS = (0.0, 0.25, 0.5, 0.75)
CALIBRATIONS = ("none", "static90", "monthly30", "monthly60", "monthly90", "monthly180", "monthly365")


def period_forecasts(models, pan, har_fit, symbol, start, end, clip=None):
    """z-unit forecasts of the LSTM (seed-averaged) and the pooled HAR from a year before
    ``start`` (calibration history) to ``end``; y in z units; the index."""
    p = pan[symbol]
    keep = p.mask(pd.Timestamp(start) - pd.Timedelta(days=366), end)
    z_lstm = np.mean([L.predict_z(m, p, keep, clip) for m in models], axis=0)
    v = p.v[keep]
    z_har = L.har_from_panel(har_fit, p, keep) / v[:, None]
    return {"z": p.y[keep] / v, "y": p.y[keep], "v": v, "index": p.index[keep], "lstm": z_lstm, "har": z_har}


def calibrated(zq, f, cal, start, end):
    """Apply calibration ``cal`` (z units) to forecasts ``zq`` over the period."""
    if cal == "none":
        return zq
    if cal.startswith("static"):
        days = int(cal[len("static"):])
        t0 = pd.Timestamp(start)
        past = (f["index"] >= t0 - pd.Timedelta(days=days)) & (f["index"] < t0)
        return L.apply_scales(zq, L.fit_scales(f["z"][past], zq[past]))
    days = int(cal[len("monthly"):])
    out, _ = L.monthly_recalibrate(f["z"], zq, f["index"], start, end, days)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--train-start", default=None)
    ap.add_argument("--train-end", default="2022-01-01")
    ap.add_argument("--period", nargs=2, default=["2022-01-01", "2023-01-01"])
    ap.add_argument("--max-windows", type=int, default=200_000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--patience", type=int, default=2)
    ap.add_argument("--units", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--seq", type=int, default=48)
    ap.add_argument("--weight", default="none", choices=("none", "symbol", "vol"))
    ap.add_argument("--clip", type=float, default=None)
    ap.add_argument("--market", action="store_true", help="market-wide inputs (basket: the training symbols)")
    ap.add_argument("--calendar", default=None, help="comma-separated calendar inputs (universal_lab.CALENDAR_INPUTS)")
    ap.add_argument("--train-all", action="store_true", help="train on all 20 symbols (no left-out)")
    ap.add_argument("--results", default="/tmp/rs/results")
    ap.add_argument("--model-prefix", default=None, help="reuse the trained cores of this experiment")
    args = ap.parse_args()

    start, end = (L.utc(x) for x in args.period)
    pan = L.panels(args.seq)
    train_syms = list(L.SYMBOLS) if args.train_all else [s for s in L.SYMBOLS if s not in L.LEFT_OUT]
    train_syms = [s for s in train_syms if (pan[s].index < L.utc(args.train_end)).sum() > 24 * 120]
    if args.market:
        market = L.market_frame(train_syms)
        pan = {s: L.add_market(p, market, args.seq) for s, p in pan.items()}
    if args.calendar:
        which = tuple(args.calendar.split(","))
        pan = {s: L.add_calendar(p, args.seq, which) for s, p in pan.items()}
    models, infos = [], []
    import keras

    import make_us_rich.training.quantile_model  # noqa: F401 - registers the custom layers

    for seed in args.seeds:
        saved = Path(args.results) / f"{args.model_prefix or args.name}_seed{seed}.keras"
        if saved.is_file():
            models.append(keras.models.load_model(saved, custom_objects={"pinball_loss": None}, compile=False))
            infos.append(json.loads(saved.with_suffix(".info.json").read_text()))
            continue
        m, _, info = L.train_pooled(pan, train_syms, args.train_start, args.train_end, units=args.units,
                                    epochs=args.epochs, patience=args.patience, batch_size=args.batch_size,
                                    learning_rate=args.lr, max_windows=args.max_windows or None, seed=seed,
                                    weight=args.weight, clip=args.clip)
        print(f"seed {seed}: {info}", flush=True)
        models.append(m)
        infos.append(info)
        saved.parent.mkdir(parents=True, exist_ok=True)
        m.save(saved)
        saved.with_suffix(".info.json").write_text(json.dumps(info))
    har_fit = L.pooled_har(pan, train_syms, args.train_start, args.train_end)

    results: dict = {}
    forecasts = {}
    for s in L.SYMBOLS:
        if (pan[s].index >= start).sum() == 0:
            continue
        forecasts[s] = period_forecasts(models, pan, har_fit, s, start, end, args.clip)
    for s, f in forecasts.items():
        base = L.baseline_forecasts(s, args.period[0], args.period[1])
        if set(base) != {"persistence", "empirical", "garch_t", "har"}:
            print(f"{s}: baselines incomplete over the period (too little history), left out", flush=True)
            continue
        in_period = (f["index"] >= start) & (f["index"] < end)
        idx = f["index"][in_period]
        b = {k: v.reindex(idx).to_numpy() for k, v in base.items()}
        y = f["y"][in_period]
        har_month_z = base["har"].reindex(f["index"]).to_numpy() / f["v"][:, None]
        for blend in BLENDS:
            for kind, other in (("pooledHAR", f["har"]), ("monthlyHAR", har_month_z)):
                if blend == 0.0 and kind == "monthlyHAR":
                    continue
                zq = (1 - blend) * f["lstm"] + blend * other
                if kind == "monthlyHAR":  # no history before the period: fill with the LSTM
                    zq = np.where(np.isfinite(zq), zq, f["lstm"])
                for cal in CALIBRATIONS:
                    q = calibrated(zq, f, cal, start, end)[in_period] * f["v"][in_period][:, None]
                    key = f"{kind}{blend:g}/{cal}" if blend else f"lstm/{cal}"
                    results.setdefault(key, {})[s] = L.scores_row(y, q, b)
    # the baselines' own rows, for the table
    summary = {}
    for key, rows in results.items():
        seen = {s: r for s, r in rows.items() if s not in L.LEFT_OUT}
        out = {s: r for s, r in rows.items() if s in L.LEFT_OUT}
        summary[key] = L.targets_check(seen, out)
        summary[key]["all20_mean_ratio_A"] = float(np.mean([r["ratio_A"] for r in rows.values()]))
        summary[key]["all20_cov_ok"] = sum(0.88 <= r["cov90"] <= 0.92 and 0.47 <= r["cov50"] <= 0.53 for r in rows.values())
    best = sorted(summary, key=lambda k: summary[k]["all20_mean_ratio_A"])
    print(f"{'config':<28} {'seen A':>7} {'left A':>7} {'HAR A':>7} {'cov ok/20':>9} {'rmse':>7}")
    for k in best:
        v = summary[k]
        print(f"{k:<28} {v['mean_ratio_A']:7.4f} {v.get('left_out_mean_ratio_A', float('nan')):7.4f} "
              f"{v['har_mean_ratio_A']:7.4f} {v['all20_cov_ok']:9d} {v['median_rmse_ratio']:7.4f}")
    Path(args.results).mkdir(parents=True, exist_ok=True)
    path = Path(args.results) / f"{args.name}.json"
    path.write_text(json.dumps({"args": vars(args), "train_symbols": train_syms, "infos": infos,
                                "summary": summary, "rows": results, "time": time.time()}, indent=1, default=float))
    print(f"-> {path}")


if __name__ == "__main__":
    main()
