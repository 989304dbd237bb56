"""Checks made before a pipeline starts: what can be known in a second (the source, each
symbol, the interval, the store) is checked here, so that a run that cannot succeed fails at
once in one line with the fix, instead of inside a step minutes later.

Only ``mkrich run`` reaches the network here (Binance and the store are the ones this machine
uses); for a cluster run (``submit``/``schedule``) only what needs no network is checked, since
the cluster reaches its own endpoints.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from make_us_rich.data.klines import DEFAULT_INTERVAL
from make_us_rich.errors import ConfigError


def check_source(source: str, symbols: list[str], interval: str = DEFAULT_INTERVAL) -> None:
    """The source's syntax, and for replay sources that each symbol and the interval exist."""
    from make_us_rich.data.klines import interval_ms
    from make_us_rich.data.sources import SAMPLE_INTERVAL, csv_path, parse_source, sample_path

    if not symbols:
        raise ConfigError("no symbols given; e.g. --symbols BTCEUR,BTCUSDT")
    interval_ms(interval)
    src = parse_source(source)
    if src.kind == "sample":
        if interval != SAMPLE_INTERVAL:
            raise ConfigError(f"the bundled sample holds {SAMPLE_INTERVAL} klines, not {interval}")
        for symbol in symbols:
            sample_path(symbol)
    elif src.kind == "csv":
        # a folder holds one <SYMBOL>_*.csv[.gz] per symbol (csv_path says which is missing)
        paths = [csv_path(src.csv, s) for s in symbols] if src.csv.is_dir() else [src.csv]
        for path in paths:
            if not path.is_file():
                raise ConfigError(f"csv source {path}: no such file (csv:PATH names a klines file in "
                                  "the Binance dump format, e.g. one written by mkrich fetch, or a "
                                  "folder of <SYMBOL>_*.csv[.gz] files)")
            if not os.access(path, os.R_OK):
                raise ConfigError(f"csv source {path}: not readable")


def check_binance(symbols: list[str], interval: str = DEFAULT_INTERVAL, api_url: str | None = None,
                  timeout: float = 5.0) -> None:
    """The API answers, and knows each symbol and the interval (one candle asked each)."""
    from make_us_rich.data.binance import BinanceClient

    client = BinanceClient(api_url=api_url or None, timeout=timeout)
    client.ping()
    for symbol in symbols:
        client.check_symbol(symbol, interval)


def check_store(uri: str) -> None:
    """A local store can be created and written; an S3 store answers a listing."""
    from make_us_rich.store.backends import LocalBackend, open_backend

    backend = open_backend(uri)
    if isinstance(backend, LocalBackend):
        root = Path(backend.root)
        if root.exists() and not root.is_dir():
            raise ConfigError(f"store {root} is a file, not a folder; pass --store FOLDER")
        try:  # the run creates it anyway; a probe file shows it can be written
            root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=root, prefix=".preflight-"):
                pass
        except OSError as exc:
            raise ConfigError(f"store {root} cannot be written ({exc.strerror or exc}); pass "
                              "--store FOLDER (or set MKRICH_STORE)") from None
        return
    backend.list("models/")  # raises StoreError naming the bucket and the cause


def check_run(symbols: list[str], source: str, store_uri: str, *, interval: str = DEFAULT_INTERVAL,
              api_url: str | None = None, partial: bool = False) -> dict[str, str]:
    """Everything ``mkrich run`` can check before kfp.local starts. With ``partial`` (a universal
    run, which leaves a symbol without data out and goes on) the symbols that cannot be had are
    returned with the reason instead of failing the run, unless none can be had."""
    from make_us_rich.data.sources import parse_source

    if not partial:
        check_source(source, symbols, interval)
        if parse_source(source).kind == "binance":
            check_binance(symbols, interval, api_url)
        check_store(store_uri)
        return {}
    if not symbols:
        check_source(source, symbols, interval)  # says: no symbols given
    left: dict[str, str] = {}
    for symbol in symbols:
        try:
            check_source(source, [symbol], interval)
            if parse_source(source).kind == "binance":
                check_binance([symbol], interval, api_url)
        except ConfigError as exc:
            left[symbol] = str(exc)
    if len(left) == len(symbols):
        raise ConfigError(next(iter(left.values())))
    check_store(store_uri)
    return left
