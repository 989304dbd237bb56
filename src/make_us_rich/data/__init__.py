"""Data layer: klines schema and validation, the Binance client, replay sources.

Importing this package needs only numpy/pandas; ``python-binance`` is imported when a
:class:`BinanceClient` is created (the ``data`` extra).
"""

from make_us_rich.data.klines import (
    INTERVALS,
    KLINE_COLUMNS,
    DataReport,
    interval_ms,
    normalize_symbol,
    read_klines_csv,
    validate_klines,
    write_klines_csv,
)
from make_us_rich.data.sources import SAMPLE_SYMBOLS, load_klines, parse_source, sample_path


def __getattr__(name: str):
    if name == "BinanceClient":
        from make_us_rich.data.binance import BinanceClient

        return BinanceClient
    raise AttributeError(name)


__all__ = [
    "INTERVALS",
    "KLINE_COLUMNS",
    "SAMPLE_SYMBOLS",
    "BinanceClient",
    "DataReport",
    "interval_ms",
    "load_klines",
    "normalize_symbol",
    "parse_source",
    "read_klines_csv",
    "sample_path",
    "validate_klines",
    "write_klines_csv",
]
