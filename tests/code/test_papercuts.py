"""Small things a first user meets: each was wrong once (issue 23, item 9)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from make_us_rich.cli import build_parser, main
from make_us_rich.data import load_klines, read_klines_csv, write_klines_csv
from make_us_rich.errors import DataValidationError

ROOT = Path(__file__).resolve().parents[2]
BINANCE_HEADER = ["open_time", "open", "high", "low", "close", "volume", "close_time",
                  "quote_asset_volume", "number_of_trades", "taker_buy_base_asset_volume",
                  "taker_buy_quote_asset_volume", "ignore"]


@pytest.fixture(scope="module")
def three_days(tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    klines = load_klines("sample", "BTCEUR", days=3)[0]
    path = write_klines_csv(klines, tmp_path_factory.mktemp("csv") / "k.csv")
    return klines, path


def test_a_csv_with_binance_documented_names_is_read_whole(three_days, tmp_path):
    klines, path = three_days
    frame = pd.read_csv(path)
    frame.columns = BINANCE_HEADER
    frame.to_csv(tmp_path / "binance.csv", index=False)
    read = read_klines_csv(tmp_path / "binance.csv")
    pd.testing.assert_frame_equal(read, read_klines_csv(path))
    assert read["trades"].notna().all()  # was read as empty under these names


def test_a_csv_with_misnamed_columns_is_refused_naming_the_expected_ones(three_days, tmp_path):
    _, path = three_days
    frame = pd.read_csv(path).rename(columns={"trades": "n_trades"})
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataValidationError) as refused:
        read_klines_csv(tmp_path / "bad.csv")
    message = str(refused.value)
    assert "['n_trades'] are not kline fields" in message and "['trades'] are absent" in message
    assert "number_of_trades" in message and "quote_av,trades" in message


def test_versions_of_a_store_that_does_not_exist_is_an_error(tmp_path, capsys):
    assert main(["versions", "--store", str(tmp_path / "nonexistent")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: no model store at {tmp_path / 'nonexistent'}")
    (tmp_path / "empty").mkdir()
    assert main(["versions", "--store", str(tmp_path / "empty")]) == 0
    assert "no versions of BTCEUR" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["versions", "predict", "compile", "submit"])
def test_every_command_has_a_description(command):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    parser = sub.choices[command]
    assert parser.description and len(parser.description) > 60


def test_step_numbers_are_printed_in_a_stable_order():
    from types import SimpleNamespace

    from make_us_rich.pipelines.local import _step_numbers

    def klines(order):
        return {"klines": SimpleNamespace(metadata={k: v for k, v in order})}

    items = [("rows_out", 4416), ("missing_candles", 0), ("gaps", 0)]
    assert _step_numbers(klines(items)) == _step_numbers(klines(reversed(items))) == \
        "gaps=0 missing_candles=0 rows_out=4416"


def test_make_docs_says_where_the_site_is():
    dry = subprocess.run(["make", "-n", "-C", str(ROOT), "docs"], capture_output=True, text=True,
                         check=True).stdout
    assert "site built: " in dry and "/site/index.html" in dry


def test_docs_serve_and_console_default_to_different_ports():
    def port(target: str) -> str:
        dry = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(ROOT), target],
                             capture_output=True, text=True, check=True).stdout.splitlines()[-1]
        return dry.rsplit(":", 1)[-1] if target == "docs-serve" else dry.split("--port ")[1].split()[0]

    assert port("docs-serve") == "8001" and port("console") == "8000"
