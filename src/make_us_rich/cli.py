"""``mkrich``: the command line of make-us-rich. A thin shell: every command parses its options,
calls library functions and prints a summary. Errors of the library are shown as one line
(``error: ...``) with exit code 2; no traceback unless ``--debug``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from make_us_rich import __version__
from make_us_rich.errors import ConfigError, MakeUsRichError

log = logging.getLogger("make_us_rich.cli")

#: The one default source of every command that reads klines on this machine: the bundled sample,
#: so that each works offline on a fresh clone; ``--source binance`` for live data. (submit and
#: schedule, the cluster's hourly retrain, default to binance: see docs/cli.md.)
DEFAULT_SOURCE = "sample"


# --------------------------------------------------------------------------- helpers
def _add_store_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=default_store(),
                   help="store URI: a folder, file:///path or s3://bucket/prefix "
                   "(default: $MKRICH_STORE or runs/store)")


def _add_cluster_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", required=True, help="Kubeflow Pipelines API, e.g. http://localhost:8080/pipeline")
    p.add_argument("--namespace", default="kubeflow", help="KFP namespace (default kubeflow)")
    p.add_argument("--experiment", default="make-us-rich", help="experiment name")
    p.add_argument("--token", default=os.environ.get("KFP_TOKEN"),
                   help="bearer token for the KFP API (default $KFP_TOKEN)")


def _add_source_options(p: argparse.ArgumentParser, default_source: str) -> None:
    from make_us_rich.params import BY_NAME

    p.add_argument(
        "--source",
        default=default_source,
        help="where klines come from: 'binance' (live API), 'sample' (bundled real klines, "
        f"offline) or 'csv:PATH' (a file in the Binance dump format). Default: {default_source}",
    )
    p.add_argument("--symbol", default="BTCEUR", help="trading pair, e.g. BTCEUR or BTC/EUR")
    window = p.add_mutually_exclusive_group()
    window.add_argument("--days", type=float, help="the last N days up to --end")
    window.add_argument("--start", help="first open time (ISO 8601 or epoch ms, UTC)")
    p.add_argument(
        "--end",
        help="last open time (default: now for binance, the file's last candle for replay "
        "sources). Fix it for a reproducible window.",
    )
    for name in ("interval", "max_missing_fraction", "api_url"):
        param = BY_NAME[name]
        p.add_argument(param.cli_flag, dest=name, type=param.type, default=param.default,
                       help=f"{param.help} (default: {param.default or 'none'})".replace("%", "%%"))
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _load(args: argparse.Namespace):
    from make_us_rich.data import load_klines

    return load_klines(
        args.source,
        args.symbol,
        interval=args.interval,
        start=args.start,
        end=args.end,
        days=args.days,
        max_missing_fraction=args.max_missing_fraction,
        progress=not args.no_progress,
        api_url=args.api_url or None,
    )


def _print_report(symbol: str, report) -> None:
    print(f"{symbol}: {report.rows_out} candles {report.start} .. {report.end}")
    if report.missing_candles:
        print(
            f"  gaps: {report.missing_candles} missing candle(s) in {report.gaps} gap(s) "
            f"({report.missing_fraction:.2%}), largest {report.largest_gap_candles}"
        )
    for repair in report.repairs:
        print(f"  repaired: {repair}")


# --------------------------------------------------------------------------- commands
def cmd_fetch(args: argparse.Namespace) -> int:
    from make_us_rich.data import normalize_symbol, write_klines_csv

    klines, report = _load(args)
    path = write_klines_csv(klines, args.out)
    _print_report(normalize_symbol(args.symbol), report)
    print(f"wrote {path}")
    return 0


def cmd_preprocess(args: argparse.Namespace) -> int:
    from make_us_rich import stages
    from make_us_rich.data import normalize_symbol
    from make_us_rich.io import write_json
    from make_us_rich.training.config import TrainConfig

    out = Path(args.out)
    klines, report = _load(args)
    config = TrainConfig(sequence_length=args.sequence_length, test_size=args.test_size, val_size=args.val_size)
    done = stages.run_stages(args.source, args.symbol, out, config, klines=(klines, report), work_dir=out,
                             until="scale")
    split, windows = done["split"], done["sequences"]
    columns = list(stages.read_table(out / "train.csv").columns)
    summary = {"symbol": normalize_symbol(args.symbol), "source": args.source, "data": report.to_dict(),
               **split, **windows, "sequence_length": args.sequence_length,
               "n_features": len(columns), "feature_names": columns}
    write_json(out / "summary.json", summary)
    _print_report(summary["symbol"], report)
    print(
        f"  train {split['train_rows']} rows {split['train_period'][0]} .. "
        f"{split['train_period'][1]}; test {split['test_rows']} rows"
    )
    print(
        f"  windows of {args.sequence_length} hours: train {windows['train_windows']}, "
        f"val {windows['val_windows']}, test {windows['test_windows']}"
    )
    print(f"wrote {out}/: the stage files of the pipeline (klines/ features.csv train.csv "
          "test.csv sequences.npz scaler/ summary.json)")
    return 0


def _scores_line(test: dict | None) -> str:
    """One line of a model's key test scores (runs, versions)."""
    from make_us_rich.contract import ModelScores

    scores = ModelScores.of(test)

    def f(v, fmt="{:.4f}"):
        return "n/a" if v is None else fmt.format(v)

    return (f"pinball/A {f(scores.pinball_vs_empirical)}  pinball/GARCH "
            f"{f(scores.pinball_vs_garch_t)}  cov90 {f(scores.coverage90, '{:.3f}')}  "
            f"RMSE/persistence {f(scores.rmse_vs_persistence)}")


