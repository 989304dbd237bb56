"""Data tests: replay sources (bundled sample, CSV) give the same frame as the live source."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from make_us_rich.data import SAMPLE_SYMBOLS, load_klines, parse_source, sample_path
from make_us_rich.data.klines import write_klines_csv
from make_us_rich.errors import ConfigError, DataValidationError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_parse_source():
    assert parse_source("sample").kind == "sample"
    assert parse_source("binance").kind == "binance"
    src = parse_source("csv:/tmp/k.csv")
    assert (src.kind, src.path, str(src)) == ("csv", Path("/tmp/k.csv"), "csv:/tmp/k.csv")
    for bad in ("", "csv:", "s3://x", "Sample"):
        with pytest.raises(ConfigError, match="use 'binance', 'sample' or 'csv:PATH'"):
            parse_source(bad)


@pytest.mark.parametrize("symbol", SAMPLE_SYMBOLS)
def test_bundled_sample_is_real_and_complete(symbol):
    klines, report = load_klines("sample", symbol)
    assert sample_path(symbol).is_file()
    assert report.start == "2023-07-01T00:00:00+00:00"
    assert report.end == "2023-12-31T23:00:00+00:00"
    assert len(klines) == 184 * 24 and report.missing_candles == 0 and report.repairs == []


def test_sample_continues_the_2023_fixture(sample_btcusdt, btcusdt_2023):
    """The bundled H2 sample and tests/fixtures' H1 join into one gapless-but-for-outages year."""
    assert len(btcusdt_2023) == 8759  # 365 days minus the real outage hour of 2023-03-24
    tail = btcusdt_2023.iloc[-len(sample_btcusdt):].reset_index(drop=True)
    pd.testing.assert_frame_equal(sample_btcusdt, tail)


def test_fixtures_are_slices_of_the_shared_data():
    """Provenance of tests/fixtures: byte-identical rows of ../shared/data (checked where it exists)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    make_fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_fixtures)
    if not make_fixtures.shared_dir().is_dir():
        pytest.skip(f"{make_fixtures.shared_dir()} absent: provenance not re-checked on this clone")
    assert make_fixtures.main(["--check"]) == 0


def test_sample_errors():
    with pytest.raises(ConfigError, match="no bundled sample for ETHEUR"):
        load_klines("sample", "ETH/EUR")
    with pytest.raises(ConfigError, match="holds 1h klines, not 4h"):
        load_klines("sample", "BTCEUR", interval="4h")


def test_windows_on_replay_sources(sample_btceur):
    last30, _ = load_klines("sample", "BTCEUR", days=30)
    assert len(last30) == 30 * 24
    assert last30["timestamp"].iloc[-1] == sample_btceur["timestamp"].iloc[-1]
    window, _ = load_klines("sample", "BTCEUR", start="2023-08-01", end="2023-08-02")
    assert len(window) == 25  # both ends inclusive on open times
    with pytest.raises(ConfigError, match="no klines in the requested window"):
        load_klines("sample", "BTCEUR", start="2030-01-01")
    with pytest.raises(ConfigError, match="either days or start"):
        load_klines("sample", "BTCEUR", start="2023-08-01", days=3)


def test_csv_source_in_the_shared_format(tmp_path, sample_btcusdt):
    path = write_klines_csv(sample_btcusdt, tmp_path / "k.csv")
    klines, _ = load_klines(f"csv:{path}", "BTCUSDT")
    pd.testing.assert_frame_equal(klines, sample_btcusdt)


def test_csv_source_with_broken_rows_is_refused(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume,close_time,quote_av,trades,tb_base_av,tb_quote_av,ignore\n"
        "1672531200000,100,110,90,105,1,1672534799999,1,1,1,1,0\n"
        "1672534800000,105,111,95,-1,1,1672538399999,1,1,1,1,0\n"
    )
    with pytest.raises(DataValidationError, match=r"broken\.csv: 1 row\(s\) have a missing, infinite or non-positive"):
        load_klines(f"csv:{path}", "BTCUSDT")


def test_csv_folder_reads_the_one_file_of_the_symbol(tmp_path, sample_btceur):
    from make_us_rich.data.sources import csv_symbols

    write_klines_csv(sample_btceur.iloc[:50], tmp_path / "BTCEUR_1h_2023H2.csv.gz")
    klines, _ = load_klines(f"csv:{tmp_path}", "BTC/EUR")
    assert len(klines) == 50
    assert csv_symbols(tmp_path) == ["BTCEUR"]
    with pytest.raises(ConfigError, match="no file named ETHUSDT_"):
        load_klines(f"csv:{tmp_path}", "ETHUSDT")
    write_klines_csv(sample_btceur.iloc[:40], tmp_path / "BTCEUR_other.csv")
    with pytest.raises(ConfigError, match="2 files"):
        load_klines(f"csv:{tmp_path}", "BTCEUR")
