"""``mkrich runs``: the run history of local pipeline runs and the models' history in the store
(a thin shell over :mod:`make_us_rich.runs`)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from make_us_rich.errors import ConfigError


def _f(value, fmt: str = "{:.4f}") -> str:
    return "-" if value is None else fmt.format(value)


def _when(iso: str | None) -> str:
    return (iso or "?").replace("T", " ").replace("+00:00", "Z")[:20]


def _duration(seconds) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


#: symbols of a run listed one by one in `mkrich runs`; beyond, the counts
LISTED_SYMBOLS = 4


def _symbol_cell(info: dict) -> str:
    if "gate" not in info:
        return f"{info['symbol']} (no evaluation)"
    outcome = info.get("published") or info["gate"]
    return (f"{info['symbol']} {outcome} pinball/A {_f(info.get('pinball_vs_empirical'))} "
            f"cov90 {_f(info.get('coverage90'), '{:.3f}')}")


def _symbols_cell(run: dict) -> str:
    """Each symbol's outcome, or for a run of many symbols their counts."""
    from make_us_rich.runs import gate_counts

    if len(run["symbols"]) <= LISTED_SYMBOLS:
        return "; ".join(_symbol_cell(i) for i in run["symbols"].values()) or "-"
    counts = gate_counts(run)
    return (f"{len(run['symbols'])} symbols: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n)
            + f" (mkrich runs show {run['id']})")


def cmd_runs(args: argparse.Namespace) -> int:
    from make_us_rich.runs import list_runs

    runs = list_runs(args.root)[: args.limit]
    if args.json:
        print(json.dumps(runs, indent=2))
        return 0
    if not runs:
        print(f"no pipeline runs under {args.root} (`mkrich run` makes one)")
        return 0
    print(f"{'run':<45} {'kind':<10} {'started (UTC)':<20} {'status':<9} {'took':>7}  symbols")
    for run in runs:
        print(f"{run['id']:<45} {run['kind']:<10} {_when(run['started']):<20} {run['status']:<9} "
              f"{_duration(run['seconds']):>7}  {_symbols_cell(run)}")
    print("\ndetail: mkrich runs show ID (or latest); model history: mkrich runs models --symbol S")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from make_us_rich.runs import find_run, step_logs

    run = find_run(args.root, args.id)
    if args.log:
        if not run["log"]:
            raise ConfigError(f"run {run['id']} has no {run['dir']}/kfp-local.log")
        steps = [s for s in step_logs(run["log"]) if s["step"] == args.log or args.log == "failed"
                 and s["status"] != "SUCCESS"]
        if not steps:
            names = sorted({s["step"] for s in step_logs(run["log"])})
            raise ConfigError(f"no step {args.log!r} in run {run['id']}; steps: {', '.join(names)}")
        for step in steps:
            print(f"==== {step['step']} ({step['status']})")
            print("\n".join(step["lines"]))
        return 0
    if args.json:
        print(json.dumps(run, indent=2))
        return 0
    print(f"run {run['id']} ({run['pipeline']}, {run['kind']}): {run['status']}, started {_when(run['started'])}, took "
          f"{_duration(run['seconds'])}")
    if run["error"]:
        print(f"  error: {run['error']}")
    if run["source"] or run["store"]:
        print(f"  source {run['source']}, store {run['store']}")
    if run["parameters"]:
        print("  parameters: " + " ".join(f"{k}={v}" for k, v in sorted(run["parameters"].items())))
    if run["steps"]:
        print("steps:")
        for step in run["steps"]:
            print(f"  {step['status']:<7} {step['step']:<20} {step['symbol']:<9} "
                  f"{step['seconds']:6.1f} s  {step.get('numbers', '')}".rstrip())
    if run["kind"] == "universal":
        _print_universal(run)
    else:
        _print_per_symbol(run)
    if run["log"]:
        print(f"log: {run['log']} (one step: mkrich runs show {run['id']} --log STEP; "
              "failed steps: --log failed)")
    return 0


def _print_per_symbol(run: dict) -> None:
    for info in run["symbols"].values():
        print(f"{info['symbol']}:")
        if "gate" not in info:
            print("  no evaluation (the run stopped before evaluate-and-gate)")
            continue
        print(f"  gate {info['gate']}; published: {info.get('published', '-')} {info.get('version', '')}".rstrip())
        print(f"  pinball ratio vs empirical {_f(info['pinball_vs_empirical'])}, vs GARCH-t "
              f"{_f(info['pinball_vs_garch_t'])}; coverage 90 % {_f(info['coverage90'], '{:.3f}')}"
              f", 50 % {_f(info['coverage50'], '{:.3f}')}; RMSE vs persistence "
              f"{_f(info['rmse_vs_persistence'])} ({info.get('test_hours')} test hours)")
        for reason in info["gate_reasons"]:
            print(f"    {reason}")
        print(f"  artifacts: {info['artifacts']}")


