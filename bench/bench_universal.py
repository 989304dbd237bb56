"""Benchmark: the quality targets of issue 21 for the universal model, through the real CLI.

For the 20 USDT pairs of ``../shared/data/market`` (one ``<SYMBOL>_*.csv.gz`` each):

1. ``mkrich train --source csv:DIR --symbols <all 20> --end 2022-12-31T23:00 --test-size 0``: one
   universal model on every pair's history until the end of 2022 (settings chosen on validation
   only: trained until 2021, scored on 2022; see docs/benchmarks.md);
2. the same on the 16 pairs outside :data:`LEFT_OUT`, for the "never seen" target;
3. today's per-symbol model of each pair: ``mkrich train --symbol S`` on the year 2022 (what the
   hourly per-symbol pipeline trains: one year, its default holdouts);
4. ``mkrich evaluate --model M --symbol S --start 2023-01-01 --end 2023-12-31T23:00`` for every
   pair and model: each hour of 2023 forecast from the hours before it, beside the baselines
   (empirical quantiles A, GARCH-t and HAR refit monthly on the trailing year, persistence);
5. the per-symbol table against every target, ``bench/results/universal.json``.

    .venv/bin/python bench/bench_universal.py [--jobs 2] [--work runs/bench-universal] [--fresh]

Steps whose output exists in ``--work`` are reused (``--fresh`` redoes them). Without the data the
benchmark says so and exits 0. Results and how they were measured: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from common import REPO, RESULTS, machine, save

SYMBOLS = (
    "ADAUSDT", "AVAXUSDT", "BNBUSDT", "BTCUSDT", "DOGEUSDT", "DOTUSDT", "ETHUSDT", "XRPUSDT",
    "ATOMUSDT", "BCHUSDT", "ETCUSDT", "LTCUSDT", "MATICUSDT", "NEOUSDT", "PAXGUSDT", "SHIBUSDT",
    "TRXUSDT", "XLMUSDT", "XMRUSDT", "XTZUSDT",
)
#: kept out of the second universal model (two pairs with trade counts, two without; fixed
#: before any result was seen)
LEFT_OUT = ("AVAXUSDT", "DOTUSDT", "ETCUSDT", "XTZUSDT")
TRAIN_END = "2022-12-31T23:00"
TEST = ("2023-01-01", "2023-12-31T23:00")
PER_SYMBOL_START = "2022-01-01"
#: the universal model's settings, chosen on validation (docs/benchmarks.md, "Choosing the
#: universal model's settings"); everything else is the CLI's default
UNIVERSAL_FLAGS = ("--test-size", "0", "--val-size", "0.05", "--epochs", "4", "--patience", "1",
                   "--batch-size", "256", "--time-budget", "720", "--horizons", "1")  # the 1-hour model (issue 21)
#: ``--quick``: a smoke run of the whole chain in minutes (figures meaningless)
QUICK = {"symbols": ("BTCUSDT", "ETHUSDT", "PAXGUSDT", "XTZUSDT"), "left_out": ("XTZUSDT",),
         "flags": ("--preset", "tiny", "--start", "2022-09-01"), "test": ("2023-01-01", "2023-02-28T23:00")}
#: the baselines' monthly refits use the trailing year, as in bench_quantile.py
HISTORY_DAYS = "400"
DEFAULT_WORK = str(REPO / "runs" / "bench-universal")
TARGETS = {
    "mean_ratio_A": "mean pinball / empirical baseline <= 0.95",
    "beats_per_symbol": "universal <= per-symbol model on >= 15 of 20",
    "le_har_on_mean": "mean pinball ratio <= HAR's",
    "cov90_every": "90 % coverage in 0.88-0.92 on every symbol",
    "cov50_every": "50 % coverage in 0.47-0.53 on every symbol",
    "median_rmse": "median RMSE <= 1.002 x persistence (median over symbols, price units)",
    "left_out": "4 symbols left out of training: pinball / baseline <= 0.97",
}


def market_dir() -> Path:
    base = os.environ.get("MKRICH_SHARED_DATA")
    return (Path(base) if base else REPO.parent / "shared" / "data") / "market"


def data_files(directory: Path, symbols) -> dict[str, Path] | None:
    """One file per symbol, or None (and a message) when the data is absent."""
    files = {s: sorted(directory.glob(f"{s}_*.csv*")) for s in symbols}
    missing = [s for s, f in files.items() if len(f) != 1]
    if missing:
        print(f"SKIPPED bench_universal.py: {directory} lacks one <SYMBOL>_*.csv.gz for {missing} "
              "(real Binance 1h klines until 2023, not in the repository); put them there or set "
              "MKRICH_SHARED_DATA to the folder that holds market/.", file=sys.stderr)
        return None
    return {s: f[0] for s, f in files.items()}


class Runner:
    """Runs ``mkrich`` commands, one log per step, reusing a step whose output exists."""

    def __init__(self, mkrich: str, work: Path, fresh: bool) -> None:
        self.mkrich, self.work, self.fresh = mkrich, work, fresh
        (work / "logs").mkdir(parents=True, exist_ok=True)
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, args: list[str], done: Path) -> Path:
        if done.is_file() and not self.fresh:
            return done.parent
        log = self.work / "logs" / f"{name}.log"
        started = time.perf_counter()
        with log.open("w") as fh:
            proc = subprocess.run(["nice", self.mkrich, *args, "--no-progress"], stdout=fh,
                                  stderr=subprocess.STDOUT, check=False)
        self.seconds[name] = time.perf_counter() - started
        if proc.returncode != 0 or not done.is_file():
            tail = "\n".join(log.read_text().splitlines()[-15:])
            raise RuntimeError(f"{name} failed (exit {proc.returncode}); log {log}:\n{tail}")
        print(f"  {name}: {self.seconds[name]:.0f} s", flush=True)
        return done.parent


def check_predictions(folder: Path, metrics: dict) -> None:
    """The scored forecasts are the ones written: the model's mean pinball recomputed from
    predictions.csv (log returns of the quantile closes) equals metrics.json's."""
    from make_us_rich.scoring import QUANTILE_COLUMNS, score

    p = pd.read_csv(folder / "predictions.csv")
    y = np.log(p["close"] / p["last_close"]).to_numpy()
    q = np.log(p[list(QUANTILE_COLUMNS)].to_numpy() / p["last_close"].to_numpy()[:, None])
    mine, theirs = score(y, q)["mean_pinball"], metrics["model"]["mean_pinball"]
    if not np.isclose(mine, theirs, rtol=1e-4):
        raise RuntimeError(f"{folder}: predictions.csv gives mean pinball {mine}, metrics.json {theirs}")


