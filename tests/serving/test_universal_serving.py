"""One universal model serving every symbol (issue 21 #6) through the real KServe ModelServer:
one onnxruntime session for all the symbols that share the model, each symbol at its own URL,
the ``universal`` model for any symbol's window, hot reload per symbol, and ``mkrich predict``."""

from __future__ import annotations

import numpy as np
import pytest
from test_server import Server, http

from make_us_rich.inference import onnx_session, predict_all
from make_us_rich.predict_client import predict_next_close
from make_us_rich.store import ModelStore
from make_us_rich.testing import wait_until

pytest.importorskip("kserve")

SYMBOLS = ("BTCEUR", "BTCUSDT", "ETHUSDT")


def status(srv: Server) -> dict:
    return http("GET", f"{srv.url}/mkrich/status")[1]


def versions(srv: Server) -> dict[str, str]:
    return {m["model"]: m["version"] for m in status(srv)["models"]}


def test_one_session_for_every_symbol_of_a_universal_model(tmp_path, universal_models, windows):
    store = ModelStore(tmp_path / "store")
    model_a, model_b = universal_models["a"], universal_models["b"]
    first = {s: store.publish(model_a / "symbols" / s, s, shared_model=model_a) for s in SYMBOLS[:2]}
    shared_a = first["BTCEUR"].shared
    srv = Server(tmp_path / "store", None, symbols=None)  # every symbol of the store (discovery)
    try:
        # a symbol the next run adds is served without a restart, from the same session
        first["ETHUSDT"] = store.publish(model_a / "symbols" / "ETHUSDT", "ETHUSDT", shared_model=model_a)
        wait_until(lambda: "ethusdt-close" in versions(srv), 20, 0.2, what="ETHUSDT discovered")
        answer = status(srv)
        assert answer["sessions"] == 1  # three symbols, one model in memory
        served = {m["model"]: m for m in answer["models"]}
        assert set(served) == {"btceur-close", "btcusdt-close", "ethusdt-close", "universal"}
        assert {m["shared"] for m in served.values()} == {shared_a}
        assert served["universal"]["version"] == shared_a

        expected = predict_all(onnx_session((model_a / "model.onnx").read_bytes()), windows)
        for name in [*(f"{s.lower()}-close" for s in SYMBOLS), "universal"]:
            code, body = http("POST", f"{srv.url}/v2/models/{name}/infer",
                              {"inputs": [{"name": "window", "datatype": "FP32", "shape": list(windows.shape),
                                           "data": windows.ravel().tolist()}]})
            assert code == 200, body
            assert body["model_name"] == name
            assert body["model_version"] == (shared_a if name == "universal" else first[name[:-6].upper()].version)
            out = {o["name"]: np.array(o["data"], dtype=np.float32).reshape(o["shape"]) for o in body["outputs"]}
            np.testing.assert_allclose(out["quantile_close"], expected["quantile_close"], rtol=1e-5)

        # `mkrich predict --symbol X` for a symbol the bundled sample does not have
        result = predict_next_close(srv.url, "ETHUSDT", source=f"csv:{universal_models['csv']}")
        assert result["model"] == "ethusdt-close" and result["model_version"] == first["ETHUSDT"].version

        # hot reload per symbol: BTCEUR moves to the next model, the others stay
        moved = store.publish(model_b / "symbols" / "BTCEUR", "BTCEUR", shared_model=model_b)
        wait_until(lambda: versions(srv)["btceur-close"] == moved.version, 20, 0.2, what="BTCEUR's swap")
        wait_until(lambda: versions(srv)["universal"] == moved.shared, 20, 0.2, what="universal's swap")
        now = versions(srv)
        assert now["btcusdt-close"] == first["BTCUSDT"].version and now["ethusdt-close"] == first["ETHUSDT"].version
        assert status(srv)["sessions"] == 2
        for s in SYMBOLS[1:]:
            store.publish(model_b / "symbols" / s, s, shared_model=model_b)
        wait_until(lambda: status(srv)["sessions"] == 1, 20, 0.2, what="the older model's session released")
        assert {m["shared"] for m in status(srv)["models"]} == {moved.shared}
    finally:
        srv.stop()
