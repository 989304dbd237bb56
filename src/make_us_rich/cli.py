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
from make_us_rich.contract import model_name as contract_model_name
from make_us_rich.errors import ConfigError, MakeUsRichError

log = logging.getLogger("make_us_rich.cli")


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
    p.add_argument(
        "--source",
        default=default_source,
        help="where klines come from: 'binance' (live API), 'sample' (bundled real klines, "
        f"offline) or 'csv:PATH' (a file in the Binance dump format). Default: {default_source}",
    )
    p.add_argument("--symbol", default="BTCEUR", help="trading pair, e.g. BTCEUR or BTC/EUR")
    p.add_argument("--interval", default="1h", help="kline interval (Binance's), default 1h")
    window = p.add_mutually_exclusive_group()
    window.add_argument("--days", type=float, help="the last N days up to --end")
    window.add_argument("--start", help="first open time (ISO 8601 or epoch ms, UTC)")
    p.add_argument(
        "--end",
        help="last open time (default: now for binance, the file's last candle for replay "
        "sources). Fix it for a reproducible window.",
    )
    p.add_argument(
        "--max-missing-fraction",
        type=float,
        default=0.01,
        help="fail when more than this fraction of candles is missing (default 0.01)",
    )
    p.add_argument(
        "--api-url",
        help="Binance REST base URL (default: $BINANCE_API_URL or https://api.binance.com/api)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _load(args: argparse.Namespace):
    from make_us_rich.data import load_klines, parse_source

    source = parse_source(args.source)
    client = None
    if source.kind == "binance":
        from make_us_rich.data.binance import BinanceClient

        client = BinanceClient(api_url=args.api_url)
    return load_klines(
        source,
        args.symbol,
        interval=args.interval,
        start=args.start,
        end=args.end,
        days=args.days,
        max_missing_fraction=args.max_missing_fraction,
        progress=not args.no_progress,
        client=client,
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
    import numpy as np

    from make_us_rich.data import normalize_symbol
    from make_us_rich.preprocessing import preprocess, save_scaler

    klines, report = _load(args)
    result = preprocess(
        klines, args.sequence_length, test_size=args.test_size, val_size=args.val_size,
        interval=args.interval,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result.train.to_csv(out / "train.csv")
    result.test.to_csv(out / "test.csv")
    save_scaler(result.scaler, out)
    np.savez(
        out / "sequences.npz",
        X_train=result.X_train,
        y_train=result.y_train,
        X_val=result.X_val,
        y_val=result.y_val,
        X_test=result.X_test,
        y_test=result.y_test,
    )
    summary = {"symbol": normalize_symbol(args.symbol), "source": args.source,
               "data": report.to_dict(), **result.summary()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    _print_report(summary["symbol"], report)
    print(
        f"  train {summary['train_rows']} rows {summary['train_period'][0]} .. "
        f"{summary['train_period'][1]}; test {summary['test_rows']} rows"
    )
    print(
        f"  windows of {args.sequence_length} x {summary['n_features']} features: "
        f"train {summary['train_windows']}, val {summary['val_windows']}, "
        f"test {summary['test_windows']}"
    )
    print(
        f"wrote {out}/: train.csv test.csv scaler.pkl scaler.json sequences.npz summary.json"
    )
    return 0


def _print_training_summary(run) -> None:
    m = run.metrics
    test = m["test"]
    rows = [
        ("RMSE", "rmse", "{:.2f}"),
        ("MAE", "mae", "{:.2f}"),
        ("MAPE %", "mape", "{:.4f}"),
        ("direction", "directional_accuracy", "{:.1%}"),
        ("calls %", "direction_call_rate", "{:.1%}"),
    ]
    print(f"\n{m['symbol']} test set: {test['n']} hours, prices in quote currency")
    print(f"  {'metric':<10} {'model':>12} {'persistence':>12} {'ratio':>8}")
    for label, key, fmt in rows:
        model, pers = test["model"][key], test["persistence"][key]
        ratio = test["ratio"].get(key)
        print(
            f"  {label:<10} {fmt.format(model) if model is not None else 'n/a':>12} "
            f"{fmt.format(pers) if pers is not None else 'n/a':>12} "
            f"{f'{ratio:.4f}' if ratio is not None else '':>8}"
        )
    t = m["training"]
    best = "untrained = persistence" if t["best_epoch"] == 0 else str(t["best_epoch"])
    print(
        f"  training: {t['epochs_run']} epoch(s) in {t['seconds']:.1f} s, best epoch {best}; "
        f"ONNX parity max rel. error {m['parity']['max_rel_error']:.1e}"
    )
    verdict = "PASSED" if m["gate"]["passed"] else "REJECTED"
    print(f"  gate: {verdict} ({'; '.join(m['gate']['reasons'])})")


def cmd_train(args: argparse.Namespace) -> int:
    from make_us_rich.data import parse_source
    from make_us_rich.training import preset
    from make_us_rich.training.workflow import ARTIFACTS, train_symbol

    config = preset(args.preset).with_overrides(
        sequence_length=args.sequence_length,
        max_epochs=args.epochs,
        seed=args.seed,
        lstm_units=tuple(int(u) for u in args.units.split(",")) if args.units else None,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        patience=args.patience,
        head=args.head,
    )
    days = args.days
    if days is None and args.start is None and parse_source(args.source).kind == "binance":
        days = 365  # one year of hourly candles by default on the live API
    client = None
    if parse_source(args.source).kind == "binance":
        from make_us_rich.data.binance import BinanceClient

        client = BinanceClient(api_url=args.api_url)
    run = train_symbol(
        args.source, args.symbol, args.out, config,
        interval=args.interval, days=days, start=args.start, end=args.end,
        max_missing_fraction=args.max_missing_fraction, gate_tolerance=args.gate_tolerance,
        progress=not args.no_progress, tensorboard_dir=args.tensorboard_dir, client=client,
    )
    _print_training_summary(run)
    print(f"wrote {run.out_dir}/: {' '.join(ARTIFACTS)}")
    return 0


def default_store() -> str:
    """The model store URI: $MKRICH_STORE, else the local folder runs/store."""
    return os.environ.get("MKRICH_STORE") or "runs/store"


def cmd_publish(args: argparse.Namespace) -> int:
    from make_us_rich.store import ModelStore

    store = ModelStore(args.store, keep=args.keep)
    result = store.publish(args.artifacts, args.symbol)
    print(f"{result.symbol} {result.version}: {result.status.upper()} -> {result.uri}")
    for reason in result.reasons:
        print(f"  gate: {reason}")
    if result.latest:
        print(f"  latest -> {result.version}; Triton: {store.triton_uri}/{contract_model_name(result.symbol)}/{result.triton_version}/model.onnx")
    else:
        print("  not promoted: latest is unchanged")
    if result.removed_versions:
        print(f"  retention (keep {args.keep}): removed {', '.join(result.removed_versions)}")
    return 0 if result.status == "accepted" or not args.fail_on_reject else 3


def cmd_versions(args: argparse.Namespace) -> int:
    from make_us_rich.store import ModelStore

    store = ModelStore(args.store)
    latest = store.latest(args.symbol) or {}
    versions = store.versions(args.symbol)
    if not versions:
        print(f"no versions of {args.symbol} in {store.uri}")
        return 0
    print(f"{'version':<36} {'status':<9} {'triton':>6} {'rmse ratio':>10}")
    for m in versions:
        ratio = (m.get("metrics") or {}).get("ratio", {}).get("rmse")
        mark = "  <- latest" if m["version"] == latest.get("version") else ""
        print(f"{m['version']:<36} {m['status']:<9} {m.get('triton_version') or '':>6} "
              f"{ratio if ratio is None else f'{ratio:.4f}':>10}{mark}")
    return 0


def _check_port_free(port: int) -> None:
    """A taken port is a one-line error that says what to do, before the server starts."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            raise ConfigError(
                f"port {port} is in use (another mkrich serve?): stop it, or choose another "
                "port with --port N (make serve PORT=N)"
            ) from None


def cmd_serve(args: argparse.Namespace) -> int:
    from make_us_rich.serving.server import serve

    symbols = [x for x in args.symbols.split(",") if x.strip()]
    _check_port_free(args.port)
    print(f"serving {', '.join(symbols)} from {args.store} on http://127.0.0.1:{args.port}", flush=True)
    serve(args.store, symbols, port=args.port, reload_interval=args.reload_interval,
          max_batch=args.max_batch, max_body=args.max_body)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from make_us_rich.predict_client import predict_next_close

    result = predict_next_close(
        args.url, args.symbol, source=args.source, api_url=args.api_url,
        token=os.environ.get("MKRICH_SERVING_TOKEN"), end=args.end,
    )
    print(f"{result['symbol']} next close ({result['for_hour']}): {result['predicted_close']:.2f}")
    print(f"  last close ({result['last_hour']}): {result['last_close']:.2f}  "
          f"change {result['predicted_close'] - result['last_close']:+.2f}")
    print(f"  model {result['model']} version {result['model_version']} at {args.url}")
    return 0


_PIPELINE_OPTIONS = (
    # (flag, pipeline parameter, type, help)
    ("--interval", "interval", str, "kline interval (default 1h)"),
    ("--lookback-days", "lookback_days", float, "days of history per run (default 365; 0 = whole file for replay sources)"),
    ("--api-url", "api_url", str, "Binance REST base URL"),
    ("--sequence-length", "sequence_length", int, "window length (default 24)"),
    ("--units", "lstm_units", str, "LSTM units per layer, e.g. 64 or 128,128"),
    ("--epochs", "max_epochs", int, "maximum epochs (default 30)"),
    ("--patience", "patience", int, "early-stopping patience (default 5)"),
    ("--learning-rate", "learning_rate", float, "Adam learning rate"),
    ("--batch-size", "batch_size", int, "batch size"),
    ("--seed", "seed", int, "random seed"),
    ("--gate-tolerance", "gate_tolerance", float, "max RMSE excess over persistence (default 0.02)"),
    ("--keep", "keep", int, "versions to retain per symbol (default 10)"),
)


def _add_pipeline_options(p: argparse.ArgumentParser, *, cluster: bool) -> None:
    p.add_argument("--symbols", default="BTCEUR", help="comma-separated symbols, trained in parallel")
    p.add_argument("--source", default=None if cluster else "sample",
                   help="binance, sample or csv:PATH" + (" (default binance)" if cluster else " (default sample: offline)"))
    for flag, name, typ, text in _PIPELINE_OPTIONS:
        p.add_argument(flag, dest=name, type=typ, help=text)
    if cluster:
        p.add_argument("--store", help="store URI as seen from the cluster (default s3://mlpipeline/make-us-rich)")
        p.add_argument("--s3-endpoint", help="S3 endpoint for publishing, e.g. http://minio-service.kubeflow:9000")
        p.add_argument("--s3-region", help="S3 region for publishing (default us-east-1)")
        p.add_argument("--rollout-isvc", help="InferenceService to roll after an accepted model "
                       "(the Triton one, e.g. mkrich-onnx); Triton only loads models at pod start")
        _add_cluster_options(p)
    else:
        _add_store_option(p)
        p.add_argument("--pipeline-root", default="runs/pipeline", help="where kfp.local keeps artifacts")


def _pipeline_params(args: argparse.Namespace) -> dict:
    params = {"symbols": [x.strip() for x in args.symbols.split(",") if x.strip()]}
    if args.source is not None:
        params["source"] = args.source
    for _, name, _, _ in _PIPELINE_OPTIONS:
        value = getattr(args, name, None)
        if value is not None:
            params[name] = value
    return params


def cmd_run(args: argparse.Namespace) -> int:
    from make_us_rich.data import normalize_symbol
    from make_us_rich.pipelines.runner import run_local

    params = _pipeline_params(args)
    symbols = [normalize_symbol(s) for s in params.pop("symbols")]
    source = params.pop("source")
    if source == "binance":
        from make_us_rich.data.binance import BinanceClient

        BinanceClient(api_url=params.get("api_url"), timeout=5.0).ping()
    print(f"running pipeline hourly-training locally (kfp.local) for {', '.join(symbols)} on {source}"
          f"{'' if args.verbose else ' (-v shows kfp.local output live)'}", flush=True)
    result = run_local(symbols, source=source, store_uri=args.store,
                       pipeline_root=args.pipeline_root, verbose=args.verbose > 0, **params)
    print(f"\npipeline finished in {result['seconds']:.0f} s")
    print(f"  {'symbol':<9} {'status':<9} {'RMSE model':>11} {'persistence':>11} {'ratio':>7}  version")
    for symbol, info in result["symbols"].items():
        newest = info["newest"] or {}
        test = newest.get("metrics") or {}
        rmse = test.get("model", {}).get("rmse")
        pers = test.get("persistence", {}).get("rmse")
        ratio = test.get("ratio", {}).get("rmse")
        print(f"  {symbol:<9} {newest.get('status', '?'):<9} {rmse or float('nan'):>11.2f} "
              f"{pers or float('nan'):>11.2f} {ratio or float('nan'):>7.4f}  {newest.get('version')}")
    print(f"\nmodel store: {result['store']}")
    for symbol, info in result["symbols"].items():
        if info["artifacts"]:
            print(f"artifacts ({symbol}): {info['artifacts']}")
    print(f"kfp.local log: {result['log']}")
    print("serve them: mkrich serve --store", args.store, "--symbols", ",".join(symbols))
    return 0


def _cluster_kwargs(args: argparse.Namespace) -> dict:
    return {"namespace": args.namespace, "experiment": args.experiment, "token": args.token}


def _cluster_params(args: argparse.Namespace) -> dict:
    params = _pipeline_params(args)
    if args.store:
        params["store_uri"] = args.store
    if args.s3_endpoint:
        params["s3_endpoint"] = args.s3_endpoint
    if args.s3_region:
        params["s3_region"] = args.s3_region
    if args.rollout_isvc:
        params["rollout_isvc"] = args.rollout_isvc
    return params


def cmd_submit(args: argparse.Namespace) -> int:
    from make_us_rich.pipelines.runner import submit

    run_id = submit(args.host, _cluster_params(args), **_cluster_kwargs(args))
    print(f"submitted run {run_id}")
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    from make_us_rich.pipelines.runner import schedule

    result = schedule(args.host, _cluster_params(args), cron=args.cron, **_cluster_kwargs(args))
    print(f"recurring run {result['recurring_run_id']} ({result['cron']}, max_concurrency 1, no catch-up)")
    if result["replaced"]:
        print(f"  replaced {', '.join(result['replaced'])}")
    return 0


def cmd_unschedule(args: argparse.Namespace) -> int:
    from make_us_rich.pipelines.runner import unschedule

    removed = unschedule(args.host, **_cluster_kwargs(args))
    print(f"removed {len(removed)} recurring run(s)" + (f": {', '.join(removed)}" if removed else ""))
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from make_us_rich.pipelines.runner import compile_pipeline

    for path in compile_pipeline(args.out):
        print(f"wrote {path}")
    return 0


def cmd_fake_binance(args: argparse.Namespace) -> int:
    import threading

    from make_us_rich.data import load_klines
    from make_us_rich.testing.fake_binance import FakeBinance

    tables = {s: load_klines("sample", s)[0] for s in args.symbols.split(",")}
    with FakeBinance(tables, port=args.port) as fake:
        print(f"fake Binance API serving {', '.join(tables)} (bundled sample) at {fake.api_url}")
        print(f"try: mkrich fetch --api-url {fake.api_url} --end 2023-12-31 --days 30 --out x.csv")
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
    _add_source_options(p, default_source="binance")
    p.add_argument("--out", required=True, help="CSV path to write (.csv or .csv.gz)")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser(
        "preprocess",
        help="features -> chronological split -> scaling -> windows, written to a folder",
        description="Run the preprocessing stages on klines and write scaled train/test "
        "tables, the fitted scaler (pickle + JSON) and the windows (sequences.npz).",
    )
    _add_source_options(p, default_source="sample")
    p.add_argument("--sequence-length", type=int, default=24, help="window length (default 24)")
    p.add_argument("--test-size", type=float, default=0.1, help="test fraction (default 0.1)")
    p.add_argument("--val-size", type=float, default=0.2, help="validation fraction of train windows (default 0.2)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_preprocess)

    p = sub.add_parser(
        "train",
        help="fetch -> preprocess -> train LSTM -> ONNX -> evaluate vs persistence -> gate",
        description="Train one model on one machine and write every artifact (model.onnx, "
        "scaler.pkl/json, metrics.json, history.json, model_card.json, PNG plots) into --out. "
        "Defaults: the 'fast' preset; the whole file for replay sources, 365 days for binance.",
    )
    _add_source_options(p, default_source="sample")
    p.add_argument("--out", required=True, help="artifact folder (replaced as a whole)")
    p.add_argument("--preset", default="fast", help="fast (default), large or tiny")
    p.add_argument("--sequence-length", type=int, help="override the preset's window length")
    p.add_argument("--units", help="LSTM units per layer, e.g. 64 or 128,128")
    p.add_argument("--epochs", type=int, help="maximum epochs (early stopping may end sooner)")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs")
    p.add_argument("--learning-rate", type=float, help="Adam learning rate")
    p.add_argument("--batch-size", type=int, help="batch size")
    p.add_argument("--head", choices=("delta", "level"), help="model head (default delta)")
    p.add_argument("--seed", type=int, help="random seed (default 42)")
    p.add_argument("--gate-tolerance", type=float, default=0.02,
                   help="max RMSE excess over persistence for the gate (default 0.02 = 2%%)")
    p.add_argument("--tensorboard-dir", help="also write TensorBoard logs here")
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
    p.add_argument("--keep", type=int, default=10, help="versions to retain per symbol (default 10)")
    p.add_argument("--fail-on-reject", action="store_true", help="exit 3 when the gate rejected the model")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("versions", help="list a symbol's model versions in the store")
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
    p.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    p.add_argument("--symbols", default="BTCEUR", help="comma-separated symbols (default BTCEUR)")
    p.add_argument("--reload-interval", type=float, default=30.0,
                   help="seconds between checks for a new latest model (0: never)")
    p.add_argument("--max-batch", type=int, default=1024, help="largest batch accepted (default 1024)")
    p.add_argument("--max-body", type=int, default=8 * 1024 * 1024, help="largest request body in bytes")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "predict",
        help="ask a running server for the next hour's close (features built as in training)",
    )
    p.add_argument("--symbol", default="BTCEUR")
    p.add_argument("--url", default="http://127.0.0.1:8080", help="server base URL")
    p.add_argument("--source", default="binance", help="where the last window comes from: binance or sample")
    p.add_argument("--end", help="last candle's open time (default: latest available)")
    p.add_argument("--api-url", help="Binance REST base URL (default: $BINANCE_API_URL or Binance)")
    p.set_defaults(func=cmd_predict)

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

    p = sub.add_parser("compile", help="compile the pipeline to IR YAML and Pipeline/PipelineVersion manifests")
    p.add_argument("--out", default="pipelines/compiled", help="output folder (default pipelines/compiled)")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("submit", help="start one run of the pipeline on a Kubeflow cluster")
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
    return parser


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
