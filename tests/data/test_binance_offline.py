"""Binance out of reach: one short line per retry (written above the progress bar, not through
it), then a one-line error that says what to do; and one default source for every command."""

from __future__ import annotations

import contextlib
import logging
import sys

import pytest

from make_us_rich.cli import DEFAULT_SOURCE, build_parser, main
from make_us_rich.data.binance import BinanceClient
from make_us_rich.errors import FetchError
from make_us_rich.testing import free_port


@contextlib.contextmanager
def stderr_logging():
    """The CLI's logging: a stream handler on stderr (as logging.basicConfig sets up), made in
    the test's call phase, where capsys's stderr is the one in place."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


def test_closed_port_gives_one_short_line_per_retry_and_a_hint(capsys):
    api = f"http://127.0.0.1:{free_port()}/api"
    client = BinanceClient(api_url=api, max_retries=3, sleep=lambda s: None)
    with stderr_logging(), pytest.raises(FetchError) as failure:
        client.get_data("BTCEUR", "1h", "2023-12-01", "2023-12-02", progress=True)
    message = str(failure.value)
    assert "\n" not in message and "connection refused" in message
    assert "--source sample" in message and "BINANCE_API_URL" in message and api in message
    assert "object at 0x" not in message and "Max retries" not in message
    err = capsys.readouterr().err
    lines = [line.split("\r")[-1] for line in err.splitlines()]
    retries = [line for line in lines if "retry" in line]
    assert retries == [f"WARNING make_us_rich.data.binance: BTCEUR: connection error: connection "
                       f"refused; retry {n}/3 in {w} s" for n, w in ((1, "0.5"), (2, "1.0"), (3, "2.0"))]


def test_an_unknown_symbol_is_not_retried(fake_binance):
    client = BinanceClient(api_url=fake_binance.api_url, sleep=lambda s: pytest.fail("retried"))
    with pytest.raises(Exception, match="does not know the symbol 'XRPEUR'"):
        client.get_data("XRPEUR", "1h", "2023-12-01", "2023-12-02")
    assert len(fake_binance.klines_requests()) == 1


@pytest.mark.parametrize("command", [
    ["fetch", "--out", "x.csv"], ["preprocess", "--out", "x"], ["train", "--out", "x"],
    ["evaluate", "--model", "m", "--out", "x"], ["predict"], ["run"],
])
def test_one_default_source_for_every_command_here(command):
    assert DEFAULT_SOURCE == "sample"
    assert build_parser().parse_args(command).source == DEFAULT_SOURCE


def test_fetch_works_offline_by_default(tmp_path, capsys):
    assert main(["fetch", "--days", "2", "--out", str(tmp_path / "k.csv")]) == 0
    assert "BTCEUR: 48 candles" in capsys.readouterr().out


def test_api_url_without_binance_is_refused_not_ignored(tmp_path, capsys):
    rc = main(["fetch", "--api-url", "http://127.0.0.1:1/api", "--out", str(tmp_path / "k.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and err.strip() == ("error: --api-url is for --source binance; the source is "
                                       "sample (add --source binance)")
