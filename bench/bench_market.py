"""Benchmark: the hourly cycle at market scale (issue 21, throughput target).

One hourly cycle of ``universal-training`` through kfp.local (``mkrich run --universal``):
fetch from the fake Binance server (make_us_rich.testing, python-binance over HTTP on
127.0.0.1), features, warm-start training from the previous universal model of the same
symbols, evaluation + gate + publish per symbol, for N symbols (default 100) with a year of
hourly history each: the 20 real pairs of ../shared/data/market (their year 2023) and 80 made
from them (other year-long segments of their histories under other names, e.g. ``BTC2212USDT``
is BTCUSDT's year until 2022-12). Every series is re-stamped to end at the last finished hour,
so the run's window (its lookback ending now) is what a live run would fetch.

Before timing, one untimed cold run (``--warm-start false``) trains the previous model the
timed run starts from (its figures are recorded too). In the same run, the same cycle for M
symbols (default 10) with today's per-symbol pipeline ``hourly-training``, reported as the
ratio of seconds per symbol. Wall time and peak memory (the resident set of the whole
``mkrich run`` process tree, sampled every 0.5 s with psutil) of each, and where the time goes
(per step, from the run's ``run.json``).

    MKRICH_SHARED_DATA=/path/to/shared/data nice python bench/bench_market.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from common import REPO, machine, save

REAL = ["ADAUSDT", "ATOMUSDT", "AVAXUSDT", "BCHUSDT", "BNBUSDT", "BTCUSDT", "DOGEUSDT", "DOTUSDT",
        "ETCUSDT", "ETHUSDT", "LTCUSDT", "MATICUSDT", "NEOUSDT", "PAXGUSDT", "SHIBUSDT", "TRXUSDT",
        "XLMUSDT", "XMRUSDT", "XRPUSDT", "XTZUSDT"]
#: ends of the other year-long segments, newest first (each pair's history permitting)
SEGMENT_ENDS = ["2022-12-31T23:00Z", "2023-06-30T23:00Z", "2022-06-30T23:00Z", "2021-12-31T23:00Z",
                "2021-06-30T23:00Z", "2020-12-31T23:00Z", "2020-06-30T23:00Z", "2019-12-31T23:00Z"]
HOURS = 365 * 24


def market_folder() -> Path:
    base = Path(os.environ.get("MKRICH_SHARED_DATA", REPO.parent / "shared" / "data")) / "market"
    if not (base / "BTCUSDT_1h_until_2023.csv.gz").is_file():
        print(f"SKIPPED bench_market.py: it needs {base} (20 real pairs, ../shared/data/market); "
              "set MKRICH_SHARED_DATA to the folder holding market/", file=sys.stderr)
        raise SystemExit(0)
    return base


def build_market(n: int, end: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """``n`` symbols of one year each, every series re-stamped to end at ``end``: the 20 real
    pairs' 2023 first, then other segments of their histories, round robin over the pairs."""
    from make_us_rich.data import read_klines_csv, validate_klines

    folder = market_folder()
    history = {s: read_klines_csv(next(folder.glob(f"{s}_1h_*.csv.gz"))) for s in REAL}
    candidates = [(s, "2023-12-31T23:00Z") for s in REAL]
    candidates += [(s, e) for e in SEGMENT_ENDS for s in REAL]
    market: dict[str, pd.DataFrame] = {}
    for sym, seg_end in candidates:
        if len(market) == n:
            break
        df = history[sym]
        stop = pd.Timestamp(seg_end)
        part = df[(df["timestamp"] > stop - pd.Timedelta(hours=HOURS)) & (df["timestamp"] <= stop)]
        if len(part) < 0.99 * HOURS:  # the pair was not listed yet (or the year has holes)
            continue
        name = sym if seg_end.startswith("2023-12") else f"{sym[:-4]}{stop:%y%m}USDT"
        shift = end - stop
        part = part.assign(timestamp=part["timestamp"] + shift, close_time=part["close_time"] + shift)
        market[name] = validate_klines(part.reset_index(drop=True))[0]
    if len(market) < n:
        raise SystemExit(f"only {len(market)} year-long segments in {folder}; ask for fewer symbols")
    return market


