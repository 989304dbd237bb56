"""Forecast horizons (issue 22): the universal quantile model with a horizon axis (1, 4, 24 h)
against the baselines fitted for each horizon, on the 20 pairs of ../shared/data/market.

Two phases, in this order, in one run:

* **validation**: trained on windows whose longest target ends before 2021-10-01, early
  stopping on 2021-10-01 .. 2021-12-31 (purged), then every hour of 2022 forecast by the frozen
  model. The only choice made here: serve the LSTM alone or averaged with the per-horizon HAR
  (``blend_har``), by the mean pinball ratio vs the empirical baseline at 4 h and 24 h.
* **test**: the same with every date a year later (trained until 2022-12-31, early stopping on
  2022 Q4), evaluated once on 2023 with the choice of the validation phase.

Each cut is purged by the longest horizon (no training or early-stopping target ends after it).
Baselines (make_us_rich.horizons) refit monthly on the trailing year. Scores per horizon and pair:
mean pinball over the empirical baseline's and HAR's with moving-block bootstrap 95 % intervals
(blocks of max(168, 2h) hours), coverage of the 90 % and 50 % intervals with theirs.

Every train window is used unless ``--max-train-windows`` draws a sample (``--quick``: 40k); the
model is scored through Keras (its ONNX export is tested equal in tests/quantile).

    .venv/bin/python bench/bench_horizons.py --quick     # 4 pairs, small sample: a smoke run
    .venv/bin/python bench/bench_horizons.py             # the benchmark; bench/results/horizons.json
    .venv/bin/python bench/bench_horizons.py --report    # its Markdown tables again
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd

from common import RESULTS, machine, save
from make_us_rich import horizons as H
from make_us_rich.data import read_klines_csv, validate_klines
from make_us_rich.errors import InsufficientHistoryError
from make_us_rich.preprocessing.features import build_features
from make_us_rich.preprocessing.pooled import fit_pooled_scaler, pool_windows
from make_us_rich.preprocessing.volatility import VOLATILITY_FEATURES
from make_us_rich.preprocessing.windows import resolve_inputs
from make_us_rich.scoring import score
from make_us_rich.training.config import UNIVERSAL

SYMBOLS = (
    "ADAUSDT", "AVAXUSDT", "BNBUSDT", "BTCUSDT", "DOGEUSDT", "DOTUSDT", "ETHUSDT", "XRPUSDT",
    "ATOMUSDT", "BCHUSDT", "ETCUSDT", "LTCUSDT", "MATICUSDT", "NEOUSDT", "PAXGUSDT", "SHIBUSDT",
    "TRXUSDT", "XLMUSDT", "XMRUSDT", "XTZUSDT",
)
QUICK = ("BTCUSDT", "ETHUSDT", "ETCUSDT", "XTZUSDT")  # two with trade counts, two OHLCV only
HORIZONS = H.DEFAULT_HORIZONS
UTC = "UTC"
PHASES = {
    "validation": {"val_start": "2021-10-01", "test_start": "2022-01-01", "end": "2022-12-31T23:00"},
    "test": {"val_start": "2022-10-01", "test_start": "2023-01-01", "end": "2023-12-31T23:00"},
}
VARIANTS = ("blend", "lstm", "har_pooled", "lstm25_har75")
TARGET_RATIO = 0.93
COVERAGE_90 = (0.87, 0.93)


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


def market_dir() -> Path:
    base = os.environ.get("MKRICH_SHARED_DATA")
    root = Path(base) if base else Path(__file__).resolve().parents[2] / "shared" / "data"
    path = root / "market"
    if not path.is_dir():
        print(f"SKIPPED bench_horizons.py: it needs {path} (../shared/data/market); set MKRICH_SHARED_DATA",
              file=sys.stderr)
        raise SystemExit(0)
    return path


def load_features(symbol: str, work: Path) -> pd.DataFrame:
    """The features stage's table of one pair (cached in ``work``)."""
    cached = work / f"features_{symbol}.pkl"
    if cached.is_file():
        return pickle.loads(cached.read_bytes())
    raw = read_klines_csv(next(market_dir().glob(f"{symbol}_*.csv*")))
    klines, _ = validate_klines(raw, max_missing_fraction=1.0, source=symbol)
    features = build_features(klines)
    cached.write_bytes(pickle.dumps(features, protocol=pickle.HIGHEST_PROTOCOL))
    return features


