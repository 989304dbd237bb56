"""The real KServe ModelServer (``python -m make_us_rich.serving``) on a free loopback port,
serving real published models from a local store."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from make_us_rich.predict_client import predict_next_close, v2_request
from make_us_rich.store import ModelStore
from make_us_rich.testing import free_port, stop_process, wait_until

pytest.importorskip("kserve")

NAME = "btceur-close"


def http(method: str, url: str, body=None, headers=None, raw: bytes | None = None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, text.decode(errors="replace")


class Server:
    """``python -m make_us_rich.serving`` in a subprocess; its output goes to ``self.log``."""

    def __init__(self, store: str | Path, env: dict | None = None, *extra: str, symbols: str | None = "BTCEUR") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "make_us_rich.serving", "--store", str(store),
               "--port", str(self.port), "--reload-interval", "0.2", *extra]
        if symbols:
            cmd += ["--symbols", symbols]
        self.log = Path(tempfile.mkdtemp(prefix="mkrich-server-")) / "server.log"
        self.proc = subprocess.Popen(
            cmd, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()}")
            return http("GET", f"{self.url}/v2/health/ready")[0] == 200

        try:
            wait_until(ready, 90, 0.2, what="server ready", ignoring=(urllib.error.URLError, ConnectionError))
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"server not ready in time:\n{self.log.read_text()}") from None

    def infer(self, windows, **kw):
        return http("POST", f"{self.url}/v2/models/{NAME}/infer", v2_request(windows), **kw)

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture(scope="module")
def server(store_dir):
    srv = Server(store_dir)
    yield srv
    srv.stop()


def test_v2_infer_matches_onnxruntime(server, store_dir, windows):
    from make_us_rich.inference import onnx_session, predict_all

    status, body = server.infer(windows)
    assert status == 200, body
    outs = {o["name"]: o for o in body["outputs"]}
    assert list(outs) == ["next_close", "quantile_close"]
    assert outs["next_close"]["shape"] == [3, 1] and outs["quantile_close"]["shape"] == [3, 5]
    assert all(o["datatype"] == "FP32" for o in outs.values())
    store = ModelStore(store_dir)
    latest = store.latest("BTCEUR")
    assert body["model_version"] == latest["version"] and body["model_name"] == NAME
    session = onnx_session(store.read("BTCEUR", latest["version"], "model.onnx"))
    expected = predict_all(session, windows)
    for name, out in outs.items():
        np.testing.assert_allclose(np.reshape(out["data"], out["shape"]), expected[name], rtol=1e-6)
    q = np.reshape(outs["quantile_close"]["data"], (3, 5))
    assert (np.diff(q, axis=1) >= 0).all()


def test_v1_predict_and_metadata(server, windows):
    status, body = http("POST", f"{server.url}/v1/models/{NAME}:predict", {"instances": windows.tolist()})
    assert status == 200 and len(body["predictions"]) == 3
    assert np.shape(body["quantile_close"]) == (3, 5)  # every further output under its name
    np.testing.assert_allclose(body["predictions"], np.asarray(body["quantile_close"])[:, 2], rtol=1e-6)
    status, meta = http("GET", f"{server.url}/v2/models/{NAME}")
    assert status == 200
    assert meta["inputs"] == [{"name": "window", "datatype": "FP32", "shape": [-1, 12, 21]}]
    assert meta["outputs"] == [{"name": "next_close", "datatype": "FP32", "shape": [-1, 1]},
                               {"name": "quantile_close", "datatype": "FP32", "shape": [-1, 5]}]
    assert len(meta["versions"]) == 1
    status, health = http("GET", f"{server.url}/v2/health/ready")
    assert status == 200 and health["ready"] is True
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as r:
        assert b"request_predict_seconds" in r.read()


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"inputs": [{"name": "window", "shape": [1, 12, 21], "datatype": "FP32", "data": [1.0]}]}, 400, "needs 252"),
        ({"inputs": [{"name": "window", "shape": [1, 5, 21], "datatype": "FP32", "data": [1.0] * 105}]}, 400, "expected shape"),
        ({"inputs": [{"name": "window", "shape": [1, 12, 21], "datatype": "BYTES", "data": ["a"] * 252}]}, 400, "datatype must be FP32"),
        ({"inputs": [{"name": "window", "shape": [1, 12, 21], "datatype": "FP32", "data": ["NaN"] * 252}]}, 400, "data must be numbers"),
        ({"inputs": [{"name": "window", "shape": [1, 12, 21], "datatype": "FP32", "data": [1e39] * 252}]}, 400, "NaN or infinity"),
        ({"inputs": [{"name": "window", "shape": [0, 12, 21], "datatype": "FP32", "data": []}]}, 400, "empty batch"),
        ({"inputs": [{"name": "other", "shape": [1, 12, 21], "datatype": "FP32", "data": [1.0] * 252}]}, 400, "unknown input"),
        ({"instances": []}, 422, "inputs"),
    ],
)
def test_bad_v2_requests_get_4xx_and_the_server_goes_on(server, windows, body, status, message):
    got, answer = http("POST", f"{server.url}/v2/models/{NAME}/infer", body)
    assert got == status and message in json.dumps(answer)
    assert server.infer(windows[:1])[0] == 200  # the next good request is served


def test_other_bad_requests(server, windows):
    url = f"{server.url}/v2/models/{NAME}/infer"
    assert http("POST", url, raw=b'{"inputs": [')[0] == 422  # malformed JSON
    status, body = http("POST", f"{server.url}/v1/models/{NAME}:predict", {"data": [1]})
    assert status == 400 and "instances" in body["error"]
    status, body = http("POST", f"{server.url}/v2/models/nope-close/infer", v2_request(windows))
    assert status == 404
    big = b'{"inputs": [{"name": "window", "shape": [1], "datatype": "FP32", "data": [' + b"1.0," * 3_000_000 + b"1.0]}]}"
    status, body = http("POST", url, raw=big)
    assert status == 413 and "request body over" in body["error"]
    assert server.infer(windows)[0] == 200


def test_mkrich_predict_against_the_server(server, sample_btceur):
    result = predict_next_close(server.url, "BTCEUR", source="sample")
    assert result["model"] == NAME and result["last_hour"] == "2023-12-31T23:00:00+00:00"
    assert result["for_hour"] == "2024-01-01T00:00:00+00:00"
    assert abs(result["predicted_close"] / result["last_close"] - 1) < 0.05
    q = result["quantiles"]
    assert list(q) == ["q05", "q25", "q50", "q75", "q95"] and q["q05"] < q["q25"] <= q["q50"] <= q["q75"] < q["q95"]
    assert q["q50"] == pytest.approx(result["predicted_close"], rel=1e-6)
    assert result["last_close"] == sample_btceur["close"].iloc[-1]


def test_bearer_token(store_dir, windows):
    srv = Server(store_dir, {"MKRICH_SERVING_TOKEN": "s3cret"})
    try:
        assert srv.infer(windows)[0] == 401
        assert srv.infer(windows, headers={"Authorization": "Bearer nope"})[0] == 401
        assert srv.infer(windows, headers={"Authorization": "Bearer s3cret"})[0] == 200
        assert http("GET", f"{srv.url}/v2/health/ready")[0] == 200  # health stays open
        assert "s3cret" not in srv.log.read_text()  # secrets never in logs
    finally:
        srv.stop()


def test_hot_reload_under_load_and_broken_models_refused(tmp_path, trained_artifacts, windows):
    store_path = tmp_path / "store"
    store = ModelStore(store_path)
    first = store.publish(trained_artifacts, "BTCEUR")
    srv = Server(store_path)
    # One list per client thread: each thread's requests are sequential, so its own sequence
    # of versions is in time order (across threads, appends may interleave out of order).
    streams: list[list[tuple[int | None, str | None]]] = [[], []]
    stop = threading.Event()

    def stream(results):
        while not stop.is_set():
            try:
                status, body = srv.infer(windows[:1])
            except Exception as exc:  # a dropped connection is a failed request too
                results.append((None, repr(exc)))
                continue
            results.append((status, body.get("model_version") if isinstance(body, dict) else None))

    try:
        workers = [threading.Thread(target=stream, args=(r,)) for r in streams]
        for w in workers:
            w.start()
        time.sleep(0.5)
        second = store.publish(trained_artifacts, "BTCEUR")
        with contextlib.suppress(TimeoutError):  # the assertions below say what did not swap
            wait_until(lambda: all(r and r[-1][1] == second.version for r in streams), 20, 0.1)
        time.sleep(0.3)
        stop.set()
        for w in workers:
            w.join()
        for results in streams:
            assert results and all(status == 200 for status, _ in results), set(results)
            versions = [v for _, v in results]
            assert versions[0] == first.version and versions[-1] == second.version
            # no going back once swapped
            assert versions.index(second.version) == len(versions) - versions[::-1].index(first.version)

        # A broken new latest (checksums fine, bytes not ONNX) is refused; we stay on `second`.
        broken = second.version.replace(second.version[:8], "29991231")
        for key in store.backend.list(f"models/BTCEUR/{second.version}"):
            name = key.rsplit("/", 1)[1]
            store.backend.put(f"models/BTCEUR/{broken}/{name}", store.backend.get(key))
        garbage = b"this is not an onnx model"
        store.backend.put(f"models/BTCEUR/{broken}/model.onnx", garbage)
        pointer = store.latest("BTCEUR")
        import hashlib

        pointer.update(version=broken, checksums={**pointer["checksums"], "model.onnx": hashlib.sha256(garbage).hexdigest()})
        store.backend.put("models/BTCEUR/latest.json", json.dumps(pointer).encode())
        status_body = wait_until(
            lambda: (b := http("GET", f"{srv.url}/mkrich/status")[1])["models"][0]["last_reload_error"] and b,
            20, 0.2, what="the broken version's refusal in /mkrich/status")
        model_status = status_body["models"][0]
        assert f"refused version {broken}" in model_status["last_reload_error"]
        assert model_status["version"] == second.version
        status, body = srv.infer(windows[:1])
        assert status == 200 and body["model_version"] == second.version
        assert "still serving" in srv.log.read_text()
    finally:
        stop.set()
        srv.stop()
    shutil.rmtree(store_path)


def test_predict_with_live_klines_from_the_binance_api(server, fake_binance, capsys):
    """`mkrich predict` fetches the last window from (a local) Binance and calls the server."""
    from make_us_rich.cli import main

    rc = main(["predict", "--symbol", "BTCEUR", "--url", server.url, "--source", "binance",
               "--api-url", fake_binance.api_url, "--end", "2023-12-31T23:00Z"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "BTCEUR next close (2024-01-01T00:00:00+00:00)" in out and "version" in out
    assert fake_binance.klines_requests()  # the window really came over HTTP


def test_server_loads_from_s3(s3_env, trained_artifacts, windows):
    store = ModelStore(f"s3://{s3_env}/serving")
    published = store.publish(trained_artifacts, "BTCEUR")
    env = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                      "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")}
    srv = Server(f"s3://{s3_env}/serving", env)
    try:
        status, body = srv.infer(windows)
        assert status == 200 and body["model_version"] == published.version
    finally:
        srv.stop()