def _print_evaluation(symbol: str, test: dict) -> None:
    from make_us_rich.training.report import text_table

    print(f"\n{symbol}: {test['n']} forecast hours {test['period'][0]} .. {test['period'][1]}")
    print(f"  {test['units']}; bp = 1e-4; pinball ratio = model / baseline (< 1: the model is better)")
    print(text_table(test))
    price = test["price"]
    print(f"  median close in price units: RMSE {price['model']['rmse']:.6g} vs persistence "
          f"{price['persistence']['rmse']:.6g}")  # significant digits: SHIB trades at 1e-5
    if test.get("pinball_ratio_ci95"):
        ci = test["pinball_ratio_ci95"]
        print(f"  pinball ratio vs empirical {ci['ratio']:.4f}, block-bootstrap 95 % interval "
              f"{ci['low']:.4f}-{ci['high']:.4f}")


def _print_training_summary(run) -> None:
    m = run.metrics
    _print_evaluation(m["symbol"], m["test"])
    t = m["training"]
    best = "untrained = empirical quantiles" if t["best_epoch"] == 0 else str(t["best_epoch"])
    print(
        f"  training: {t['epochs_run']} epoch(s) in {t['seconds']:.1f} s, best epoch {best}; "
        f"ONNX parity max rel. error {m['parity']['max_rel_error']:.1e}"
    )
    verdict = "PASSED" if m["gate"]["passed"] else "REJECTED"
    print(f"  gate: {verdict} ({'; '.join(m['gate']['reasons'])})")


def cmd_train(args: argparse.Namespace) -> int:
    from make_us_rich.data import parse_source
    from make_us_rich.params import TRAIN_PARAMS, given
    from make_us_rich.training import preset
    from make_us_rich.workflow import ARTIFACTS, train_symbol

    name = args.preset or ("universal" if args.symbols else "fast")
    config = preset(name).with_overrides(**given(args, TRAIN_PARAMS))
    days = args.days
    if days is None and args.start is None and parse_source(args.source).kind == "binance":
        days = 365  # one year of hourly candles by default on the live API
    if args.symbols:
        return _train_universal(args, config, days)
    if args.warm_start or args.warm_from_store or args.time_budget:
        raise ConfigError("--warm-start, --warm-from-store and --time-budget are for a universal model: give --symbols")
    run = train_symbol(
        args.source, args.symbol, args.out, config,
        interval=args.interval, days=days, start=args.start, end=args.end,
        max_missing_fraction=args.max_missing_fraction, api_url=args.api_url or None,
        **_gate_options(args), progress=not args.no_progress, tensorboard_dir=args.tensorboard_dir,
    )
    _print_training_summary(run)
    print(f"wrote {run.out_dir}/: {' '.join(n for n in ARTIFACTS if (run.out_dir / n).exists())}")
    return 0


def _gate_options(args: argparse.Namespace) -> dict:
    """The gate flags as run_stages/run_universal take them (each flag, or its declared default)."""
    from make_us_rich.params import GATE_PARAMS, given

    gate = {p.name: p.default for p in GATE_PARAMS} | given(args, GATE_PARAMS)
    return {"gate_tolerance": gate["gate_tolerance"],
            "coverage_band": (gate["coverage_min"], gate["coverage_max"])}