def row_of(folder: Path) -> dict:
    m = json.loads((folder / "metrics.json").read_text())
    check_predictions(folder, m)
    base = m["baselines"]
    ci = m.get("pinball_ratio_ci95") or {}
    return {
        "n": m["n"],
        "period": m["period"],
        "ratio_A": m["ratio"]["pinball_vs_empirical"],
        "ratio_A_ci95": [ci.get("low"), ci.get("high")],
        "ratio_har": m["ratio"]["pinball_vs_har"],
        "ratio_garch": m["ratio"]["pinball_vs_garch_t"],
        "har_ratio_A": base["har"]["mean_pinball"] / base["empirical"]["mean_pinball"],
        "garch_ratio_A": base["garch_t"]["mean_pinball"] / base["empirical"]["mean_pinball"],
        "cov90": m["model"]["intervals"]["90"]["coverage"],
        "cov50": m["model"]["intervals"]["50"]["coverage"],
        "rmse_ratio": m["price"]["ratio_rmse"],
        "inputs": (m.get("inputs") or {}).get("used"),
        "trained_on": (m.get("model_info") or {}).get("trained_on"),
    }


def targets(rows: dict[str, dict], per_symbol: dict[str, dict], left_out: dict[str, dict]) -> dict:
    if not rows:
        return {key: {"value": "not measured", "met": None} for key in TARGETS}
    ra = {s: r["ratio_A"] for s, r in rows.items()}
    mean_a = float(np.mean(list(ra.values())))
    har_a = float(np.mean([r["har_ratio_A"] for r in rows.values()]))
    wins = sorted(s for s in rows if s in per_symbol and ra[s] <= per_symbol[s]["ratio_A"])
    cov90_miss = {s: round(r["cov90"], 3) for s, r in rows.items() if not 0.88 <= r["cov90"] <= 0.92}
    cov50_miss = {s: round(r["cov50"], 3) for s, r in rows.items() if not 0.47 <= r["cov50"] <= 0.53}
    rmse = float(np.median([r["rmse_ratio"] for r in rows.values()]))
    lo = {s: r["ratio_A"] for s, r in left_out.items()}
    lo_mean = float(np.mean(list(lo.values()))) if lo else float("nan")
    return {
        "mean_ratio_A": {"value": mean_a, "met": mean_a <= 0.95},
        "beats_per_symbol": {"value": f"{len(wins)}/{len(per_symbol)}" if per_symbol else "not measured",
                             "met": len(wins) >= 15 if per_symbol else None,
                             "losses": sorted(set(per_symbol) - set(wins))},
        "le_har_on_mean": {"value": mean_a, "har": har_a, "met": mean_a <= har_a},
        "cov90_every": {"misses": cov90_miss, "met": not cov90_miss},
        "cov50_every": {"misses": cov50_miss, "met": not cov50_miss},
        "median_rmse": {"value": rmse, "met": rmse <= 1.002},
        "left_out": {"value": lo_mean if lo else "not measured", "each": lo,
                     "met": all(v <= 0.97 for v in lo.values()) if lo else None},
    }


