"""``mkrich train`` and ``mkrich evaluate``: one model (or one universal model) trained, scored."""

from __future__ import annotations

import argparse
from pathlib import Path

from make_us_rich.cli.common import DEFAULT_SOURCE, _add_source_options
from make_us_rich.cli.printing import (
    _print_evaluation,
    _print_report,
    _print_training_summary,
    print_symbol_table,
)
from make_us_rich.errors import ConfigError


def cmd_train(args: argparse.Namespace) -> int:
    from make_us_rich.data import parse_source
    from make_us_rich.workflow import ARTIFACTS, train_symbol

    spec = run_spec(args)
    days = args.days
    if days is None and args.start is None and parse_source(args.source).kind == "binance":
        days = spec.data.lookback_days  # the run's default lookback (a year) on the live API
    if args.symbols:
        return _train_universal(args, spec.with_params(lookback_days=days or 0.0))
    from make_us_rich.stages import check_per_symbol

    check_per_symbol(spec.train)
    if args.warm_start or args.warm_from_store or args.time_budget:
        raise ConfigError("--warm-start, --warm-from-store and --time-budget are for a universal model: give --symbols")
    run = train_symbol(
        args.source, args.symbol, args.out, spec, days=days, start=args.start, end=args.end,
        progress=not args.no_progress, tensorboard_dir=args.tensorboard_dir,
    )
    _print_training_summary(run)
    print(f"wrote {run.out_dir}/: {' '.join(n for n in ARTIFACTS if (run.out_dir / n).exists())}")
    return 0


def run_spec(args: argparse.Namespace):
    """The run spec of ``mkrich train``'s flags: the preset (``fast``, or ``universal`` with
    ``--symbols``) with the training flags given, and the data, gate and universal flags given
    (the others at their declared defaults). ``mkrich train`` sets no time budget unless told."""
    from make_us_rich.params import DATA_PARAMS, GATE_PARAMS, TRAIN_PARAMS, RunSpec, given
    from make_us_rich.training import preset

    config = preset(args.preset or ("universal" if args.symbols else "fast"))
    return RunSpec.of(config.with_overrides(**given(args, TRAIN_PARAMS)), **given(args, DATA_PARAMS + GATE_PARAMS),
                      concurrency=args.concurrency, time_budget=args.time_budget or 0.0)


def _train_universal(args: argparse.Namespace, spec) -> int:
    from make_us_rich.stages import run_universal

    symbols = [x.strip() for x in args.symbols.split(",") if x.strip()]
    if [s.lower() for s in symbols] == ["all"]:
        from make_us_rich.data import parse_source
        from make_us_rich.data.sources import csv_symbols

        src = parse_source(args.source)
        if src.kind != "csv" or not src.csv.is_dir():
            raise ConfigError("--symbols all needs --source csv:DIR (a folder of <SYMBOL>_*.csv[.gz] files)")
        symbols = csv_symbols(src.csv)
    summary = run_universal(
        args.source, symbols, args.out, spec, start=args.start, end=args.end,
        init_dir=args.warm_start, warm_store=args.warm_from_store,
        progress=not args.no_progress,
        tensorboard_dir=args.tensorboard_dir,
        on_stage=lambda name, info: print(f"  {name}: done", flush=True) if not args.no_progress else None,
    )
    t = summary["training"]
    print(f"\nuniversal model of {len(summary['symbols'])} symbol(s): {', '.join(summary['symbols'])}")
    print(f"  inputs: {', '.join(t['inputs'])}")
    print(f"  training: {t['train_windows']} train / {t['val_windows']} validation windows, "
          f"{t['epochs_run']} epoch(s) in {t['seconds']:.1f} s, best epoch {t['best_epoch']}"
          f"{' (warm start)' if t['warm_start'] else ''}{' (time budget spent)' if t['budget_exhausted'] else ''}")
    if t.get("warm_start_from"):
        print(f"  warm start from {t['warm_start_from']['symbol']} {t['warm_start_from']['version']} in the store")
    elif t.get("warm_start_note"):
        print(f"  trained in full: {t['warm_start_note']}")
    for sym, reason in summary["failed"].items():
        print(f"  {sym}: left out of this run: {reason}")
    print_symbol_table(summary["evaluation"])
    print(f"wrote {args.out}/: model.onnx model.keras model_card.json universal.json scaler/ summary.json"
          f"{' symbols/<SYMBOL>/' if summary['evaluation'] else ''}")
    return 0