class TreeMemory:
    """Peak resident memory of a process and all its descendants, sampled."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        import psutil

        self.root, self.every, self.peak = psutil.Process(pid), every, 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        import psutil

        while not self.stopped.wait(self.every):
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            self.peak = max(self.peak, total)

    def stop(self) -> float:
        self.stopped.set()
        self.thread.join()
        return self.peak / 2**20


def mkrich_run(args: list[str], log: Path) -> dict[str, Any]:
    """``mkrich run ARGS``: wall seconds, peak tree RSS, the run's folder and record."""
    root = Path(args[args.index("--pipeline-root") + 1])
    before = set(root.glob("*-training-*")) if root.exists() else set()
    t0 = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "make_us_rich.cli", "run", *args], stdout=out,
                                stderr=subprocess.STDOUT)
        memory = TreeMemory(proc.pid)
        code = proc.wait()
    wall = time.perf_counter() - t0
    peak = memory.stop()
    if code != 0:
        raise SystemExit(f"mkrich run failed (exit {code}); see {log}:\n{log.read_text()[-3000:]}")
    (run_dir,) = set(root.glob("*-training-*")) - before
    record = json.loads((run_dir / "run.json").read_text())
    return {"wall_s": round(wall, 1), "peak_rss_mib": round(peak), "run_dir": str(run_dir), "log": str(log),
            "steps": step_totals(record["steps"]), "record_seconds": record["seconds"]}