def _print_universal(run: dict) -> None:
    """The training of a universal run (warm start, time budget) and its per-symbol gate table."""
    from make_us_rich.runs import gate_counts

    training = run.get("training")
    if training:
        budget = training.get("time_budget")
        print(f"training: one universal model on {len(training['trained_on'])} symbol(s) "
              f"({', '.join(training['trained_on'])}); {training.get('epochs_run')} epoch(s), best "
              f"{training.get('best_epoch')}, val loss {_f(training.get('initial_val_loss'))} -> "
              f"{_f(training.get('best_val_loss'))}, {_f(training.get('seconds'), '{:.1f}')} s")
        print(f"  warm start: {training.get('warm_start_note') or ('yes' if training.get('warm_start') else 'no')}")
        print("  time budget: " + ("none" if not budget else f"{budget:g} s, "
              + ("exhausted (training stopped early)" if training.get("budget_exhausted") else "not exhausted")))
        for symbol, lacking in training.get("unavailable", {}).items():
            print(f"  {symbol} lacks {', '.join(lacking)}")
    counts = gate_counts(run)
    print(f"per symbol ({', '.join(f'{n} {k}' for k, n in counts.items() if n)}; pinball ratios < 1 beat "
          "the baseline):")
    print(f"  {'symbol':<12} {'gate':<9} {'store':<9} {'pinball/A':>9} {'pinball/HAR':>11} {'cov90':>6} "
          f"{'cov50':>6} {'RMSE/pers.':>10}  version")
    for info in run["symbols"].values():
        if "gate" not in info:
            print(f"  {info['symbol']:<12} not evaluated: {info.get('error', 'the run stopped before it')}")
            continue
        print(f"  {info['symbol']:<12} {info['gate']:<9} {info.get('published', '-'):<9} "
              f"{_f(info['pinball_vs_empirical']):>9} {_f(info.get('pinball_vs_har')):>11} "
              f"{_f(info['coverage90'], '{:.3f}'):>6} {_f(info['coverage50'], '{:.3f}'):>6} "
              f"{_f(info['rmse_vs_persistence']):>10}  {info.get('version', '-')}")
    rejected = [i for i in run["symbols"].values() if i.get("gate") == "rejected" or i.get("published") == "rejected"]
    for info in rejected:
        print(f"{info['symbol']} rejected (keeps its previous model):")
        for reason in info["gate_reasons"]:
            print(f"    {reason}")
    if run["symbols"]:
        folders = {str(Path(i["artifacts"]).parent) for i in run["symbols"].values() if i.get("artifacts")}
        print(f"artifacts: {', '.join(sorted(folders))}/<SYMBOL>" if folders else "artifacts: none")


def cmd_models(args: argparse.Namespace) -> int:
    from make_us_rich.data import normalize_symbol
    from make_us_rich.runs import model_history

    symbol = normalize_symbol(args.symbol)
    history = model_history(args.store, symbol)
    if args.json:
        print(json.dumps(history, indent=2))
        return 0
    if not history:
        raise ConfigError(f"no model versions of {symbol} in {args.store}; `mkrich run` or "
                          "`mkrich publish` adds one")
    print(f"{symbol}: {len(history)} model version(s), oldest first "
          "(pinball ratio < 1: better than the baseline; cov90 should be near 0.90)")
    print(f"{'published (UTC)':<20} {'version':<36} {'kind':<10} {'status':<9} {'pinball/A':>9} "
          f"{'pinball/GARCH':>13} {'cov90':>6} {'cov50':>6} {'RMSE/pers.':>10}")
    for m in history:
        print(f"{_when(m['published']):<20} {m['version']:<36} {m['kind'] or '?':<10} {m['status']:<9} "
              f"{_f(m['pinball_vs_empirical']):>9} {_f(m['pinball_vs_garch_t']):>13} "
              f"{_f(m['coverage90'], '{:.3f}'):>6} {_f(m['coverage50'], '{:.3f}'):>6} "
              f"{_f(m['rmse_vs_persistence']):>10}{'  <- latest' if m['latest'] else ''}")
    return 0


def add_parser(sub) -> None:
    """``mkrich runs`` and its commands ``show`` and ``models``."""
    p = sub.add_parser(
        "runs",
        help="the history of local pipeline runs (and `runs show ID`, `runs models`)",
        description="List the kfp.local runs under --root, newest first: when, status, duration "
        "and each symbol's gate decision, publish outcome and key metrics. `runs show ID` gives "
        "one run's parameters, steps, metrics, artifacts and step logs; `runs models` the "
        "metrics of a symbol's successive model versions in the store.",
    )
    p.add_argument("--root", default="runs/pipeline", help="pipeline root of `mkrich run` (default runs/pipeline)")
    p.add_argument("--limit", type=int, default=20, help="newest N runs (default 20)")
    p.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    p.set_defaults(func=cmd_runs)
    runs_sub = p.add_subparsers(dest="runs_command", metavar="COMMAND")

    show = runs_sub.add_parser("show", help="one run: parameters, steps, metrics, artifacts, logs",
                               description="One run in detail. ID: the folder name, a unique "
                               "part of it (e.g. its date), or latest.")
    show.add_argument("id", help="run id (folder name, unique prefix/suffix) or latest")
    show.add_argument("--root", default=argparse.SUPPRESS, help="pipeline root (default runs/pipeline)")
    show.add_argument("--log", metavar="STEP", help="print the log of STEP (e.g. train-lstm), or of every failed step with 'failed'")
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    show.set_defaults(func=cmd_show)

    models = runs_sub.add_parser("models", help="a symbol's model versions over time, with their metrics",
                                 description="The metrics of each model version in the store, "
                                 "oldest first: its kind (universal or per-symbol), pinball ratio vs the "
                                 "empirical quantiles and GARCH-t, interval coverage, median RMSE vs "
                                 "persistence, and which is latest.")
    models.add_argument("--symbol", default="BTCEUR")
    models.add_argument("--store", default=os.environ.get("MKRICH_STORE") or "runs/store",
                        help="store URI (default: $MKRICH_STORE or runs/store)")
    models.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    models.set_defaults(func=cmd_models)
