"""`mkrich runs` and `runs show` on real universal runs (``mkrich run --universal`` through
kfp.local, the ``universal_runs`` fixture): both kinds listed, the per-symbol gate table, the
training's warm start and time budget, each figure checked against the store and the run's files."""

from __future__ import annotations

import json

import pytest

from make_us_rich.cli import main
from make_us_rich.runs import find_run, list_runs
from make_us_rich.store import ModelStore

pytest.importorskip("tensorflow")


def test_universal_runs_are_listed_with_their_kind(universal_runs, capsys):
    root, _, (first, second) = universal_runs
    assert main(["runs", "--root", str(root)]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("universal-")}
    assert set(rows) == {first, second}
    assert rows[first].split()[1] == "universal" and " succeeded " in rows[first]
    assert "BTCEUR accepted pinball/A 0." in rows[first] and "ETHUSDT (no evaluation)" in rows[first]
    assert "BTCEUR rejected" in rows[second] and "BTCUSDT rejected" in rows[second]
    assert [r["id"] for r in list_runs(root)] == [second, first]  # newest first


def test_runs_show_gives_the_per_symbol_table_and_the_training(universal_runs, capsys):
    root, store_dir, (first, second) = universal_runs
    store = ModelStore(store_dir)
    run = find_run(root, first.removeprefix("universal-training-"))  # the id without the pipeline's name
    assert run["id"] == first and run["kind"] == "universal" and run["pipeline"] == "universal-training"
    for symbol in ("BTCEUR", "BTCUSDT"):
        info, (manifest, _) = run["symbols"][symbol], store.versions(symbol)  # this run's, then the next
        assert (info["gate"], info["published"], info["version"]) == ("passed", "accepted", manifest["version"])
        assert info["pinball_vs_empirical"] == manifest["metrics"]["ratio"]["pinball_vs_empirical"]
        assert info["pinball_vs_har"] == manifest["metrics"]["ratio"]["pinball_vs_har"]
        assert info["coverage50"] == manifest["metrics"]["model"]["intervals"]["50"]["coverage"]
    assert "no bundled sample for ETHUSDT" in run["symbols"]["ETHUSDT"]["error"]
    # each evaluation batch names its symbols (--eval-batch 2)
    assert sorted(s["symbol"] for s in run["steps"] if s["step"] == "evaluate-and-publish") == [
        "BTCEUR,BTCUSDT", "ETHUSDT"]
    # as the runner recorded them (and printed them): the symbols each batch task was given
    record = json.loads((root / first / "run.json").read_text())
    assert sorted(s["symbol"] for s in record["steps"] if s["step"] == "evaluate-and-publish") == [
        "BTCEUR,BTCUSDT", "ETHUSDT"]
    training = json.loads((root / first / "train-universal" / "model" / "training.json").read_text())
    assert run["training"]["trained_on"] == ["BTCEUR", "BTCUSDT"]
    assert run["training"]["best_val_loss"] == training["best_val_loss"] and training["warm_start"] is False

    assert main(["runs", "show", first, "--root", str(root)]) == 0
    shown = capsys.readouterr().out
    assert f"run {first} (universal-training, universal): succeeded" in shown
    assert "training: one universal model on 2 symbol(s) (BTCEUR, BTCUSDT)" in shown
    assert "  warm start: trained in full (no accepted universal model in the store)" in shown
    assert f"  time budget: {training['time_budget']:g} s, not exhausted" in shown
    table = shown[shown.index("per symbol ("):]
    assert table.startswith("per symbol (2 accepted, 1 not evaluated;")
    btceur = next(line for line in table.splitlines() if line.startswith("  BTCEUR "))
    assert btceur.split()[1:3] == ["passed", "accepted"] and btceur.endswith(run["symbols"]["BTCEUR"]["version"])
    assert f"{run['symbols']['BTCEUR']['pinball_vs_har']:.4f}" in btceur
    assert "  ETHUSDT      not evaluated: no bundled sample for ETHUSDT" in table


def test_a_warm_started_rejected_run_says_so(universal_runs, capsys):
    root, store_dir, (first, second) = universal_runs
    store = ModelStore(store_dir)
    assert main(["runs", "show", "latest", "--root", str(root)]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"run {second} (universal-training, universal)")
    assert "  warm start: warm start from " in shown and "  time budget: 300 s, " in shown
    assert "per symbol (2 rejected, 1 not evaluated;" in shown
    rejected = store.versions("BTCEUR")[-1]
    assert rejected["status"] == "rejected" and "rejected  rejected" in shown and rejected["version"] in shown
    assert "BTCEUR rejected (keeps its previous model):" in shown
    assert any("outside 0.99-1.00" in r for r in rejected["gate"]["reasons"])
    assert all(f"    {r}" in shown for r in rejected["gate"]["reasons"])
    assert store.latest("BTCEUR")["version"] == find_run(root, first)["symbols"]["BTCEUR"]["version"]
    assert main(["runs", "show", "latest", "--root", str(root), "--log", "train-universal"]) == 0
    assert "warm start from " in capsys.readouterr().out


def test_a_failed_batch_step_is_named_from_its_index_unit():
    """Unit test of the step parser, on hand-made step records (a failed batch leaves no
    outcomes): the runner's record names the run's symbol at the batch's index."""
    from make_us_rich.runs import _batch_step

    symbols = ["BTCEUR", "BTCUSDT", "ETHUSDT", "XRPUSDT", "ADAUSDT"]
    failed = {"step": "evaluate-and-publish", "symbol": "BTCUSDT", "status": "FAILED", "numbers": ""}
    assert _batch_step(failed, symbols, {"eval_batch": 2})["symbol"] == "ETHUSDT,XRPUSDT"
    assert _batch_step(failed, symbols, {})["symbol"] == "BTCUSDT"  # batch size unknown: as recorded
    done = {**failed, "status": "ok", "numbers": '{"ADAUSDT": "accepted"}', "symbol": "ETHUSDT"}
    assert _batch_step(done, symbols, {"eval_batch": 2})["symbol"] == "ADAUSDT"
    other = {"step": "train-universal", "symbol": "BTCEUR,BTCUSDT", "numbers": "epochs_run=2"}
    assert _batch_step(other, symbols, {"eval_batch": 2}) == other