def _train_universal(args: argparse.Namespace, config, days) -> int:
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
        args.source, symbols, args.out, config, interval=args.interval, lookback_days=days,
        start=args.start, end=args.end, max_missing_fraction=args.max_missing_fraction,
        api_url=args.api_url or None, **_gate_options(args),
        init_dir=args.warm_start, warm_store=args.warm_from_store, time_budget=args.time_budget,
        horizons=args.horizons,
        progress=not args.no_progress,
        concurrency=args.concurrency,
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


def print_symbol_table(rows: dict) -> None:
    """The per-symbol table of a universal run (test period of each symbol vs its baselines)."""
    if not rows:
        print("  no test period (test_size 0): score it with `mkrich evaluate --model DIR --symbol X`")
        return

    def f(v, fmt="{:.4f}"):
        return "n/a" if v is None else fmt.format(v)

    print(f"\n  {'symbol':<10} {'hours':>6} {'pin/A':>7} {'pin/GARCH':>9} {'pin/HAR':>8} {'cov90':>6} "
          f"{'cov50':>6} {'RMSE/pers':>9}  gate   inputs lacking")
    for sym, r in rows.items():
        if "error" in r:
            print(f"  {sym:<10} not evaluated: {r['error']}")
            continue
        lacking = ",".join((r.get("inputs") or {}).get("unavailable") or []) or "-"
        print(f"  {sym:<10} {r['n']:>6} {f(r['pinball_vs_empirical']):>7} {f(r['pinball_vs_garch_t']):>9} "
              f"{f(r['pinball_vs_har']):>8} {f(r['coverage_90'], '{:.3f}'):>6} {f(r['coverage_50'], '{:.3f}'):>6} "
              f"{f(r['median_rmse_vs_persistence']):>9}  {'pass' if r['gate'] else 'FAIL':<6} {lacking}")


def _default(name: str):
    from make_us_rich.params import BY_NAME

    return BY_NAME[name].default


def default_store() -> str:
    """The model store URI: $MKRICH_STORE, else the local folder runs/store."""
    return os.environ.get("MKRICH_STORE") or "runs/store"


def cmd_publish(args: argparse.Namespace) -> int:
    from make_us_rich.contract import model_name as contract_model_name
    from make_us_rich.observability import push_publish
    from make_us_rich.store import ModelStore
    from make_us_rich.store.model_store import UNIVERSAL_MODEL

    store = ModelStore(args.store, keep=args.keep)
    result = store.publish(args.artifacts, args.symbol, allow_contract_change=bool(args.allow_contract_change),
                           shared_model=args.shared_model)
    if push_publish(store, result.symbol, args.artifacts, version=result.version):
        print("  metrics pushed to the Pushgateway")
    print(f"{result.symbol} {result.version}: {result.status.upper()} -> {result.uri}")
    for reason in result.reasons:
        print(f"  gate: {reason}")
    if result.latest:
        triton_name = UNIVERSAL_MODEL if result.shared else contract_model_name(result.symbol)
        print(f"  latest -> {result.version}; Triton: {store.triton_uri}/{triton_name}/{result.triton_version}/model.onnx")
        if result.shared:
            print(f"  model shared by every symbol of the universal model: {result.shared}")
        if result.contract_changes:
            print(f"  serving contract changed ({'; '.join(result.contract_changes)}): running servers keep "
                  "the previous model until restarted; tell the clients")
    else:
        print("  not promoted: latest is unchanged")
    if result.removed_versions:
        print(f"  retention (keep {args.keep}): removed {', '.join(result.removed_versions)}")
    return 0 if result.status == "accepted" or not args.fail_on_reject else 3


def cmd_versions(args: argparse.Namespace) -> int:
    from make_us_rich.store import ModelStore
    from make_us_rich.store.backends import LocalBackend

    store = ModelStore(args.store)
    if isinstance(store.backend, LocalBackend) and not store.backend.root.is_dir():
        raise ConfigError(f"no model store at {store.backend.root}: check --store (or "
                          "$MKRICH_STORE); `mkrich run` or `mkrich publish` creates one")
    latest = store.latest(args.symbol) or {}
    versions = store.versions(args.symbol)
    if not versions:
        print(f"no versions of {args.symbol} in {store.uri}")
        return 0
    print(f"{'version':<36} {'status':<10} {'triton':>14}  test scores")
    for m in versions:
        mark = "  <- latest" if m["version"] == latest.get("version") else ""
        print(f"{m['version']:<36} {m['status']:<10} {m.get('triton_version') or '':>14}  "
              f"{_scores_line(m.get('metrics'))}{mark}")
    return 0