def _card_symbol(model_dir: str) -> str:
    """The symbol a per-symbol model folder was trained on (``--symbol`` left out)."""
    from make_us_rich.contract import ModelCard
    from make_us_rich.io import read_json

    try:
        card = ModelCard.of(read_json(Path(model_dir) / "model_card.json"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{model_dir} is not a model folder ({exc}); pass the --out of "
                          "`mkrich train` or a run's artifacts") from None
    if card.is_universal or card.symbol is None:
        raise ConfigError(f"{model_dir} holds a universal model (trained on {', '.join(card.trained_on) or '?'});"
                          " pass --symbol, any symbol with data in --source")
    return card.symbol


def cmd_evaluate(args: argparse.Namespace) -> int:
    from make_us_rich.data import load_klines, normalize_symbol
    from make_us_rich.evaluation import evaluate_folder, load_window

    symbol = normalize_symbol(args.symbol or _card_symbol(args.model))
    period = (args.start, args.end, args.days)
    klines, report = load_klines(
        args.source, symbol, interval=args.interval,
        **load_window(args.start, args.end, args.days, args.history_days),
        max_missing_fraction=args.max_missing_fraction,
        progress=not args.no_progress, api_url=args.api_url or None,
    )
    test, out = evaluate_folder(args.model, klines, symbol, args.out, period=period)
    _print_report(symbol, report)
    _print_evaluation(symbol, test)
    print(f"wrote {out}/: metrics.json predictions.csv fan_chart.png calibration.png")
    return 0


def add_train(sub) -> None:
    from make_us_rich.params import add_arguments

    p = sub.add_parser(
        "train",
        help="fetch -> features -> windows -> train the quantile LSTM -> ONNX -> evaluate beside the baselines -> gate",
        description="Train one model on one machine and write every artifact (model.onnx, "
        "scaler.pkl/json, metrics.json, predictions.csv, history.json, model_card.json, PNG plots) into --out. "
        "Defaults: the 'fast' preset; the whole file for replay sources, 365 days for binance.",
    )
    _add_source_options(p, default_source=DEFAULT_SOURCE)
    p.add_argument("--out", required=True, help="artifact folder (replaced as a whole)")
    p.add_argument("--preset", default=None, help="fast (default for --symbol), universal (default for --symbols) "
                   "or tiny (seconds, for trials); the flags below override it")
    from make_us_rich.params import GATE_PARAMS, TRAIN_PARAMS, UniversalSpec

    add_arguments(p, TRAIN_PARAMS + GATE_PARAMS)
    p.add_argument("--tensorboard-dir", help="also write TensorBoard logs here (needs `pip install tensorboard`: TensorFlow no longer brings it)")
    p.add_argument("--symbols", help="comma-separated symbols (or 'all' of a csv:DIR folder): train ONE "
                   "universal model on their pooled windows (csv:DIR reads DIR/<SYMBOL>_*.csv[.gz]); each is "
                   "evaluated on its own test "
                   "period into --out/symbols/<SYMBOL>/ (none with --test-size 0)")
    p.add_argument("--warm-start", metavar="DIR", help="with --symbols: start from this universal model "
                   "folder's weights and input scaler (same inputs, window and units)")
    p.add_argument("--warm-from-store", metavar="URI", help="with --symbols: start from the newest accepted "
                   "universal model of these symbols in this model store (none, or another shape: full training)")
    p.add_argument("--concurrency", type=int, default=None,
                   help=f"with --symbols: symbols fetched at once (default {UniversalSpec().concurrency})")
    p.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="with --symbols: stop training after this many seconds (best weights kept)")
    p.set_defaults(func=cmd_train)


def add_evaluate(sub) -> None:
    from make_us_rich.params import DEFAULT_HISTORY_DAYS

    p = sub.add_parser(
        "evaluate",
        help="score a trained model out of sample on any period, beside the baselines",
        description="Walk-forward evaluation of a model folder (`mkrich train --out` or a "
        "pipeline run's artifacts) on klines from --source: each hour of the period (--start/"
        "--end, or the last --days up to --end; default: the last 30 days) is forecast only from "
        "the hours before it, by the model and by the baselines (persistence, empirical "
        "quantiles, GARCH-t, HAR). Writes metrics.json, predictions.csv and the plots to --out.",
    )
    _add_source_options(p, default_source=DEFAULT_SOURCE)
    p.set_defaults(symbol=None)  # the model card's symbol
    p.add_argument("--model", required=True, help="model folder (holds model.onnx and model_card.json); "
                   "--symbol defaults to the symbol it was trained on (a universal model needs --symbol)")
    p.add_argument("--history-days", type=float, default=DEFAULT_HISTORY_DAYS,
                   help="days loaded before the period for the volatility features and the "
                   f"baselines' monthly refits on the trailing year (default {DEFAULT_HISTORY_DAYS:g})")
    p.add_argument("--out", required=True, help="output folder (replaced as a whole)")
    p.set_defaults(func=cmd_evaluate)
