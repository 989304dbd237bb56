"""The klines table: its 12 columns, symbols, intervals, typing, CSV I/O and validation.

Every source (Binance, the bundled sample, a CSV) produces the same DataFrame:
exactly :data:`KLINE_COLUMNS`, in that order, typed as in :data:`KLINE_DTYPES`, one row per
candle, sorted by ``timestamp`` (the candle's open time, UTC).

Validation policy (:func:`validate_klines`)
-------------------------------------------
Broken data is never trained on silently. What is checked, and what happens:

==============================================  =============================================
finding                                          action
==============================================  =============================================
a required column is missing                     error
timestamp missing/unparseable                    error
open/high/low/close NaN, inf or <= 0             error
high below max(open, close) / low above min      error
volume negative or NaN                           error
two rows with the same open time, other values   error (conflicting duplicates)
open time not on the interval grid               error (e.g. off-the-hour 1h candles)
missing candles over ``max_missing_fraction``    error (default 1 % of the expected candles)
rows out of order                                repaired: sorted (counted)
exact duplicate rows                             repaired: one kept (counted)
``close_time`` missing                           repaired: open time + interval - 1 ms (counted)
missing candles up to the limit                  kept as gaps, counted; never invented
==============================================  =============================================

Every repair is counted in the returned :class:`DataReport` and logged as a warning.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from make_us_rich.errors import ConfigError, DataValidationError
from make_us_rich.io import atomic_path

log = logging.getLogger(__name__)

#: The 12 columns of a Binance kline, in Binance's order.
KLINE_COLUMNS: tuple[str, ...] = (
    "timestamp",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_av",
    "trades",
    "tb_base_av",
    "tb_quote_av",
    "ignore",
)
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
#: Columns a CSV must have; the others may be absent or empty (see the policy above).
REQUIRED_COLUMNS: tuple[str, ...] = ("timestamp", *PRICE_COLUMNS, "volume")
#: The names Binance's API documentation gives the kline fields (snake_case), read as ours.
BINANCE_NAMES: dict[str, str] = {
    "open_time": "timestamp",
    "kline_open_time": "timestamp",
    "kline_close_time": "close_time",
    "quote_asset_volume": "quote_av",
    "number_of_trades": "trades",
    "taker_buy_base_asset_volume": "tb_base_av",
    "taker_buy_quote_asset_volume": "tb_quote_av",
    "unused_field": "ignore",
    "unused": "ignore",
}

KLINE_DTYPES: dict[str, Any] = {
    "timestamp": "datetime64[ns, UTC]",
    "open": "float64",
    "high": "float64",
    "low": "float64",
    "close": "float64",
    "volume": "float64",
    "close_time": "datetime64[ns, UTC]",
    "quote_av": "float64",
    "trades": "Int64",  # nullable: some exports (e.g. BTCEUR) lack per-candle fields
    "tb_base_av": "float64",
    "tb_quote_av": "float64",
    "ignore": "float64",
}

_MINUTE = 60_000
#: Binance kline intervals and their length in milliseconds ("1M" is nominal: 30 days).
INTERVALS: dict[str, int] = {
    "1s": 1_000,
    "1m": _MINUTE,
    "3m": 3 * _MINUTE,
    "5m": 5 * _MINUTE,
    "15m": 15 * _MINUTE,
    "30m": 30 * _MINUTE,
    "1h": 60 * _MINUTE,
    "2h": 120 * _MINUTE,
    "4h": 240 * _MINUTE,
    "6h": 360 * _MINUTE,
    "8h": 480 * _MINUTE,
    "12h": 720 * _MINUTE,
    "1d": 1_440 * _MINUTE,
    "3d": 3 * 1_440 * _MINUTE,
    "1w": 7 * 1_440 * _MINUTE,
    "1M": 30 * 1_440 * _MINUTE,
}
#: Intervals whose candles sit on a fixed grid of their length since the epoch
#: (weeks start on Mondays and months vary, so those are not grid-checked).
_GRID_INTERVALS = {k for k in INTERVALS if k not in {"3d", "1w", "1M"}}
#: A run's interval and validation limit unless told otherwise (the run parameters ``interval``
#: and ``max_missing_fraction`` of :mod:`make_us_rich.params` take them as defaults).
DEFAULT_INTERVAL = "1h"
DEFAULT_MAX_MISSING_FRACTION = 0.01

_SYMBOL_RE = re.compile(r"^[A-Z0-9]{5,20}$")
_ASSET_RE = re.compile(r"^[A-Z0-9]{2,10}$")


def interval_ms(interval: str) -> int:
    """Length of a Binance kline interval in milliseconds; :class:`ConfigError` if unknown."""
    try:
        return INTERVALS[interval]
    except KeyError:
        raise ConfigError(
            f"unknown kline interval {interval!r}; use one of Binance's: {', '.join(INTERVALS)}"
        ) from None


def normalize_symbol(symbol: str, quote: str | None = None) -> str:
    """Turn a trading pair into Binance's symbol: ``"BTC/EUR"``, ``"btc-eur"``,
    ``("BTC", "EUR")`` or ``"BTCEUR"`` all give ``"BTCEUR"``.

    The result is also safe as a path or object-key component (``^[A-Z0-9]{5,20}$``).
    """
    if not isinstance(symbol, str) or not symbol.strip():
        raise ConfigError("symbol is empty; give a pair such as BTCEUR or BTC/EUR")
    raw = symbol.strip().upper()
    if quote is not None:
        parts = [raw, quote.strip().upper()]
    else:
        parts = [p for p in re.split(r"[/\-_: ]", raw) if p]
    if len(parts) == 2 and not all(_ASSET_RE.match(p) for p in parts):
        raise ConfigError(
            f"invalid trading pair {symbol!r}: each asset must be 2-10 letters/digits (e.g. BTC/EUR)"
        )
    joined = "".join(parts)
    if len(parts) > 2 or not _SYMBOL_RE.match(joined):
        raise ConfigError(
            f"invalid symbol {symbol!r}: expected a crypto and a quote currency such as "
            "BTCEUR or BTC/EUR (5-20 letters/digits once joined)"
        )
    return joined


def to_utc_timestamp(value: str | int | float | datetime | pd.Timestamp) -> pd.Timestamp:
    """Parse a point in time. Naive values are taken as UTC; integers as epoch milliseconds."""
    try:
        if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
            ts = pd.Timestamp(int(value), unit="ms", tz="UTC")
        else:
            ts = pd.Timestamp(value)
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"cannot read {value!r} as a time; use ISO 8601 such as 2023-01-31 or "
            "2023-01-31T12:00:00Z, or epoch milliseconds"
        ) from exc
    if ts is pd.NaT:
        raise ConfigError(f"cannot read {value!r} as a time")
    return ts


def to_epoch_ms(value: str | int | float | datetime | pd.Timestamp) -> int:
    return int(to_utc_timestamp(value).value // 1_000_000)


def empty_klines() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=KLINE_DTYPES[c]) for c in KLINE_COLUMNS})


def _as_utc_datetime(series: pd.Series, column: str) -> pd.Series:
    """Epoch milliseconds (numbers or numeric strings) or datetimes -> UTC datetimes."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if pd.api.types.is_datetime64_dtype(series.dtype):
        return series.dt.tz_localize("UTC").astype("datetime64[ns, UTC]")
    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.notna().sum() == series.notna().sum():
        return pd.to_datetime(numeric, unit="ms", utc=True).astype("datetime64[ns, UTC]")
    parsed = pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
    bad = series.notna() & parsed.isna()
    if bad.any():
        example = series[bad].iloc[0]
        raise DataValidationError(
            f"column {column!r}: {int(bad.sum())} value(s) are neither epoch milliseconds nor "
            f"ISO 8601 times (first: {example!r})"
        )
    return parsed.astype("datetime64[ns, UTC]")


