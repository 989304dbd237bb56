"""Options and helpers shared by the commands of several areas."""

from __future__ import annotations

import argparse
import os

#: The one default source of every command that reads klines on this machine: the bundled sample,
#: so that each works offline on a fresh clone; ``--source binance`` for live data. (submit and
#: schedule, the cluster's hourly retrain, default to binance: see docs/cli.md.)
DEFAULT_SOURCE = "sample"


def default_store() -> str:
    """The model store URI: $MKRICH_STORE, else the local folder runs/store."""
    return os.environ.get("MKRICH_STORE") or "runs/store"


def _default(name: str):
    from make_us_rich.params import BY_NAME

    return BY_NAME[name].default


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
