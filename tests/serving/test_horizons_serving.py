"""Forecast horizons from the model to the user's terminal (issue 22), through real parts: a
small real universal model of the 1, 4 and 24 hour horizons trained on the sample, each
horizon gated on its own, published to a store, served by the real KServe ModelServer
(``python -m make_us_rich.serving``) and asked by ``mkrich predict``'s client."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_attacks import metric_value
from test_server import Server, http

from make_us_rich import contract
from make_us_rich.inference import onnx_session, predict_all
from make_us_rich.predict_client import predict_next_close
from make_us_rich.store import ModelStore
from make_us_rich.testing import wait_until

pytest.importorskip("kserve")

HORIZONS = (1, 4, 24)
SYMBOLS = ("BTCEUR", "BTCUSDT")


@pytest.fixture(scope="module")
def horizon_model(tmp_path_factory, sample_btceur, sample_btcusdt):
    """A tiny universal model of three horizons on the sample's first 3,000 hours of BTCEUR and
    BTCUSDT (the last 20 %, 600 hours, its test period: long enough for the 24-hour scores'
    bootstrap), each symbol evaluated twice: with the default gate (``strict``) and with one
    every horizon passes (``lenient``: tolerance 100 %, coverage 0-1)."""
    pytest.importorskip("tensorflow")
    from make_us_rich.data import write_klines_csv
    from make_us_rich.params import RunSpec
    from make_us_rich.stages import market_evaluate_stage, run_universal
    from make_us_rich.training.config import TrainConfig

    base = tmp_path_factory.mktemp("horizons")
    csv = base / "csv"
    csv.mkdir()
    write_klines_csv(sample_btceur.iloc[:3000], csv / "BTCEUR_1h.csv")
    write_klines_csv(sample_btcusdt.iloc[:3000], csv / "BTCUSDT_1h.csv")
    config = TrainConfig(sequence_length=12, lstm_units=8, batch_size=64, patience=1, max_epochs=2, test_size=0.2,
                         horizons=HORIZONS)
    run_universal(f"csv:{csv}", list(SYMBOLS), base / "model", RunSpec(train=config), work_dir=base / "market")
    for sym in SYMBOLS:
        row = market_evaluate_stage(base / "model", base / "market", sym, base / "lenient" / sym,
                                    gate_tolerance=1.0, coverage_min=0.0, coverage_max=1.0)
        assert "error" not in row, row
    return {"model": base / "model", "csv": csv, "strict": base / "model" / "symbols", "lenient": base / "lenient"}


def gate_of(folder) -> dict:
    return json.loads((folder / "metrics.json").read_text())["gate"]


def outputs_of(body: dict) -> dict[str, np.ndarray]:
    return {o["name"]: np.reshape(o["data"], o["shape"]) for o in body["outputs"]}


def infer(srv: Server, name: str, windows) -> dict:
    code, body = http("POST", f"{srv.url}/v2/models/{name}/infer",
                      {"inputs": [{"name": "window", "datatype": "FP32", "shape": list(windows.shape),
                                   "data": windows.ravel().tolist()}]})
    assert code == 200, body
    return body


def test_each_horizon_is_gated_on_its_own(horizon_model):
    """The 1-hour gate decides the model; each longer horizon is judged against its own
    baselines, and only those that pass are to be served (the card and metrics say which)."""
    for sym in SYMBOLS:
        strict, lenient = gate_of(horizon_model["strict"] / sym), gate_of(horizon_model["lenient"] / sym)
        assert lenient["passed"] and lenient["served_horizons"] == list(HORIZONS)
        assert set(strict["horizons"]) == {str(h) for h in HORIZONS}
        assert strict["horizons"]["1"]["reasons"] == strict["reasons"]  # the model's own gate
        assert strict["passed"]  # the next hour passes: the model is accepted...
        assert strict["served_horizons"] == [h for h in HORIZONS if strict["horizons"][str(h)]["passed"]]
        # ...and on this tiny model the 24 h interval is far too narrow: that horizon is not served
        assert 24 not in strict["served_horizons"] and 1 in strict["served_horizons"]
        assert any("outside" in r or ">" in r for r in strict["horizons"]["24"]["reasons"])
        metrics = json.loads((horizon_model["strict"] / sym / "metrics.json").read_text())
        assert set(metrics["horizons"]) == {str(h) for h in HORIZONS}
        card = json.loads((horizon_model["strict"] / sym / "model_card.json").read_text())
        assert card["horizons"] == list(HORIZONS)
        assert {"name": contract.HORIZON_OUTPUT_NAME, "datatype": "FP32", "shape": [-1, 3, 5]} in [
            {k: o[k] for k in ("name", "datatype", "shape")} for o in card["outputs"]]


def test_the_server_answers_the_served_horizons_only(tmp_path, horizon_model, windows, capsys):
    store = ModelStore(tmp_path / "store")
    model = horizon_model["model"]
    first = {s: store.publish(horizon_model["lenient"] / s, s, shared_model=model) for s in SYMBOLS}
    pointer = store.latest("BTCEUR")
    assert pointer["horizon_axis"] == list(HORIZONS) and pointer["horizons"] == list(HORIZONS)
    expected = predict_all(onnx_session((model / "model.onnx").read_bytes()), windows)
    srv = Server(tmp_path / "store", None, symbols=None)
    try:
        body = infer(srv, "btceur-close", windows)
        assert body["parameters"] == {"horizons": "1,4,24"} and body["model_version"] == first["BTCEUR"].version
        out = outputs_of(body)
        assert out[contract.HORIZON_OUTPUT_NAME].shape == (3, 3, 5)
        np.testing.assert_allclose(out[contract.HORIZON_OUTPUT_NAME], expected[contract.HORIZON_OUTPUT_NAME], rtol=1e-5)
        np.testing.assert_allclose(out[contract.HORIZON_OUTPUT_NAME][:, 0], out["quantile_close"], rtol=1e-6)
        # the last forecast per horizon on /metrics; the 1-hour series as they were
        for h, row in zip(HORIZONS, out[contract.HORIZON_OUTPUT_NAME][-1], strict=True):
            assert metric_value(srv.url, "mkrich_forecast_close_horizon", symbol="BTCEUR", horizon=str(h),
                                quantile="0.5") == pytest.approx(row[2], rel=1e-6)
        assert metric_value(srv.url, "mkrich_forecast_close", symbol="BTCEUR", quantile="0.95") == pytest.approx(
            out["quantile_close"][-1, 4], rel=1e-6)
        # metadata and status name them
        code, meta = http("GET", f"{srv.url}/v2/models/btceur-close")
        assert code == 200 and {"name": contract.HORIZON_OUTPUT_NAME, "datatype": "FP32", "shape": [-1, 3, 5]} in meta["outputs"]
        served = {m["model"]: m["horizons"] for m in http("GET", f"{srv.url}/mkrich/status")[1]["models"]}
        assert served == {"btceur-close": [1, 4, 24], "btcusdt-close": [1, 4, 24], "universal": [1, 4, 24]}
        # v1 too
        code, v1 = http("POST", f"{srv.url}/v1/models/btceur-close:predict", {"instances": windows.tolist()})
        assert code == 200 and v1["horizons"] == [1, 4, 24] and np.shape(v1[contract.HORIZON_OUTPUT_NAME]) == (3, 3, 5)

        # mkrich predict: every served horizon in price units with the hour it refers to
        result = predict_next_close(srv.url, "BTCEUR", source=f"csv:{horizon_model['csv']}")
        last = pd.Timestamp(result["last_hour"])
        assert [e["hours"] for e in result["horizons"]] == [1, 4, 24]
        assert [pd.Timestamp(e["for_hour"]) - last for e in result["horizons"]] == [pd.Timedelta(hours=h) for h in HORIZONS]
        assert result["horizons"][0]["quantiles"] == result["quantiles"]
        assert result["horizons"][0]["for_hour"] == result["for_hour"]
        assert all(list(e["quantiles"]) == ["q05", "q25", "q50", "q75", "q95"] for e in result["horizons"])
        from make_us_rich.cli import main

        capsys.readouterr()
        assert main(["predict", "--symbol", "BTCEUR", "--url", srv.url, "--source", f"csv:{horizon_model['csv']}"]) == 0
        printed = capsys.readouterr().out
        for e in result["horizons"][1:]:
            q = e["quantiles"]
            assert (f"  in {e['hours']} h ({e['for_hour']}): median {q['q50']:,.2f}   50 %: {q['q25']:,.2f} - "
                    f"{q['q75']:,.2f}   90 %: {q['q05']:,.2f} - {q['q95']:,.2f}") in printed

        # the strict gate's version: BTCEUR's 24 h horizon failed, it is no longer answered
        strict = gate_of(horizon_model["strict"] / "BTCEUR")["served_horizons"]
        moved = store.publish(horizon_model["strict"] / "BTCEUR", "BTCEUR", shared_model=model)
        assert store.latest("BTCEUR")["horizons"] == strict
        wait_until(lambda: infer(srv, "btceur-close", windows)["model_version"] == moved.version, 20, 0.2,
                   what="BTCEUR's swap")
        body = infer(srv, "btceur-close", windows)
        rows = [HORIZONS.index(h) for h in strict]
        assert body["parameters"] == {"horizons": ",".join(map(str, strict))}
        np.testing.assert_allclose(outputs_of(body)[contract.HORIZON_OUTPUT_NAME],
                                   expected[contract.HORIZON_OUTPUT_NAME][:, rows], rtol=1e-5)
        assert metric_value(srv.url, "mkrich_forecast_close_horizon", symbol="BTCEUR", horizon="24",
                            quantile="0.5") is None
        # a window of any symbol: the horizons every symbol of that model serves
        wait_until(lambda: infer(srv, "universal", windows)["parameters"]["horizons"] == ",".join(map(str, strict)),
                   20, 0.2, what="the universal model's horizons")
        result = predict_next_close(srv.url, "BTCEUR", source=f"csv:{horizon_model['csv']}")
        assert [e["hours"] for e in result["horizons"]] == strict
    finally:
        srv.stop()


def test_a_pointer_whose_horizons_do_not_fit_is_refused():
    assert contract.served_horizons({"horizon_axis": [1, 4, 24], "horizons": [24, 1]}) == ((1, 4, 24), (1, 24))
    assert contract.served_horizons({"version": "x"}) is None
    for bad in ({"horizon_axis": [1, 4], "horizons": [1, 24]}, {"horizon_axis": [4, 24], "horizons": [4]},
                {"horizon_axis": [1, 4], "horizons": "1,4"}, {"horizon_axis": [1, 1], "horizons": [1]}):
        with pytest.raises(ValueError):
            contract.served_horizons(bad)


def test_only_the_one_hour_horizon_refuses_the_model(horizon_model):
    """With a band every longer horizon passes, the served list follows the 1-hour decision: a
    failing next hour refuses the model (nothing served), a passing one serves every horizon."""
    from make_us_rich.stages import read_table
    from make_us_rich.training.evaluate import GateDecision, gate_served_horizons

    model_bytes = (horizon_model["model"] / "model.onnx").read_bytes()
    features = read_table(horizon_model["model"].parent / "market" / "BTCEUR" / "features.csv")
    start = json.loads((horizon_model["strict"] / "BTCEUR" / "metrics.json").read_text())["test"]["period"][0]
    lenient = {"tolerance": 1.0, "coverage_band": (0.0, 1.0), "n_boot": 50}
    for one_hour, served in ((False, []), (True, list(HORIZONS))):
        decision = GateDecision(one_hour, 1.0, (0.0, 1.0), [f"the 1-hour gate {'passed' if one_hour else 'failed'}"])
        out = gate_served_horizons(model_bytes, features, 12, HORIZONS, start=pd.Timestamp(start), one_hour=decision,
                                   parity_passed=True, **lenient)
        assert out["served"] == served
        assert out["gates"]["4"]["passed"] and out["gates"]["24"]["passed"]
        assert out["gates"]["1"] == decision.to_dict()
        assert set(out["scores"]) == {"1", "4", "24"}