def coerce_klines(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a new frame with exactly :data:`KLINE_COLUMNS`, typed as :data:`KLINE_DTYPES`.

    Optional columns that are absent become empty (NaN/NaT); missing *required* columns
    raise :class:`DataValidationError`. Headers in Binance's documented names
    (:data:`BINANCE_NAMES`, any case) are read as ours; a header with columns of neither kind
    while an optional column is absent is refused (a misnamed column would read as empty).
    Nothing is sorted, dropped or repaired here.
    """
    frame = _rename_columns(frame)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"klines lack required column(s) {missing}; a klines CSV needs the header "
            f"{','.join(KLINE_COLUMNS)} (at least {', '.join(REQUIRED_COLUMNS)})"
        )
    out: dict[str, pd.Series] = {}
    n = len(frame)
    for col in KLINE_COLUMNS:
        src = (
            frame[col].reset_index(drop=True)
            if col in frame.columns
            else pd.Series([np.nan] * n, dtype="float64")
        )
        dtype = KLINE_DTYPES[col]
        if dtype.startswith("datetime64"):
            out[col] = _as_utc_datetime(src, col)
        elif dtype == "Int64":
            num = pd.to_numeric(src, errors="coerce")
            if (num.dropna() % 1 != 0).any():
                raise DataValidationError(f"column {col!r} must hold whole numbers")
            out[col] = num.astype("Int64")
        else:
            num = pd.to_numeric(src, errors="coerce")
            bad = src.notna() & num.isna()
            if bad.any():  # text that is not a number (blank cells are simply missing)
                bad &= src.astype(str).str.strip() != ""
            if bad.any():
                raise DataValidationError(
                    f"column {col!r}: {int(bad.sum())} value(s) are not numbers "
                    f"(first: {src[bad].iloc[0]!r})"
                )
            out[col] = num.astype("float64")
    return pd.DataFrame(out, columns=list(KLINE_COLUMNS))


def _rename_columns(frame: pd.DataFrame) -> pd.DataFrame:
    def key(name: object) -> str:
        text = "_".join(str(name).strip().lower().replace("-", " ").split())
        return BINANCE_NAMES.get(text, text)

    renamed = {c: key(c) for c in frame.columns}
    if len(set(renamed.values())) < len(renamed):
        raise DataValidationError(f"klines columns {list(frame.columns)} name a field twice")
    frame = frame.rename(columns=renamed)
    unknown = [c for c in frame.columns if c not in KLINE_COLUMNS]
    absent = [c for c in KLINE_COLUMNS if c not in frame.columns and c not in REQUIRED_COLUMNS]
    if unknown and absent:
        raise DataValidationError(
            f"klines columns {unknown} are not kline fields, and {absent} are absent (they would "
            f"be read as empty): name the columns {','.join(KLINE_COLUMNS)} or Binance's "
            f"documented names ({', '.join(sorted(BINANCE_NAMES))})"
        )
    return frame


def klines_from_binance(rows: list[list[Any]]) -> pd.DataFrame:
    """Binance's ``/api/v3/klines`` payload (lists of 12 fields, numbers as strings) -> klines."""
    if not rows:
        return empty_klines()
    frame = pd.DataFrame([r[:12] for r in rows], columns=list(KLINE_COLUMNS))
    return coerce_klines(frame)


@dataclass
class DataReport:
    """What validation found and did. Serializable (``to_dict``) for run logs and model cards."""

    rows_in: int = 0
    rows_out: int = 0
    start: str | None = None
    end: str | None = None
    interval: str = DEFAULT_INTERVAL
    sorted_rows: int = 0
    duplicates_dropped: int = 0
    close_time_filled: int = 0
    missing_candles: int = 0
    gaps: int = 0
    largest_gap_candles: int = 0
    irregular_close_time: int = 0
    repairs: list[str] = field(default_factory=list)

    @property
    def expected_candles(self) -> int:
        return self.rows_out + self.missing_candles

    @property
    def missing_fraction(self) -> float:
        return self.missing_candles / self.expected_candles if self.expected_candles else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["missing_fraction"] = self.missing_fraction
        return d


def _first_rows(frame: pd.DataFrame, mask: pd.Series | np.ndarray, limit: int = 3) -> str:
    times = frame.loc[np.asarray(mask), "timestamp"].head(limit)
    return ", ".join(t.isoformat() if t is not pd.NaT else "NaT" for t in times)


def validate_klines(
    frame: pd.DataFrame,
    interval: str = DEFAULT_INTERVAL,
    *,
    max_missing_fraction: float = DEFAULT_MAX_MISSING_FRACTION,
    source: str = "klines",
) -> tuple[pd.DataFrame, DataReport]:
    """Check and (within the documented policy) repair klines. Returns ``(klines, report)``.

    ``frame`` may be raw (as read from a CSV) or already typed. The input is never modified.
    Raises :class:`DataValidationError` naming the problem, the first offending rows and a fix.
    """
    step = interval_ms(interval)
    df = coerce_klines(frame)
    report = DataReport(rows_in=len(df), interval=interval)

    def fail(problem: str, mask: pd.Series | np.ndarray, fix: str) -> None:
        count = int(np.asarray(mask).sum())
        raise DataValidationError(
            f"{source}: {count} row(s) {problem} (first at {_first_rows(df, mask)}); {fix}"
        )

    if df["timestamp"].isna().any():
        fail("have no timestamp", df["timestamp"].isna(), "every candle needs its open time")
    prices = df[list(PRICE_COLUMNS)].to_numpy()
    bad_price = ~np.isfinite(prices).all(axis=1) | (prices <= 0).any(axis=1)
    if bad_price.any():
        fail(
            "have a missing, infinite or non-positive open/high/low/close",
            bad_price,
            "drop or re-download those candles; prices must be finite and > 0",
        )
    o, h, lo, c = prices.T
    inconsistent = (h < np.maximum(o, c)) | (lo > np.minimum(o, c))
    if inconsistent.any():
        fail(
            "have high below max(open, close) or low above min(open, close)",
            inconsistent,
            "the candles are corrupt; re-download them",
        )
    vol = df["volume"].to_numpy()
    if (~np.isfinite(vol) | (vol < 0)).any():
        fail(
            "have a missing or negative volume",
            ~np.isfinite(vol) | (vol < 0),
            "volume must be a number >= 0",
        )

    ts_ms = df["timestamp"].astype("int64").to_numpy() // 1_000_000
    if interval in _GRID_INTERVALS:
        off_grid = ts_ms % step != 0
        if off_grid.any():
            fail(
                f"have an open time off the {interval} grid",
                off_grid,
                f"is the file really {interval} klines? off-grid candles cannot be windowed",
            )

    # Order: sort if needed (stable, so duplicates keep their relative order).
    if not (np.diff(ts_ms) > 0).all():
        order = np.argsort(ts_ms, kind="stable")
        moved = int((order != np.arange(len(order))).sum())
        if moved:
            df = df.iloc[order].reset_index(drop=True)
            ts_ms = ts_ms[order]
            report.sorted_rows = moved
            report.repairs.append(f"sorted {moved} row(s) that were out of order")
        dup_time = np.concatenate([[False], np.diff(ts_ms) == 0])
        if dup_time.any():
            exact = df.duplicated(keep="first").to_numpy()
            conflicting = dup_time & ~exact
            if conflicting.any():
                fail(
                    "share an open time with another row but differ in values",
                    conflicting,
                    "the source holds two versions of the same candle; fix it at the source",
                )
            df = df.loc[~dup_time].reset_index(drop=True)
            ts_ms = ts_ms[~dup_time]
            report.duplicates_dropped = int(dup_time.sum())
            report.repairs.append(f"dropped {report.duplicates_dropped} exact duplicate row(s)")

    no_close = df["close_time"].isna()
    if no_close.any():
        df.loc[no_close, "close_time"] = df.loc[no_close, "timestamp"] + pd.Timedelta(
            milliseconds=step - 1
        )
        report.close_time_filled = int(no_close.sum())
        report.repairs.append(
            f"filled {report.close_time_filled} missing close_time(s) as open time + {interval} - 1 ms"
        )
    report.irregular_close_time = int(
        (df["close_time"] - df["timestamp"] != pd.Timedelta(milliseconds=step - 1)).sum()
    )

    report.rows_out = len(df)
    if len(df) > 1 and interval in _GRID_INTERVALS:
        missing_per_gap = np.diff(ts_ms) // step - 1
        gaps = missing_per_gap[missing_per_gap > 0]
        report.missing_candles = int(gaps.sum())
        report.gaps = len(gaps)
        report.largest_gap_candles = int(gaps.max()) if len(gaps) else 0
        if report.missing_fraction > max_missing_fraction:
            raise DataValidationError(
                f"{source}: {report.missing_candles} of {report.expected_candles} {interval} "
                f"candles are missing ({report.missing_fraction:.2%} in {report.gaps} gap(s), the "
                f"largest {report.largest_gap_candles}), over the limit of "
                f"{max_missing_fraction:.2%}; choose a period without the outage or raise "
                "max_missing_fraction (missing candles are never invented)"
            )

    if len(df):
        report.start = df["timestamp"].iloc[0].isoformat()
        report.end = df["timestamp"].iloc[-1].isoformat()
    for repair in report.repairs:
        log.warning("%s: %s", source, repair)
    return df, report


def read_klines_csv(path: str | Path) -> pd.DataFrame:
    """Read a klines CSV (header of the 12 columns, times as epoch ms or ISO 8601), typed
    but not yet validated. Gzip is detected from the ``.gz`` suffix."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"no klines CSV at {p}; give an existing file (csv:PATH)")
    try:
        raw = pd.read_csv(p, dtype=str, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"{p} is not a readable CSV: {exc}") from exc
    return coerce_klines(raw)


def _ms(series: pd.Series) -> pd.Series:
    return series.astype("datetime64[ms, UTC]").astype("int64").where(series.notna())


def write_klines_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write klines in the exchange/dump format (times as epoch ms), atomically: the file
    appears complete or not at all."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    out = frame.loc[:, list(KLINE_COLUMNS)].copy()
    for col in ("timestamp", "close_time"):
        out[col] = _ms(out[col]).astype("Int64")
    with atomic_path(p) as tmp:
        out.to_csv(tmp, index=False, compression="gzip" if p.suffix == ".gz" else None)
    return p