def baseline_forecasts(symbol: str, vol: pd.DataFrame, start, end, work: Path) -> dict[int, dict[str, pd.DataFrame]]:
    """Every baseline of every horizon over ``[start, end]`` (cached in ``work``)."""
    cached = work / f"baselines_{symbol}_{start.date()}_{end.date()}.pkl"
    if cached.is_file():
        return pickle.loads(cached.read_bytes())
    garch = H.garch_t_horizons(vol, HORIZONS, start, end)
    out = {h: {**H.all_baselines(vol, h, start, end, names=("persistence", "empirical", "har")),
               "garch_t": garch[h]} for h in HORIZONS}
    cached.write_bytes(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
    return out


def part_models(model):
    """Keras models of the served quantiles' parts: the LSTM's log returns per horizon and the
    in-graph HAR's (the served blend is their average)."""
    import keras

    raw = model.serving.input
    lstm = [model.serving.get_layer(f"sqrt_h{h}").output for h in HORIZONS]
    har = [model.serving.get_layer(f"har_log_returns_h{h}").output for h in HORIZONS]
    return keras.Model(raw, lstm), keras.Model(raw, har)


def run_phase(name: str, symbols, args, work: Path, blend: bool) -> dict:
    from make_us_rich.training.quantile_model import fit_horizon_model

    phase = PHASES[name]
    val_start, test_start, end = ts(phase["val_start"]), ts(phase["test_start"]), ts(phase["end"])
    t0 = time.perf_counter()
    tables = {s: load_features(s, work) for s in symbols}
    tables = {s: t[t.index <= end] for s, t in tables.items()}
    pooled = pool_windows(tables, UNIVERSAL.sequence_length)
    y = H.pooled_horizon_targets(pooled, tables, HORIZONS)
    (train, y_train), (val, y_val), (test, y_test) = H.purged_pooled_split(pooled, y, HORIZONS, val_start, test_start)
    n_all = len(train)
    if args.max_train_windows and len(train) > args.max_train_windows:
        keep = np.sort(np.random.default_rng(0).choice(len(train), args.max_train_windows, replace=False))
        train, y_train = train.take(keep), y_train[keep]
    unavailable = {c for lacking in pooled.unavailable.values() for c in lacking}
    inputs = resolve_inputs(UNIVERSAL.inputs, unavailable)
    config = UNIVERSAL.with_overrides(inputs=inputs, blend_har=True, max_epochs=args.epochs,
                                      patience=args.patience, lstm_units=args.units)
    scaler = fit_pooled_scaler(train, inputs)
    har_features = [t[t.index < val_start] for t in tables.values()]
    data_seconds = time.perf_counter() - t0
    print(f"[{name}] {len(train)} of {n_all} train windows, {len(val)} early-stopping, {len(test)} test; "
          f"data {data_seconds:.0f} s", flush=True)
    model = fit_horizon_model(train, val, y_train, y_val, scaler, config, HORIZONS,
                              har_features=har_features, progress="lines")
    print(f"[{name}] trained in {model.seconds:.0f} s, best epoch {model.best_epoch}", flush=True)
    lstm_model, har_model = part_models(model)
    rows: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    recal_days = pd.Timedelta(days=args.recalibrate_days)
    variants: dict[str, dict[int, list[float]]] = {v: {h: [] for h in HORIZONS} for v in VARIANTS}
    if args.recalibrate_days:
        variants["blend_recal"] = {h: [] for h in HORIZONS}
    t1 = time.perf_counter()
    for s in symbols:
        mine = test.symbol == test.symbols.index(s)
        w = test.take(mine)
        if len(w) == 0:
            print(f"[{name}] {s}: no window in the period", flush=True)
            continue
        # the period's windows, and before them those a monthly recalibration fits on
        ext_mask = (pooled.symbol == pooled.symbols.index(s)) & (pooled.time >= (test_start - recal_days).value)
        ext, y_ext = pooled.take(ext_mask), y[ext_mask]
        X = ext.X()
        lstm = np.stack([np.asarray(a) for a in lstm_model.predict(X, batch_size=2048, verbose=0)], axis=1)
        har = np.stack([np.asarray(a) for a in har_model.predict(X, batch_size=2048, verbose=0)], axis=1)
        in_period = np.asarray(ext.index >= test_start)
        assert ext.index[in_period].equals(w.index)
        parts_ext = {"lstm": lstm, "har_pooled": har, "blend": (lstm + har) / 2.0,
                     "lstm25_har75": 0.25 * lstm + 0.75 * har}  # reported only: the library blends 0.5 / 0.5
        parts = {k: v[in_period] for k, v in parts_ext.items()}
        if args.recalibrate_days:  # research, validation only: not in the library
            parts["blend_recal"] = np.stack([
                recalibrated(y_ext[:, j], parts_ext["blend"][:, j, :], ext.index, w.index, h, recal_days)
                for j, h in enumerate(HORIZONS)], axis=1)
        vol = tables[s][list(VOLATILITY_FEATURES)]
        try:
            base = baseline_forecasts(s, vol, w.index[0], w.index[-1], work)
        except InsufficientHistoryError as exc:  # DOTUSDT, listed in 2022-01, in the validation year
            skipped[s] = str(exc)
            print(f"[{name}] {s}: not scored ({exc})", flush=True)
            continue
        served = "blend" if blend else "lstm"
        rows[s] = {}
        for j, h in enumerate(HORIZONS):
            yh = y_test[mine][:, j]
            b = {k: v.reindex(w.index).to_numpy() for k, v in base[h].items()}
            out = H.score_horizon(yh, parts[served][:, j, :], b, h, n_boot=args.n_boot)
            rows[s][str(h)] = summarize(out)
            ok = np.isfinite(yh) & np.isfinite(b["empirical"]).all(axis=1)
            emp = score(yh[ok], b["empirical"][ok])["mean_pinball"]
            for v in variants:
                variants[v][h].append(score(yh[ok], parts[v][ok, j, :])["mean_pinball"] / emp)
            if args.recalibrate_days:
                rs = score(yh[ok], parts["blend_recal"][ok, j, :])
                rows[s][str(h)]["recal"] = {"ratio_empirical": rs["mean_pinball"] / emp,
                                            "cov90": rs["intervals"]["90"]["coverage"],
                                            "cov50": rs["intervals"]["50"]["coverage"]}
        print(f"[{name}] {s}: " + "  ".join(
            f"{h}h {rows[s][str(h)]['ratio_empirical']:.4f}/{rows[s][str(h)]['ratio_har']:.4f} "
            f"cov90 {rows[s][str(h)]['cov90']:.3f}" for h in HORIZONS), flush=True)
    return {
        "served": "blend" if blend else "lstm",
        "cuts": {k: str(v) for k, v in (("val_start", val_start), ("test_start", test_start), ("end", end))},
        "train": {"windows": len(train), "windows_available": n_all, "early_stopping_windows": len(val),
                  "test_windows": len(test), "epochs_run": len(model.history.get("loss", [])),
                  "best_epoch": model.best_epoch, "seconds": round(model.seconds, 1),
                  "data_seconds": round(data_seconds, 1), "score_seconds": round(time.perf_counter() - t1, 1),
                  "inputs": list(inputs), "config": config.to_dict(),
                  "val_loss": model.history.get("val_loss"), "initial_val_loss": model.extra["initial_val_loss"]},
        "variants": {v: {str(h): float(np.mean(r)) for h, r in by_h.items()} for v, by_h in variants.items()},
        "rows": rows,
        "not_scored": skipped,
    }


def recalibrated(y, q, origins: pd.DatetimeIndex, period: pd.DatetimeIndex, h: int, days: pd.Timedelta) -> np.ndarray:
    """Walk-forward recalibration of each quantile's distance from the median (research): at each
    month of ``period``, the scales of lowest pinball loss over the origins of the trailing
    ``days`` whose h-hour target was known at the month's start, applied to the month."""
    from make_us_rich.baselines import months
    from universal_lab import apply_scales, fit_scales

    out = np.full((len(period), q.shape[1]), np.nan)
    where = origins.get_indexer(period)
    for rows in months(period):
        m0 = rows[0]
        fit = np.asarray((origins >= m0 - days) & (origins + h * H.STEP <= m0))
        scales = fit_scales(y[fit], q[fit])
        pos = period.get_indexer(rows)
        out[pos] = apply_scales(q[where[pos]], scales)
    return out


def summarize(out: dict) -> dict:
    r = out["ratio"]
    c = out["coverage_ci"]
    return {
        "n": out["n"], "block": out["block"],
        "mean_pinball_bp": round(out["model"]["mean_pinball"] * 1e4, 3),
        "ratio_empirical": r["empirical"]["ratio"], "ci_empirical": [r["empirical"]["low"], r["empirical"]["high"]],
        "ratio_har": r["har"]["ratio"], "ci_har": [r["har"]["low"], r["har"]["high"]],
        "ratio_garch_t": r["garch_t"]["ratio"],
        "har_over_empirical": out["baselines"]["har"]["mean_pinball"] / out["baselines"]["empirical"]["mean_pinball"],
        "cov90": c["90"]["coverage"], "ci_cov90": [c["90"]["low"], c["90"]["high"]],
        "cov50": c["50"]["coverage"], "ci_cov50": [c["50"]["low"], c["50"]["high"]],
        "baseline_cov90": {k: v["intervals"]["90"]["coverage"] for k, v in out["baselines"].items()
                           if k != "persistence"},
    }


def targets(phase: dict) -> dict:
    rows = phase["rows"]
    out = {}
    for h in HORIZONS:
        k = str(h)
        ratio = float(np.mean([r[k]["ratio_empirical"] for r in rows.values()]))
        har = float(np.mean([r[k]["har_over_empirical"] for r in rows.values()]))
        misses = {s: round(r[k]["cov90"], 4) for s, r in rows.items()
                  if not COVERAGE_90[0] <= r[k]["cov90"] <= COVERAGE_90[1]}
        out[k] = {"mean_ratio_empirical": ratio, "mean_har_over_empirical": har,
                  "ratio_met": ratio <= TARGET_RATIO if h > 1 else None,
                  "har_met": ratio <= har if h > 1 else None,
                  "cov90_misses": misses, "cov90_met": not misses}
    return out


def markdown(payload: dict) -> str:
    lines = []
    for name in ("validation", "test"):
        phase = payload["phases"].get(name)
        if not phase:
            continue
        year = phase["cuts"]["test_start"][:4]
        lines += [f"**{name}** ({year}; served: {phase['served']}; {phase['train']['windows']:,} of "
                  f"{phase['train']['windows_available']:,} train windows, {phase['train']['epochs_run']} epochs, "
                  f"best {phase['train']['best_epoch']}, {phase['train']['seconds']:.0f} s)", ""]
        lines += ["| symbol | h | pinball / empirical [95 % CI] | / HAR [95 % CI] | HAR / empirical | / GARCH-t "
                  "| cov90 [95 % CI] | cov50 |", "|---|---|---|---|---|---|---|---|"]
        for s, by_h in phase["rows"].items():
            for h in HORIZONS:
                r = by_h[str(h)]
                lines.append(
                    f"| {s} | {h} | {r['ratio_empirical']:.4f} [{r['ci_empirical'][0]:.3f}–{r['ci_empirical'][1]:.3f}] "
                    f"| {r['ratio_har']:.4f} [{r['ci_har'][0]:.3f}–{r['ci_har'][1]:.3f}] | {r['har_over_empirical']:.4f} "
                    f"| {r['ratio_garch_t']:.4f} | {r['cov90']:.3f} [{r['ci_cov90'][0]:.3f}–{r['ci_cov90'][1]:.3f}] "
                    f"| {r['cov50']:.3f} |")
        lines += ["", "| h | mean pinball / empirical | HAR / empirical | LSTM alone | blend | pooled HAR alone "
                  "| 0.25 LSTM + 0.75 HAR | 90 % coverage misses (0.87–0.93) |", "|---|---|---|---|---|---|---|---|"]
        t = targets(phase)
        for h in HORIZONS:
            k = str(h)
            misses = ", ".join(f"{s} {v:.3f}" for s, v in t[k]["cov90_misses"].items()) or "none"
            v = phase["variants"]
            lines.append(f"| {h} | {t[k]['mean_ratio_empirical']:.4f} | {t[k]['mean_har_over_empirical']:.4f} "
                         f"| {v['lstm'][k]:.4f} | {v['blend'][k]:.4f} | {v['har_pooled'][k]:.4f} "
                         f"| {v['lstm25_har75'][k]:.4f} | {misses} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="4 pairs, 40k train windows, 2 epochs (smoke run)")
    ap.add_argument("--max-train-windows", type=int, default=0, help="a random sample of the train windows (0: all)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--patience", type=int, default=1)
    ap.add_argument("--units", type=int, default=UNIVERSAL.lstm_units)
    ap.add_argument("--n-boot", type=int, default=500)
    ap.add_argument("--work", default="/tmp/bench_horizons")
    ap.add_argument("--report", action="store_true", help="print the Markdown tables of the results file")
    ap.add_argument("--phases", default="validation,test", help="validation (2022) and/or test (2023)")
    ap.add_argument("--recalibrate-days", type=int, default=0,
                    help="research: also score a monthly per-pair spread recalibration on this many trailing days")
    ap.add_argument("--name", default=None, help="results file name (default horizons, horizons_quick)")
    args = ap.parse_args()
    out_name = args.name or ("horizons_quick" if args.quick else "horizons")
    if args.report:
        print(markdown(json.loads((RESULTS / f"{out_name}.json").read_text())))
        return
    if args.quick:
        args.max_train_windows, args.epochs, args.n_boot = 40_000, 2, 200
    symbols = QUICK if args.quick else SYMBOLS
    market_dir()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    payload = {"machine": machine(), "started": pd.Timestamp.now(tz=UTC).isoformat(), "symbols": list(symbols),
               "horizons": list(HORIZONS), "quick": args.quick, "args": vars(args), "phases": {}}
    validation = run_phase("validation", symbols, args, work, blend=True)
    payload["phases"]["validation"] = validation
    v = validation["variants"]
    choice = min(("blend", "lstm"), key=lambda name: np.mean([v[name]["4"], v[name]["24"]]))
    payload["choice"] = {"served": choice, "rule": "lower mean pinball ratio vs empirical at 4 h and 24 h on 2022",
                         "blend": np.mean([v["blend"]["4"], v["blend"]["24"]]),
                         "lstm": np.mean([v["lstm"]["4"], v["lstm"]["24"]])}
    print(f"choice on validation: {payload['choice']}", flush=True)
    save(out_name, payload)
    if "test" not in args.phases.split(","):
        print(markdown(payload))
        return
    payload["phases"]["test"] = run_phase("test", symbols, args, work, blend=choice == "blend")
    payload["targets"] = targets(payload["phases"]["test"])
    payload["seconds"] = round(time.time() - started)
    path = save(out_name, payload)
    print(markdown(payload))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
