"""A run that cannot succeed fails at once, in one line, with the fix: checked before the
pipeline starts (mkrich run's preflight), and, inside the pipeline, without KFP retries."""

from __future__ import annotations

import pytest

from make_us_rich.cli import main
from make_us_rich.testing import free_port


@pytest.mark.parametrize(("argv", "message"), [
    (["--symbols", "DOGEEUR"], "error: no bundled sample for DOGEEUR; samples exist for BTCEUR, "
     "BTCUSDT (or use --source binance / csv:PATH)"),
    (["--source", "nope"], "error: unknown source 'nope'; use 'binance', 'sample' or 'csv:PATH'"),
    (["--source", "csv:/nonexistent/k.csv"], "error: csv source /nonexistent/k.csv: no such file"),
    (["--interval", "4h"], "error: the bundled sample holds 1h klines, not 4h"),
    (["--symbols", ","], "error: no symbols given; e.g. --symbols BTCEUR,BTCUSDT"),
])
def test_run_refuses_before_the_pipeline_starts(tmp_path, capsys, argv, message):
    root = tmp_path / "root"
    rc = main(["run", "--store", str(tmp_path / "store"), "--pipeline-root", str(root), *argv])
    captured = capsys.readouterr()
    assert rc == 2 and captured.err.startswith(message) and len(captured.err.splitlines()) == 1
    assert "running pipeline" not in captured.out and not root.exists()


def test_run_refuses_a_store_it_cannot_write(tmp_path, capsys):
    a_file = tmp_path / "store"
    a_file.write_text("not a folder")
    rc = main(["run", "--store", str(a_file), "--pipeline-root", str(tmp_path / "root")])
    assert rc == 2 and capsys.readouterr().err.startswith(f"error: store {a_file} is a file")
    rc = main(["run", "--store", str(a_file / "inside"), "--pipeline-root", str(tmp_path / "root")])
    err = capsys.readouterr().err
    assert rc == 2 and f"store {a_file / 'inside'} cannot be written" in err and "--store FOLDER" in err


def test_run_on_binance_checks_each_symbol_first(tmp_path, fake_binance, capsys):
    rc = main(["run", "--source", "binance", "--api-url", fake_binance.api_url, "--symbols",
               "BTCUSDT,XRPEUR", "--store", str(tmp_path / "store"),
               "--pipeline-root", str(tmp_path / "root")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: Binance does not know the symbol 'XRPEUR'")
    assert [q["symbol"] for q in fake_binance.klines_requests()] == ["BTCUSDT", "XRPEUR"]
    assert all(q["limit"] == "1" for q in fake_binance.klines_requests())  # one candle each


def test_run_on_unreachable_binance_is_one_line_with_the_hint(tmp_path, capsys):
    rc = main(["run", "--source", "binance", "--api-url", f"http://127.0.0.1:{free_port()}/api",
               "--store", str(tmp_path / "store")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "is unreachable" in err and "BINANCE_API_URL" in err and "--source sample" in err


def test_submit_checks_the_source_without_the_network(capsys):
    rc = main(["submit", "--host", f"http://127.0.0.1:{free_port()}/pipeline", "--source",
               "sample", "--symbols", "DOGEEUR"])
    assert rc == 2 and capsys.readouterr().err.startswith("error: no bundled sample for DOGEEUR")


@pytest.mark.slow
def test_a_step_that_cannot_succeed_fails_once(tmp_path, capsys):
    """Past the preflight (here: run_local called directly), an unknown sample symbol fails the
    fetch step once, not four times over minutes, and the error is said once."""
    from make_us_rich.pipelines.local import PipelineRunError, run_local

    lines: list[str] = []
    with pytest.raises(PipelineRunError) as failure:
        run_local(["DOGEEUR"], source="sample", store_uri=str(tmp_path / "store"),
                  pipeline_root=tmp_path / "root", report=lines.append, live=False)
    message = str(failure.value)
    assert message.startswith("fetch-klines (DOGEEUR) failed: ") and "no bundled sample" in message
    assert message.count("no bundled sample") == 1
    assert sum("FAILED fetch-klines" in line for line in lines) == 1, lines
    # the run history keeps it: failed, why, and the failed step's own log
    assert main(["runs", "--root", str(tmp_path / "root")]) == 0
    listed = capsys.readouterr().out
    assert " failed " in listed and "DOGEEUR (no evaluation)" in listed
    assert main(["runs", "show", "latest", "--root", str(tmp_path / "root"), "--log", "failed"]) == 0
    log = capsys.readouterr().out
    assert log.startswith("==== fetch-klines (FAILURE)") and "no bundled sample for DOGEEUR" in log
    assert "extract-features" not in log
    assert main(["runs", "show", "nope", "--root", str(tmp_path / "root")]) == 2
    assert "no run under" in capsys.readouterr().err


def test_a_csv_folder_is_checked_symbol_by_symbol(tmp_path):
    """csv:DIR (one <SYMBOL>_*.csv[.gz] per symbol, as the universal model reads) passes the
    preflight when each symbol has its file, and names the missing one otherwise."""
    from make_us_rich.data.sources import sample_path
    from make_us_rich.errors import ConfigError
    from make_us_rich.preflight import check_source

    folder = tmp_path / "market"
    folder.mkdir()
    (folder / "BTCEUR_1h.csv.gz").write_bytes(sample_path("BTCEUR").read_bytes())
    check_source(f"csv:{folder}", ["BTCEUR"])
    with pytest.raises(ConfigError, match=r"holds no file named BTCUSDT_\*\.csv\[\.gz\]"):
        check_source(f"csv:{folder}", ["BTCEUR", "BTCUSDT"])
