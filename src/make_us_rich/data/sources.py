"""Where klines come from: ``binance`` (live), ``sample`` (bundled real klines) or ``csv:PATH``
(a file, or a folder of ``<SYMBOL>_*.csv[.gz]`` files, one per symbol).

All three give the same validated 12-column frame, so every later stage is indifferent to the
source. ``load_klines`` is the one entry point used by the CLI and the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from make_us_rich.data.klines import (
    DEFAULT_INTERVAL,
    DEFAULT_MAX_MISSING_FRACTION,
    DataReport,
    interval_ms,
    normalize_symbol,
    read_klines_csv,
    to_utc_timestamp,
    validate_klines,
)
from make_us_rich.errors import ConfigError

#: Bundled sample: real Binance 1h klines, 2023-07-01 00:00 .. 2023-12-31 23:00 UTC.
SAMPLE_SYMBOLS: tuple[str, ...] = ("BTCEUR", "BTCUSDT")
SAMPLE_INTERVAL = "1h"
_SAMPLE_FILE = "{symbol}_1h_2023H2.csv.gz"


@dataclass(frozen=True)
class Source:
    """A parsed source specification."""

    kind: str  # "binance" | "sample" | "csv"
    path: Path | None = None

    def __str__(self) -> str:
        return f"csv:{self.path}" if self.kind == "csv" else self.kind

    @property
    def csv(self) -> Path:
        """A ``csv:`` source's path: a klines file, or a folder of ``<SYMBOL>_*.csv[.gz]``."""
        if self.kind != "csv" or self.path is None:
            raise ConfigError(f"{self} is not a csv:PATH source")
        return self.path


def parse_source(spec: str | Source) -> Source:
    """``"binance"``, ``"sample"`` or ``"csv:PATH"`` -> :class:`Source`."""
    if isinstance(spec, Source):
        return spec
    text = (spec or "").strip()
    if text in ("binance", "sample"):
        return Source(text)
    if text.startswith("csv:") and len(text) > 4:
        return Source("csv", Path(text[4:]).expanduser())
    raise ConfigError(f"unknown source {spec!r}; use 'binance', 'sample' or 'csv:PATH'")


def sample_path(symbol: str) -> Path:
    """Path of the bundled sample for ``symbol`` (inside the installed package)."""
    sym = normalize_symbol(symbol)
    if sym not in SAMPLE_SYMBOLS:
        raise ConfigError(
            f"no bundled sample for {sym}; samples exist for {', '.join(SAMPLE_SYMBOLS)} "
            "(or use --source binance / csv:PATH)"
        )
    ref = resources.files("make_us_rich.data").joinpath("sample", _SAMPLE_FILE.format(symbol=sym))
    return Path(str(ref))


def csv_path(path: Path, symbol: str) -> Path:
    """``csv:PATH``: the file itself, or in a folder the one file ``<SYMBOL>_*.csv[.gz]``."""
    if not path.is_dir():
        return path
    sym = normalize_symbol(symbol)
    found = sorted(p for p in path.glob(f"{sym}_*") if p.name.endswith((".csv", ".csv.gz")))
    if len(found) != 1:
        what = "no file" if not found else f"{len(found)} files ({', '.join(p.name for p in found)})"
        raise ConfigError(f"{path} holds {what} named {sym}_*.csv[.gz]; keep one file per symbol "
                          "there, or give the file itself (csv:FILE)")
    return found[0]


def csv_symbols(path: Path) -> list[str]:
    """The symbols of a folder of ``<SYMBOL>_*.csv[.gz]`` files."""
    names = {p.name.split("_", 1)[0] for p in path.glob("*_*") if p.name.endswith((".csv", ".csv.gz"))}
    return sorted(names)


def load_klines(
    source: str | Source,
    symbol: str,
    *,
    interval: str = DEFAULT_INTERVAL,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    days: float | None = None,
    max_missing_fraction: float = DEFAULT_MAX_MISSING_FRACTION,
    progress: bool = False,
    client: object | None = None,
    clamp_end: bool = False,
    api_url: str | None = None,
) -> tuple[pd.DataFrame, DataReport]:
    """Load klines of ``symbol`` from ``source`` and validate them.

    The window is ``[start, end]`` on open times; ``days`` means ``(end - days, end]``.
    For replay sources, ``end`` defaults to the last candle of the file (so ``days=30`` is
    "the file's last 30 days"); for Binance it defaults to now. With ``clamp_end``, a replay
    source treats an ``end`` after its last candle as that candle (a replay's "now").
    Binance is reached through ``client`` or, by default, a :class:`BinanceClient` on ``api_url``
    (default: $BINANCE_API_URL or Binance).
    """
    src = parse_source(source)
    sym = normalize_symbol(symbol)
    interval_ms(interval)
    if days is not None and start is not None:
        raise ConfigError("give either days or start, not both")
    if days is not None and days <= 0:
        raise ConfigError(f"days must be > 0, got {days}")

    if src.kind == "binance":
        from make_us_rich.data.binance import BinanceClient

        bc = client if client is not None else BinanceClient(api_url=api_url or None)
        if days is not None:
            raw = bc.get_days_data(sym, days, interval=interval, end=end, progress=progress)
        else:
            raw = bc.get_data(sym, interval, start, end, progress=progress)
        label = f"binance {sym} {interval}"
    else:
        if src.kind == "sample":
            if interval != SAMPLE_INTERVAL:
                raise ConfigError(f"the bundled sample holds {SAMPLE_INTERVAL} klines, not {interval}")
            path = sample_path(sym)
        else:
            path = csv_path(src.csv, sym)
        raw = read_klines_csv(path)
        label = str(path)
        if raw["timestamp"].isna().any():  # validate before windowing: never drop them silently
            validate_klines(raw, interval, max_missing_fraction=1.0, source=label)
        raw = _window(raw, start, end, days, clamp_end)

    klines, report = validate_klines(
        raw, interval, max_missing_fraction=max_missing_fraction, source=label
    )
    if klines.empty:
        raise ConfigError(f"{label}: no klines in the requested window; widen it")
    return klines, report


def _window(frame: pd.DataFrame, start, end, days, clamp_end: bool = False) -> pd.DataFrame:
    if start is None and end is None and days is None:
        return frame
    ts = frame["timestamp"]
    end_ts = to_utc_timestamp(end) if end is not None else ts.max()
    if clamp_end:
        end_ts = min(end_ts, ts.max())
    if days is not None:
        lo = end_ts - pd.Timedelta(days=days)
        mask = (ts > lo) & (ts <= end_ts)
    else:
        lo = to_utc_timestamp(start) if start is not None else ts.min()
        mask = (ts >= lo) & (ts <= end_ts)
    return frame.loc[mask].reset_index(drop=True)