def _check_port_free(port: int, host: str = "127.0.0.1") -> None:
    """A taken port is a one-line error that says what to do, before the server starts."""
    from make_us_rich.ports import port_in_use

    if port_in_use(port, host):
        raise ConfigError(
            f"port {port} is in use (another mkrich serve?): stop it, or choose another "
            "port with --port N (make serve PORT=N)"
        )


def cmd_serve(args: argparse.Namespace) -> int:
    import warnings

    # kserve answers through fastapi's ORJSONResponse, which fastapi now deprecates: a warning
    # at the first request of every server start that the user can do nothing about
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated", module="fastapi")
    from make_us_rich.serving.server import serve

    symbols = [x.strip() for x in args.symbols.split(",") if x.strip()] if args.symbols else None
    host = f"[{args.host}]" if ":" in args.host else args.host
    where = " (all interfaces)" if args.host in ("0.0.0.0", "::") else ""
    _check_port_free(args.port, args.host)

    def announce(models) -> None:
        print(f"serving {', '.join(m.name for m in models)} from {args.store} on "
              f"http://{host}:{args.port}{where}", flush=True)

    serve(args.store, symbols, host=args.host, port=args.port, reload_interval=args.reload_interval,
          max_batch=args.max_batch, max_body=args.max_body, body_timeout=args.body_timeout,
          header_timeout=args.header_timeout,
          on_listen=announce)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from make_us_rich.predict_client import predict_next_close

    result = predict_next_close(
        args.url, args.symbol, source=args.source, api_url=args.api_url,
        token=os.environ.get("MKRICH_SERVING_TOKEN"), end=args.end,
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['symbol']} next close ({result['for_hour']}): {result['predicted_close']:,.2f}")
    q = result.get("quantiles")
    if q:
        print(f"  50 %: {q['q25']:,.2f} - {q['q75']:,.2f}   90 %: {q['q05']:,.2f} - {q['q95']:,.2f}")
    print(f"  last close ({result['last_hour']}): {result['last_close']:,.2f}  "
          f"median change {result['predicted_close'] - result['last_close']:+,.2f}")
    print(f"  model {result['model']} version {result['model_version']} at {args.url}")
    return 0


