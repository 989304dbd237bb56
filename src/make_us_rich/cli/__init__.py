"""``mkrich``: the command line of make-us-rich. A thin shell: every command parses its options,
calls library functions and prints a summary. Errors of the library are shown as one line
(``error: ...``) with exit code 2; no traceback unless ``--debug``.

One module per area registers its commands (``add_<command>(subparsers)``, as
``console.cli.add_parser`` does): ``data`` (fetch, preprocess, fake-binance), ``train`` (train,
evaluate), ``store`` (publish, versions), ``serve`` (serve, predict), ``pipeline`` (run, compile,
submit, schedule, unschedule); ``printing`` holds what they print, ``common`` the shared options.
Importing them loads nothing heavy: each command imports its libraries when it runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from make_us_rich import __version__
from make_us_rich.cli import data, pipeline, serve, store, train
from make_us_rich.cli.common import DEFAULT_SOURCE, default_store
from make_us_rich.cli.pipeline import _pipeline_params
from make_us_rich.cli.printing import print_symbol_table
from make_us_rich.errors import ConfigError, MakeUsRichError

__all__ = ["DEFAULT_SOURCE", "_pipeline_params", "build_parser", "default_store", "main", "print_symbol_table"]

#: the commands in the order ``mkrich --help`` lists them (the order of the workflow)
COMMANDS = (
    data.add_fetch, data.add_preprocess, train.add_train, store.add_publish, store.add_versions,
    serve.add_serve, serve.add_predict, train.add_evaluate, pipeline.add_run, pipeline.add_compile,
    pipeline.add_submit, pipeline.add_schedule, pipeline.add_unschedule, data.add_fake_binance,
)


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
    for add in COMMANDS:
        add(sub)

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