def step_totals(steps: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per step name: how many tasks, their summed and longest seconds."""
    totals: dict[str, dict[str, float]] = defaultdict(lambda: {"tasks": 0, "sum_s": 0.0, "max_s": 0.0})
    for step in steps:
        t = totals[step["step"]]
        t["tasks"] += 1
        t["sum_s"] = round(t["sum_s"] + step["seconds"], 1)
        t["max_s"] = max(t["max_s"], step["seconds"])
    return dict(totals)


def fetch_weight(run_dir: str) -> dict[str, Any] | None:
    found = list(Path(run_dir).glob("**/fetch-market/market/market.json"))
    return json.loads(found[0].read_text()).get("request_weight") if found else None


def main() -> None:
    from make_us_rich.testing.fake_binance import FakeBinance

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 6 symbols universal, 2 per-symbol, "
                        "60 s training budget")
    parser.add_argument("--symbols", type=int, help="symbols of the universal cycle (default 100; quick 6)")
    parser.add_argument("--per-symbol", type=int, help="symbols of the per-symbol cycle (default 10; quick 2)")
    parser.add_argument("--time-budget", type=float, help="training budget of the universal runs in seconds "
                        "(default: the pipeline's, 600; quick 60)")
    parser.add_argument("--cold-budget", type=float, help="training budget of the untimed cold run that makes "
                        "the previous model (default 300; quick 60)")
    parser.add_argument("--work", help="folder for stores and runs (default: a new temporary one)")
    opts = parser.parse_args()
    n = opts.symbols or (6 if opts.quick else 100)
    m = opts.per_symbol if opts.per_symbol is not None else (2 if opts.quick else 10)
    budget = opts.time_budget if opts.time_budget is not None else (60.0 if opts.quick else None)
    cold_budget = opts.cold_budget if opts.cold_budget is not None else (60.0 if opts.quick else 300.0)
    work = Path(opts.work or tempfile.mkdtemp(prefix="mkrich-bench-market-"))
    work.mkdir(parents=True, exist_ok=True)

    end = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=1)  # the last finished hour
    t0 = time.perf_counter()
    market = build_market(n, end)
    print(f"{n} symbols x {HOURS} h built in {time.perf_counter() - t0:.0f} s: {', '.join(market)}", flush=True)
    symbols = ",".join(market)
    result: dict[str, Any] = {"benchmark": "market cycle (issue 21)", "symbols": n, "per_symbol_symbols": m,
                              "hours_per_symbol": HOURS, "quick": opts.quick, "time_budget_s": budget,
                              "machine": machine(), "load_before": os.getloadavg()}
    with FakeBinance(market) as fake:
        common = ["--source", "binance", "--api-url", fake.api_url]
        universal = ["--universal", "--symbols", symbols, *common, "--store", str(work / "store"),
                     "--pipeline-root", str(work / "universal"), "--horizons", "1"]  # the issue-21 cycle
        if budget is not None:
            universal += ["--time-budget", str(budget)]
        print("cold universal run (untimed for the target: it trains the model the timed run starts from) ...",
              flush=True)
        cold = [a for i, a in enumerate(universal) if "--time-budget" not in universal[max(0, i - 1):i + 1]]
        result["cold_universal"] = mkrich_run([*cold, "--time-budget", str(cold_budget), "--warm-start", "false"],
                                              work / "cold.log")
        result["cold_universal"]["time_budget_s"] = cold_budget
        print(f"  {result['cold_universal']['wall_s']:.0f} s, peak {result['cold_universal']['peak_rss_mib']} MiB",
              flush=True)
        print("timed universal run (warm start) ...", flush=True)
        timed = result["universal"] = mkrich_run(universal, work / "universal.log")
        timed["request_weight"] = fetch_weight(timed["run_dir"])
        print(f"  {timed['wall_s']:.0f} s, peak {timed['peak_rss_mib']} MiB", flush=True)
        if m:
            print(f"per-symbol run (hourly-training) of {m} symbols ...", flush=True)
            per = result["per_symbol"] = mkrich_run(
                ["--symbols", ",".join(list(market)[:m]), *common, "--store", str(work / "store-per-symbol"),
                 "--pipeline-root", str(work / "per-symbol")], work / "per-symbol.log")
            print(f"  {per['wall_s']:.0f} s, peak {per['peak_rss_mib']} MiB", flush=True)
            result["seconds_per_symbol"] = {"universal": timed["wall_s"] / n, "per_symbol": per["wall_s"] / m}
            result["per_symbol_over_universal"] = round(
                result["seconds_per_symbol"]["per_symbol"] / result["seconds_per_symbol"]["universal"], 2)
        result["fake_binance_requests"] = len(fake.klines_requests())
    result["load_after"] = os.getloadavg()
    result["targets"] = {"wall_s_max": 1200, "peak_gib_max": 8,
                         "wall_met": timed["wall_s"] <= 1200, "memory_met": timed["peak_rss_mib"] <= 8 * 1024}
    path = save("market-quick" if opts.quick else "market", result)
    mach = result["machine"]
    print(f"\nmachine: {mach['cpu']}, {mach['cores']} cores, {mach['memory_gib']} GiB; "
          f"load {result['load_before'][0]:.1f} before, {result['load_after'][0]:.1f} after")
    print(f"universal-training, {n} symbols, warm start: {timed['wall_s']:.0f} s "
          f"(target 1200), peak {timed['peak_rss_mib']} MiB (target 8192)")
    for name, t in sorted(timed["steps"].items(), key=lambda kv: -kv[1]["max_s"]):
        print(f"  {name:<22} {t['tasks']:3d} task(s)  sum {t['sum_s']:7.1f} s  longest {t['max_s']:7.1f} s")
    if m:
        print(f"hourly-training, {m} symbols: {result['per_symbol']['wall_s']:.0f} s; seconds per symbol "
              f"{result['seconds_per_symbol']['per_symbol']:.1f} vs {result['seconds_per_symbol']['universal']:.1f} "
              f"universal: {result['per_symbol_over_universal']}x")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