def _horizons(text: str) -> tuple[int, ...]:
    """``--horizons 1,4,24`` (hours ahead; 1 must be among them: the contract's outputs)."""
    try:
        hours = tuple(sorted({int(h) for h in text.split(",") if h.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes whole hours separated by commas, e.g. 1,4,24, not {text!r}") from None
    if not hours or hours[0] != 1 or hours[-1] > 720:
        raise argparse.ArgumentTypeError(f"takes hours from 1 to 720 including 1 (the next hour), e.g. 1,4,24, not {text!r}")
    return hours


def _card_symbol(model_dir: str) -> str:
    """The symbol a per-symbol model folder was trained on (``--symbol`` left out)."""
    from make_us_rich.io import read_json

    try:
        card = read_json(Path(model_dir) / "model_card.json")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{model_dir} is not a model folder ({exc}); pass the --out of "
                          "`mkrich train` or a run's artifacts") from None
    if card.get("kind") == "universal" or "universal" in card or not card.get("symbol"):
        trained = card.get("symbols") or (card.get("universal") or {}).get("trained_on") or []
        raise ConfigError(f"{model_dir} holds a universal model (trained on {', '.join(trained) or '?'});"
                          " pass --symbol, any symbol with data in --source")
    return str(card["symbol"])


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


def _add_pipeline_options(p: argparse.ArgumentParser, *, cluster: bool) -> None:
    from make_us_rich.params import PIPELINE_PARAMS, UNIVERSAL_PARAMS, add_arguments

    p.add_argument("--symbols", default="BTCEUR", help="comma-separated symbols, trained in parallel")
    if not cluster:
        p.add_argument("--universal", action="store_true",
                       help="run universal-training: ONE model on the pooled data of every symbol, then "
                       "evaluate, gate and publish it for each (issue 21)")
        add_arguments(p.add_argument_group("universal-training (only with --universal)"), UNIVERSAL_PARAMS)
    else:
        from make_us_rich.params import DEFAULT_PIPELINE, PIPELINE_NAMES

        p.add_argument("--pipeline", choices=list(PIPELINE_NAMES), default=DEFAULT_PIPELINE,
                       help="hourly-training: one model per symbol; universal-training: ONE model on the "
                       f"pooled data of every symbol (issue 21) (default {DEFAULT_PIPELINE})")
        add_arguments(p.add_argument_group("universal-training (only with --pipeline universal-training)"),
                      UNIVERSAL_PARAMS)
    p.add_argument("--source", default=None if cluster else DEFAULT_SOURCE,
                   help="binance, sample or csv:PATH" + (" (default binance)" if cluster else " (default sample: offline)"))
    add_arguments(p, PIPELINE_PARAMS)
    if cluster:
        p.add_argument("--store", help="store URI as seen from the cluster (default s3://mlpipeline/make-us-rich)")
        p.add_argument("--s3-endpoint", help="S3 endpoint for publishing, e.g. http://minio-service.kubeflow:9000")
        p.add_argument("--s3-region", help="S3 region for publishing (default us-east-1)")
        p.add_argument("--rollout-isvc", help="InferenceService to roll after an accepted model "
                       "(the Triton one, e.g. mkrich-onnx); Triton only loads models at pod start")
        p.add_argument("--dashboard-url", help="the Kubeflow Pipelines UI, for the run summary's link to the "
                       "run, e.g. https://kubeflow.example.com/_/pipeline (or the Secret mkrich-notify's "
                       "key dashboard_url)")
        _add_cluster_options(p)
    else:
        _add_store_option(p)
        p.add_argument("--pipeline-root", default="runs/pipeline", help="where kfp.local keeps artifacts")
        p.add_argument("--notify-url", default=os.environ.get("MKRICH_NOTIFY_URL"),
                       help="webhook the pipeline's exit task posts the run summary to "
                       "(default $MKRICH_NOTIFY_URL; none: print only)")
        p.add_argument("--notify-format", choices=("slack", "json"), default="slack",
                       help="slack: incoming-webhook {\"text\": ...}; json: the summary itself (default slack)")


def _pipeline_params(args: argparse.Namespace) -> dict:
    from make_us_rich.params import PIPELINE_PARAMS, given

    params = {"symbols": [x.strip() for x in args.symbols.split(",") if x.strip()]}
    if args.source is not None:
        params["source"] = args.source
    params.update(given(args, PIPELINE_PARAMS, pipeline=True))
    return params


def cmd_run(args: argparse.Namespace) -> int:
    from make_us_rich.data import normalize_symbol
    from make_us_rich.pipelines.local import PipelineRunError, run_local

    params = _pipeline_params(args)
    symbols = [normalize_symbol(s) for s in params.pop("symbols")]
    source = params.pop("source")
    from make_us_rich.preflight import check_run

    left_out = check_run(symbols, source, args.store, interval=params.get("interval", _default("interval")),
                         api_url=params.get("api_url"), partial=args.universal)
    for symbol, reason in left_out.items():  # the universal run lists them in its summary too
        print(f"{symbol}: left out of this run: {reason}", flush=True)
    print(f"running pipeline {'universal-training' if args.universal else 'hourly-training'} locally (kfp.local) for {', '.join(symbols)} on {source}"
          f"{'' if args.verbose else ' (-v shows kfp.local output live)'}", flush=True)
    try:
        if args.universal:
            from make_us_rich.params import UNIVERSAL_PARAMS, given

            params.update(given(args, UNIVERSAL_PARAMS, pipeline=True))
        elif any(getattr(args, name, None) is not None for name in ("concurrency", "time_budget")):
            raise ConfigError("--concurrency and --time-budget are options of --universal")
        result = run_local(symbols, source=source, store_uri=args.store,
                           pipeline_root=args.pipeline_root, verbose=args.verbose > 0,
                           notify_url=args.notify_url, notify_format=args.notify_format,
                           universal=args.universal, **params)
    except PipelineRunError as exc:
        _print_summary(exc.summary)  # the exit task posted it and pushed the failure
        raise
    print(f"\npipeline finished in {result['seconds']:.0f} s")
    for symbol, info in result["symbols"].items():
        newest = info["newest"]
        if newest is None:
            print(f"  {symbol:<9} no model published by this run (see the run summary below)")
            continue
        print(f"  {symbol:<9} {newest.get('status', '?'):<10} {newest.get('version')}")
        print(f"  {'':<9} {_scores_line(newest.get('metrics'))}")
    print(f"\nmodel store: {result['store']}")
    for symbol, info in result["symbols"].items():
        if info["artifacts"]:
            print(f"artifacts ({symbol}): {info['artifacts']}")
    print(f"kfp.local log: {result['log']}")
    print("serve them: mkrich serve --store", args.store, "--symbols", ",".join(symbols))
    _print_summary(result["summary"])
    return 0


def _print_summary(summary: dict | None) -> None:
    """The summary the pipeline's exit task built (and posted, with --notify-url): printed
    here, never posted a second time."""
    from make_us_rich.notify import text

    if summary is None:
        print("\nno run summary: the exit task did not run (see the kfp.local log)")
    else:
        print(f"\nrun summary\n{text(summary)}\n({summary.get('delivery', 'delivery unknown')})")


def _cluster_kwargs(args: argparse.Namespace) -> dict:
    return {"namespace": args.namespace, "experiment": args.experiment, "token": args.token}


def _cluster_params(args: argparse.Namespace) -> dict:
    from make_us_rich.preflight import check_source

    params = _pipeline_params(args)
    check_source(params.get("source", "binance"), params["symbols"],
                 params.get("interval", _default("interval")))
    if args.store:
        params["store_uri"] = args.store
    if args.s3_endpoint:
        params["s3_endpoint"] = args.s3_endpoint
    if args.s3_region:
        params["s3_region"] = args.s3_region
    if args.rollout_isvc:
        params["rollout_isvc"] = args.rollout_isvc
    if args.dashboard_url:
        params["dashboard_url"] = args.dashboard_url
    params.update(_universal_params(args, args.pipeline == "universal-training", "--pipeline universal-training"))
    return params


def _universal_params(args: argparse.Namespace, universal: bool, how: str) -> dict:
    """The universal-training flags given, refused for the per-symbol pipeline."""
    from make_us_rich.params import UNIVERSAL_PARAMS, given

    params = given(args, UNIVERSAL_PARAMS, pipeline=True)
    if params and not universal:
        flags = ", ".join("--" + name.replace("_", "-") for name in params)
        raise ConfigError(f"{flags}: options of universal-training; add {how}")
    return params


def cmd_submit(args: argparse.Namespace) -> int:
    from make_us_rich.pipelines.cluster import submit

    run_id = submit(args.host, _cluster_params(args), pipeline=args.pipeline, **_cluster_kwargs(args))
    print(f"submitted run {run_id} of {args.pipeline}")
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    from make_us_rich.pipelines.cluster import schedule

    result = schedule(args.host, _cluster_params(args), cron=args.cron, pipeline=args.pipeline,
                      **_cluster_kwargs(args))
    print(f"recurring run {result['recurring_run_id']} of {args.pipeline} ({result['cron']}, max_concurrency 1, "
          "no catch-up)")
    if result["replaced"]:
        print(f"  replaced {', '.join(result['replaced'])}")
    return 0


def cmd_unschedule(args: argparse.Namespace) -> int:
    from make_us_rich.pipelines.cluster import unschedule

    removed = unschedule(args.host, **_cluster_kwargs(args))
    print(f"removed {len(removed)} recurring run(s)" + (f": {', '.join(removed)}" if removed else ""))
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from make_us_rich.pipelines.catalog import compile_all

    for path in compile_all(args.out):
        print(f"wrote {path}")
    return 0


def cmd_fake_binance(args: argparse.Namespace) -> int:
    import threading

    from make_us_rich.data import load_klines
    from make_us_rich.testing.fake_binance import FakeBinance

    tables = {s: load_klines("sample", s)[0] for s in args.symbols.split(",")}
    with FakeBinance(tables, port=args.port) as fake:
        print(f"fake Binance API serving {', '.join(tables)} (bundled sample) at {fake.api_url}")
        print(f"try: mkrich fetch --source binance --api-url {fake.api_url} --end 2023-12-31 "
              "--days 30 --out x.csv")
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mkrich",
        description="make-us-rich: fetch klines, preprocess, train, publish and serve an hourly "
        "crypto price forecaster.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "fetch",
        help="download klines (or read a replay source) into a CSV",
        description="Fetch klines, validate them and write a CSV in the Binance dump format "
        "(the same format csv:PATH reads).",
    )
    _add_source_options(p, default_source=DEFAULT_SOURCE)
    p.add_argument("--out", required=True, help="CSV path to write (.csv or .csv.gz)")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser(
        "preprocess",
        help="features -> chronological split -> windows -> scaler, the stage files written to a folder",
        description="Run the data stages of the pipeline on klines and write their files: "
        "klines/, features.csv, train.csv, test.csv, the windows (sequences.npz), the scaler of "
        "the LSTM's inputs (scaler/) and summary.json.",
    )
    _add_source_options(p, default_source=DEFAULT_SOURCE)
    from make_us_rich.params import BY_NAME, add_arguments

    for name in ("sequence_length", "test_size", "val_size"):
        param = BY_NAME[name]
        p.add_argument(param.cli_flag, dest=name, type=param.type, default=param.default,
                       help=f"{param.help} (default: {param.default})")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_preprocess)

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
    from make_us_rich.params import GATE_PARAMS, TRAIN_PARAMS

    add_arguments(p, TRAIN_PARAMS + GATE_PARAMS)
    p.add_argument("--tensorboard-dir", help="also write TensorBoard logs here")
    p.add_argument("--symbols", help="comma-separated symbols (or 'all' of a csv:DIR folder): train ONE "
                   "universal model on their pooled windows (csv:DIR reads DIR/<SYMBOL>_*.csv[.gz]); each is "
                   "evaluated on its own test "
                   "period into --out/symbols/<SYMBOL>/ (none with --test-size 0)")
    p.add_argument("--warm-start", metavar="DIR", help="with --symbols: start from this universal model "
                   "folder's weights and input scaler (same inputs, window and units)")
    p.add_argument("--warm-from-store", metavar="URI", help="with --symbols: start from the newest accepted "
                   "universal model of these symbols in this model store (none, or another shape: full training)")
    p.add_argument("--concurrency", type=int, default=4,
                   help="with --symbols: symbols fetched at once (default 4)")
    p.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="with --symbols: stop training after this many seconds (best weights kept)")
    p.add_argument("--horizons", type=_horizons, default=(1,), metavar="H1,H2,...",
                   help="with --symbols: hours ahead to forecast, e.g. 1,4,24 (one output per horizon; "
                   "mkrich evaluate then writes predictions_h{h}.csv); default 1")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "publish",
        help="publish `mkrich train` artifacts to the model store (through the gate)",
        description="Upload a trained model as a new immutable version; if it passed the "
        "promotion gate it becomes `latest` and enters the Triton repository view, otherwise it "
        "is stored as rejected and latest is unchanged.",
    )
    p.add_argument("artifacts", help="folder written by `mkrich train --out`")
    p.add_argument("--symbol", required=True, help="trading pair of the model, e.g. BTCEUR")
    _add_store_option(p)
    keep = BY_NAME["keep"]
    p.add_argument("--keep", type=int, default=keep.default, help=f"{keep.help} (default {keep.default})")
    p.add_argument("--fail-on-reject", action="store_true", help="exit 3 when the gate rejected the model")
    add_arguments(p, (BY_NAME["allow_contract_change"],))
    p.add_argument("--shared-model", metavar="DIR",
                   help="the universal model folder (`mkrich train --symbols ... --out DIR`) the artifacts "
                   "were evaluated from: its files are stored once, shared by every symbol's version")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser(
        "versions", help="list a symbol's model versions in the store",
        description="Every version of a symbol's model in the store, oldest first: its status "
        "(accepted, rejected), its Triton version and its test scores (pinball ratios against "
        "the empirical quantiles and GARCH-t, 90 % coverage, median RMSE against persistence); "
        "the latest one is marked. Over time: mkrich runs models.",
    )
    p.add_argument("--symbol", default="BTCEUR")
    _add_store_option(p)
    p.set_defaults(func=cmd_versions)

    p = sub.add_parser(
        "serve",
        help="serve the latest models (KServe ModelServer, Open Inference Protocol v1/v2)",
        description="Load the latest accepted model of each symbol from the store and serve "
        "/v2/models/<symbol>-close/infer and /v1/models/<symbol>-close:predict; new versions "
        "are hot-reloaded. Set MKRICH_SERVING_TOKEN to require a bearer token.",
    )
    _add_store_option(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens "
                   "it to the network, as the container image does)")
    p.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    p.add_argument("--symbols", default=None,
                   help="comma-separated symbols (default: every symbol with an accepted model in "
                   "the store, and those published later)")
    p.add_argument("--reload-interval", type=float, default=30.0,
                   help="seconds between checks for a new latest model (0: never)")
    p.add_argument("--max-batch", type=int, default=1024, help="largest batch accepted (default 1024)")
    p.add_argument("--max-body", type=int, default=8 * 1024 * 1024, help="largest request body in bytes")
    p.add_argument("--body-timeout", type=float, default=30.0,
                   help="seconds a client may take to send a request body (default 30; then 408)")
    p.add_argument("--header-timeout", type=float, default=10.0,
                   help="seconds a client may take to send a request line and its headers, from "
                   "the connection or the request's first byte (default 10; then 408 and closed)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "predict",
        help="ask a running server for the next hour's close (features built as in training)",
        description="Load the last window of klines from --source, build the features exactly "
        "as training did, send them to the server at --url (mkrich serve, or a Triton/KServe "
        "endpoint speaking the Open Inference Protocol v2) and print the median forecast of the "
        "next close with its 50 % and 90 % intervals. $MKRICH_SERVING_TOKEN is sent as a bearer "
        "token when set.",
    )
    p.add_argument("--symbol", default="BTCEUR")
    p.add_argument("--url", default="http://127.0.0.1:8080", help="server base URL")
    p.add_argument("--source", default=DEFAULT_SOURCE,
                   help=f"where the last window comes from: binance or sample (default {DEFAULT_SOURCE})")
    p.add_argument("--end", help="last candle's open time (default: latest available)")
    p.add_argument("--api-url", help="Binance REST base URL (default: $BINANCE_API_URL or Binance)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON (for scripts)")
    p.set_defaults(func=cmd_predict)

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
    p.add_argument("--history-days", type=float, default=400.0,
                   help="days loaded before the period for the volatility features and the "
                   "baselines' monthly refits on the trailing year (default 400)")
    p.add_argument("--out", required=True, help="output folder (replaced as a whole)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "run",
        help="run the Kubeflow pipeline on this machine (kfp.local), offline on the sample by default",
        description="Execute the hourly-training pipeline here with kfp.local: every component "
        "runs in a subprocess, artifacts go under --pipeline-root, models to --store.",
    )
    _add_pipeline_options(p, cluster=False)
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="show kfp.local's output (executor inputs, component logs) live")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "compile", help="compile the pipelines to IR YAML and Pipeline/PipelineVersion manifests",
        description="Write, for hourly-training and universal-training, NAME.yaml (the KFP IR, to "
        "upload in the Kubeflow UI or the API) and NAME.k8s.yaml (Pipeline and PipelineVersion "
        "manifests for kubectl apply) into --out.",
    )
    p.add_argument("--out", default="pipelines/compiled", help="output folder (default pipelines/compiled)")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser(
        "submit", help="start one run of the pipeline on a Kubeflow cluster",
        description="Compile the pipeline and start one run of it through the Kubeflow Pipelines "
        "API at --host, in --experiment, with caching off; prints the run id. The source and "
        "symbols are checked first; on the cluster the source defaults to binance.",
    )
    _add_pipeline_options(p, cluster=True)
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("schedule", help="create or update the hourly recurring run on a Kubeflow cluster")
    _add_pipeline_options(p, cluster=True)
    p.add_argument("--cron", default="0 0 * * * *",
                   help="KFP cron, 6 fields with seconds (default '0 0 * * * *': hourly)")
    p.set_defaults(func=cmd_schedule)

    p = sub.add_parser("unschedule", help="remove the hourly recurring run")
    _add_cluster_options(p)
    p.set_defaults(func=cmd_unschedule)

    p = sub.add_parser(
        "fake-binance",
        help="serve the bundled sample through a local Binance-compatible API (offline demos)",
    )
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--symbols", default="BTCEUR,BTCUSDT", help="sample symbols to serve")
    p.set_defaults(func=cmd_fake_binance)

    from make_us_rich.console.cli import add_parser as add_console_parser
    from make_us_rich.runs_cli import add_parser as add_runs_parser

    add_runs_parser(sub)
    add_console_parser(sub)
    return parser


def _check_api_url(args: argparse.Namespace) -> None:
    """``--api-url`` with another source than binance would be ignored without a word."""
    source = getattr(args, "source", None)
    if getattr(args, "api_url", None) and source not in (None, "binance"):
        raise ConfigError(f"--api-url is for --source binance; the source is {source} "
                          "(add --source binance)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    try:
        _check_api_url(args)
        return func(args)
    except MakeUsRichError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