def print_table(rows, per_symbol, left_out, result) -> None:
    print(f"\n{'symbol':<10} {'vs A':>7} {'per-sym':>7} {'HAR/A':>7} {'vs HAR':>7} {'cov90':>6} "
          f"{'cov50':>6} {'RMSE':>7} {'left-out':>8}")
    for s, r in rows.items():
        ps = per_symbol.get(s, {}).get("ratio_A", float("nan"))
        lo = left_out.get(s, {}).get("ratio_A")
        print(f"{s:<10} {r['ratio_A']:7.4f} {ps:7.4f} {r['har_ratio_A']:7.4f} {r['ratio_har']:7.4f} "
              f"{r['cov90']:6.3f} {r['cov50']:6.3f} {r['rmse_ratio']:7.4f} "
              f"{'' if lo is None else f'{lo:8.4f}'}")
    print()
    for key, text in TARGETS.items():
        t = result[key]
        shown = {k: v for k, v in t.items() if k != "met"}
        print(f"{'----' if t['met'] is None else 'MET ' if t['met'] else 'MISS'} {text}: {shown}")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return str(value)


def markdown(payload: dict) -> str:
    """The per-symbol table and the targets of a results file, as docs/benchmarks.md shows them."""
    rows, ps = payload["universal"], payload["per_symbol_models"]
    lo = payload["universal_16_on_left_out"]
    lines = ["| symbol | pinball / A [95 % CI] | per-symbol model / A | HAR / A | universal / HAR | cov90 | cov50 "
             "| median RMSE / persistence | left out of training: / A |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s, r in rows.items():
        ci = r["ratio_A_ci95"]
        ci_text = f" [{ci[0]:.3f}–{ci[1]:.3f}]" if ci and ci[0] is not None else ""
        left = f"{lo[s]['ratio_A']:.4f}" if s in lo else ""
        per = f"{ps[s]['ratio_A']:.4f}" if s in ps else ""
        lines.append(f"| {s} | {r['ratio_A']:.4f}{ci_text} | {per} | {r['har_ratio_A']:.4f} | {r['ratio_har']:.4f} "
                     f"| {r['cov90']:.3f} | {r['cov50']:.3f} | {r['rmse_ratio']:.5f} | {left} |")
    lines += ["", "| target | result | |", "|---|---|---|"]
    for key, text in payload["target_texts"].items():
        t = payload["targets"][key]
        shown = "; ".join(f"{k} {_fmt(v)}" for k, v in t.items() if k != "met")
        unmeasured = t["met"] is None or t.get("value") == "not measured"
        verdict = "not measured" if unmeasured else "met" if t["met"] else "**missed**"
        lines.append(f"| {text} | {shown} | {verdict} |")
    return "\n".join(lines)


def quality(args) -> dict:
    directory = Path(args.data) if args.data else market_dir()
    symbols, left_out_symbols, test = SYMBOLS, LEFT_OUT, TEST
    universal_flags, per_symbol_flags = list(UNIVERSAL_FLAGS), ["--start", PER_SYMBOL_START]
    if args.quick:
        symbols, left_out_symbols, test = QUICK["symbols"], QUICK["left_out"], QUICK["test"]
        universal_flags += list(QUICK["flags"])
        per_symbol_flags = list(QUICK["flags"])
    files = data_files(directory, symbols)
    if files is None:
        return {}
    work = Path(args.work)
    if args.fresh and work.exists():
        shutil.rmtree(work)
    run = Runner(args.mkrich, work, args.fresh)
    source = f"csv:{directory}"
    seen = [s for s in symbols if s not in left_out_symbols]
    t0 = time.perf_counter()

    def train_universal(name: str, group) -> None:
        run(f"train_{name}", ["train", "--source", source, "--symbols", ",".join(group), "--end", TRAIN_END,
                              "--out", str(work / name), *universal_flags], work / name / "model.onnx")

    def per_symbol_model(s: str) -> Path:
        return run(f"train_{s}", ["train", "--source", f"csv:{files[s]}", "--symbol", s, *per_symbol_flags,
                                  "--end", TRAIN_END, "--out", str(work / "per_symbol" / s)],
                   work / "per_symbol" / s / "model.onnx")

    def evaluate(model: str, s: str) -> dict:
        model_dir = work / "per_symbol" / s if model == "per_symbol" else work / model
        out = work / "eval" / model / s
        run(f"evaluate_{model}_{s}", ["evaluate", "--model", str(model_dir), "--symbol", s, "--source", source,
                                      "--start", test[0], "--end", test[1], "--history-days", HISTORY_DAYS,
                                      "--out", str(out)], out / "metrics.json")
        return row_of(out)

    def evaluate_all(model: str, group) -> dict[str, dict]:
        with ThreadPoolExecutor(args.jobs) as pool:
            return dict(zip(group, pool.map(lambda s: evaluate(model, s), group), strict=True))

    rows: dict[str, dict] = {}
    per_symbol: dict[str, dict] = {}
    left_out: dict[str, dict] = {}

    def payload(complete: bool) -> dict:
        cards = {name: json.loads((work / name / "universal.json").read_text())
                 for name in ("universal", "universal_16") if (work / name / "universal.json").is_file()}
        return {
            "benchmark": "universal quality (issue 21)",
            "complete": complete,
            "machine": machine(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "mkrich": args.mkrich,
            "data": str(directory),
            "train_end": TRAIN_END,
            "quick": args.quick,
            "test": list(test),
            "universal_flags": universal_flags,
            "per_symbol": f"mkrich train --symbol S {' '.join(per_symbol_flags)} --end {TRAIN_END} (defaults)",
            "history_days": HISTORY_DAYS,
            "left_out": list(left_out_symbols),
            "targets": targets(rows, per_symbol, left_out),
            "target_texts": TARGETS,
            "universal": rows,
            "per_symbol_models": per_symbol,
            "universal_16_on_left_out": left_out,
            "universal_cards": cards,
            "step_seconds": run.seconds,
            "wall_seconds": time.perf_counter() - t0,
        }

    # most telling first, saved after each phase: a run cut short still leaves its figures
    print(f"universal model on {len(symbols)} pairs, then 2023 walk-forward", flush=True)
    train_universal("universal", symbols)
    rows.update(evaluate_all("universal", symbols))
    save(args.out, payload(False))
    print(f"universal model on the {len(seen)} pairs outside the left-out set, then the left-out pairs", flush=True)
    train_universal("universal_16", seen)
    left_out.update(evaluate_all("universal_16", left_out_symbols))
    save(args.out, payload(False))
    print("per-symbol models (one year each), then 2023 walk-forward", flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(per_symbol_model, symbols))
    per_symbol.update(evaluate_all("per_symbol", symbols))
    result = payload(True)
    print_table(rows, per_symbol, left_out, result["targets"])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="folder of <SYMBOL>_*.csv.gz (default ../shared/data/market)")
    ap.add_argument("--mkrich", default=str(Path(sys.executable).parent / "mkrich"),
                    help="the mkrich command to benchmark (default: this interpreter's)")
    ap.add_argument("--work", default=DEFAULT_WORK, help="models and evaluations")
    ap.add_argument("--jobs", type=int, default=2, help="per-symbol trainings and evaluations at once")
    ap.add_argument("--fresh", action="store_true", help="redo every step (default: reuse what --work holds)")
    ap.add_argument("--out", default=None, help="results file name in bench/results (universal, universal_quick)")
    ap.add_argument("--report", action="store_true", help="print the Markdown table of a results file and exit")
    ap.add_argument("--quick", action="store_true", help="4 symbols, tiny models, two months: a smoke run")
    args = ap.parse_args()
    if args.report:
        print(markdown(json.loads((RESULTS / f"{args.out or 'universal'}.json").read_text())))
        return
    if args.quick and args.work == DEFAULT_WORK:
        args.work = f"{DEFAULT_WORK}-quick"
    args.out = args.out or ("universal_quick" if args.quick else "universal")
    payload = quality(args)
    if payload:
        print(f"  -> {save(args.out, payload)}")


if __name__ == "__main__":
    main()
