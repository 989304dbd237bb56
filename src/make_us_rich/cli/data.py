"""``mkrich fetch``, ``mkrich preprocess`` and ``mkrich fake-binance``: klines in, stage files out."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from make_us_rich.cli.common import DEFAULT_SOURCE, _add_source_options, _load
from make_us_rich.cli.printing import _print_report


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
    from make_us_rich.params import DATA_PARAMS, RunSpec, given
    from make_us_rich.training.config import TrainConfig

    out = Path(args.out)
    klines, report = _load(args)
    config = TrainConfig(sequence_length=args.sequence_length, test_size=args.test_size, val_size=args.val_size)
    spec = RunSpec.of(config, **given(args, DATA_PARAMS))
    done = stages.run_stages(args.source, args.symbol, out, spec, klines=(klines, report), work_dir=out,
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


def add_fetch(sub) -> None:
    p = sub.add_parser(
        "fetch",
        help="download klines (or read a replay source) into a CSV",
        description="Fetch klines, validate them and write a CSV in the Binance dump format "
        "(the same format csv:PATH reads).",
    )
    _add_source_options(p, default_source=DEFAULT_SOURCE)
    p.add_argument("--out", required=True, help="CSV path to write (.csv or .csv.gz)")
    p.set_defaults(func=cmd_fetch)


def add_preprocess(sub) -> None:
    p = sub.add_parser(
        "preprocess",
        help="features -> chronological split -> windows -> scaler, the stage files written to a folder",
        description="Run the data stages of the pipeline on klines and write their files: "
        "klines/, features.csv, train.csv, test.csv, the windows (sequences.npz), the scaler of "
        "the LSTM's inputs (scaler/) and summary.json.",
    )
    _add_source_options(p, default_source=DEFAULT_SOURCE)
    from make_us_rich.params import BY_NAME

    for name in ("sequence_length", "test_size", "val_size"):
        param = BY_NAME[name]
        p.add_argument(param.cli_flag, dest=name, type=param.type, default=param.default,
                       help=f"{param.help} (default: {param.default})")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_preprocess)


def add_fake_binance(sub) -> None:
    p = sub.add_parser(
        "fake-binance",
        help="serve the bundled sample through a local Binance-compatible API (offline demos)",
    )
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--symbols", default="BTCEUR,BTCUSDT", help="sample symbols to serve")
    p.set_defaults(func=cmd_fake_binance)
