"""Replay of the adversarial test of issue 9 against the real KServe ModelServer on loopback:
repository routes, malformed and oversized bodies, the binary tensor extension with garbage
framing, a body that stops arriving, a flood of bad requests, a malformed ``latest.json`` during
hot reload and at start, symbols published after the start. Bounded in count and time."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.client import HTTPConnection

import numpy as np
import psutil
import pytest
from test_server import NAME, Server, http

from make_us_rich.predict_client import v2_request
from make_us_rich.store import ModelStore
from make_us_rich.store.model_store import _sha256
from make_us_rich.testing import wait_until

pytest.importorskip("kserve")

TOKEN = "t0ken-for-tests"


@pytest.fixture(scope="module")
def server(store_dir):
    srv = Server(store_dir, {"MKRICH_SERVING_TOKEN": TOKEN}, "--max-body", "200000", "--body-timeout", "1")
    yield srv
    srv.stop()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def infer(srv, windows):
    return http("POST", f"{srv.url}/v2/models/{NAME}/infer", v2_request(windows), headers=AUTH)


def test_repository_routes_are_off_with_or_without_the_token(server, windows):
    for action in ("unload", "load", "unload"):
        for headers in ({}, AUTH):
            status, body = http("POST", f"{server.url}/v2/repository/models/{NAME}/{action}", {}, headers=headers)
            assert status == 403 and "repository API is disabled" in body["error"]
    assert infer(server, windows)[0] == 200
    assert http("GET", f"{server.url}/v2/health/ready") == (200, {"ready": True})
    model = http("GET", f"{server.url}/mkrich/status")[1]["models"][0]
    assert model["version"] and model["reload"]["state"] == "running"


def binary_request(windows, json_extra=None, size=None, shape=None):
    raw = windows.astype("<f4").tobytes()
    tensor = {"name": "window", "shape": shape or list(windows.shape), "datatype": "FP32",
              "parameters": {"binary_data_size": len(raw) if size is None else size}}
    header = json.dumps({"inputs": [tensor], **(json_extra or {})}).encode()
    return header, raw


@pytest.mark.parametrize("case, message", [
    ("header-abc", "Inference-Header-Content-Length must be"),
    ("header-zero", "Inference-Header-Content-Length must be"),
    ("header-beyond-body", "Inference-Header-Content-Length must be"),
    ("size-mismatch", "binary_data_size of 'window' is 4"),
    ("size-zero", "binary_data_size of 'window' is 0"),
    ("size-string", "binary_data_size of 'window' is 'x'"),
    ("trailing-bytes", "adds up to"),
    ("header-not-json", "are not JSON"),
    ("no-inputs", '{"inputs"'),
    ("shape-beyond-data", "of FP32 needs"),
])
def test_binary_extension_garbage_is_400(server, windows, case, message):
    header, raw = binary_request(windows, size={"size-mismatch": 4, "size-zero": 0, "size-string": "x"}.get(case),
                                 shape=[len(windows) + 1, *windows.shape[1:]] if case == "shape-beyond-data" else None)
    length = str(len(header))
    body = header + raw
    if case == "header-abc":
        length = "abc"
    elif case == "header-zero":
        length = "0"
    elif case == "header-beyond-body":
        length = str(len(body) + 1)
    elif case == "trailing-bytes":
        body += b"\x00" * 8
    elif case == "header-not-json":
        length = "5"
    elif case == "no-inputs":
        header = b'{"x": 1}'
        body, length = header + raw, str(len(header))
    status, answer = http("POST", f"{server.url}/v2/models/{NAME}/infer", raw=body,
                          headers={**AUTH, "Inference-Header-Content-Length": length,
                                   "Content-Type": "application/octet-stream"})
    assert status == 400 and message in answer["error"], (status, answer)
    assert "Exception in ASGI application" not in server.log.read_text()


def test_binary_extension_well_formed_is_served(server, windows):
    header, raw = binary_request(windows)
    status, answer = http("POST", f"{server.url}/v2/models/{NAME}/infer", raw=header + raw,
                          headers={**AUTH, "Inference-Header-Content-Length": str(len(header)),
                                   "Content-Type": "application/octet-stream"})
    assert status == 200 and answer["outputs"][0]["shape"] == [len(windows), 1], answer
    assert answer["outputs"][0]["data"] == pytest.approx(infer(server, windows)[1]["outputs"][0]["data"])


def test_chunked_body_over_the_limit_is_413(server):
    conn = HTTPConnection("127.0.0.1", server.port, timeout=10)
    chunks = (b'{"inputs": [' + b"1.0," * 2500 for _ in range(40))  # ~400 kB > --max-body 200000
    conn.request("POST", f"/v2/models/{NAME}/infer", body=chunks, encode_chunked=True,
                 headers={**AUTH, "Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 413 and b"request body over 200000 bytes" in response.read()
    conn.close()


def test_a_body_that_stops_arriving_gets_408_and_the_connection_closes(server, windows):
    body = json.dumps(v2_request(windows)).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            f"POST /v2/models/{NAME}/infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body[:20]
        )
        for i in range(20, 23):  # slowloris: a few bytes, 0.2 s apart, then nothing more
            time.sleep(0.2)
            sock.sendall(body[i : i + 1])
        # Stop sending: writing to a socket the server has closed would make the kernel answer
        # with a reset that can discard the 408 before it is read.
        sock.settimeout(10)
        answer = b""
        while chunk := sock.recv(4096):  # the server answers 408 and closes the connection
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"not received within 1 s" in answer
    assert infer(server, windows)[0] == 200


def test_a_flood_of_bad_requests_logs_one_short_line_each_at_most(server, windows):
    before = len(server.log.read_text().splitlines())
    bad = {"inputs": [{"name": "window", "shape": [1, 12, 10], "datatype": "FP32", "data": [1.0]}]}
    n = 120

    def shoot(k):
        for _ in range(k):
            assert http("POST", f"{server.url}/v2/models/{NAME}/infer", bad, headers=AUTH)[0] == 400

    threads = [threading.Thread(target=shoot, args=(n // 4,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = server.log.read_text().splitlines()[before:]
    assert not any("Traceback" in line for line in lines)
    rejected = [line for line in lines if "rejected POST" in line]
    assert 1 <= len(rejected) <= n and len(lines) <= 3 * n
    assert f"/v2/models/{NAME}/infer: 400 data holds 1 value(s)" in rejected[0]
    assert infer(server, windows)[0] == 200


def test_listens_on_loopback_and_says_so(server):
    listening = [c.laddr for c in psutil.Process(server.proc.pid).connections("inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening)
    assert f"on http://127.0.0.1:{server.port}" in server.log.read_text()


def test_malformed_latest_during_hot_reload_then_a_real_publish(tmp_path, trained_artifacts, windows):
    path = tmp_path / "store"
    store = ModelStore(path)
    first = store.publish(trained_artifacts, "BTCEUR")
    srv = Server(path, {"MKRICH_SERVING_TOKEN": TOKEN})

    def status():  # with the token: the full text of the reload errors
        return http("GET", f"{srv.url}/mkrich/status", headers=AUTH)[1]["models"][0]

    def wait_for(predicate):
        return wait_until(lambda: current if predicate(current := status()) else None, 20, 0.1,
                          what=lambda: f"status never matched: {status()}")

    try:
        good = store.backend.get("models/BTCEUR/latest.json")
        for garbage, message in [(b"{}", "'version' is None"), (b"not json", "is not valid JSON"),
                                 (b"[1]", "it is not a JSON object")]:
            store.backend.put("models/BTCEUR/latest.json", garbage)
            model = wait_for(lambda m, message=message: message in (m["last_reload_error"] or ""))
            assert model["version"] == first.version and model["reload"]["state"] == "running"
            assert srv.infer(windows, headers=AUTH)[1]["model_version"] == first.version
            assert http("GET", f"{srv.url}/v2/health/ready")[0] == 200
        store.backend.put("models/BTCEUR/latest.json", good)
        wait_for(lambda m: m["last_reload_error"] is None)  # cleared once a poll succeeds
        second = store.publish(trained_artifacts, "BTCEUR")
        model = wait_for(lambda m: m["version"] == second.version)
        assert model["last_reload_error"] is None and model["reload"]["failures"] >= 3
        assert srv.infer(windows, headers=AUTH)[1]["model_version"] == second.version
        log = srv.log.read_text()
        assert log.count("still serving") == 3  # one line per new cause, not one per poll
    finally:
        srv.stop()


def test_invalid_latest_at_start_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "store"
    ModelStore(path).backend.put("models/BTCEUR/latest.json", b"{}")
    proc = subprocess.run([sys.executable, "-m", "make_us_rich.serving", "--store", str(path), "--symbols",
                           "BTCEUR", "--port", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and "latest.json is malformed" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def btcusdt_artifacts(tmp_path_factory, tiny_config):
    pytest.importorskip("tensorflow")
    from make_us_rich.workflow import train_symbol

    out = tmp_path_factory.mktemp("artifacts") / "btcusdt"
    # a wide gate: the test needs a second accepted symbol, not a good model
    train_symbol("sample", "BTCUSDT", out, tiny_config, days=75, gate_tolerance=10.0)
    return out


def test_without_symbols_every_symbol_of_the_store_is_served_and_later_ones_too(
    tmp_path, trained_artifacts, btcusdt_artifacts, windows
):
    path = tmp_path / "store"
    store = ModelStore(path)
    store.publish(btcusdt_artifacts, "BTCUSDT")
    srv = Server(path, None, symbols=None)
    try:
        assert "serving btcusdt-close from" in srv.log.read_text()
        body = v2_request(windows)
        assert http("POST", f"{srv.url}/v2/models/btcusdt-close/infer", body)[0] == 200
        assert http("POST", f"{srv.url}/v2/models/{NAME}/infer", body)[0] == 404
        published = store.publish(trained_artifacts, "BTCEUR")
        wait_until(lambda: http("POST", f"{srv.url}/v2/models/{NAME}/infer", body)[0] == 200, 30, 0.2,
                   what=f"{NAME} served after its first publish")
        status, answer = http("POST", f"{srv.url}/v2/models/{NAME}/infer", body)
        assert status == 200 and answer["model_version"] == published.version
        names = {m["model"] for m in http("GET", f"{srv.url}/mkrich/status")[1]["models"]}
        assert names == {"btcusdt-close", NAME}
        assert http("GET", f"{srv.url}/v2/health/ready")[0] == 200
    finally:
        srv.stop()


def reload_metrics(symbol: str) -> dict[str, float]:
    """``mkrich_reload_loop_state`` of ``symbol`` as the process's /metrics would expose it."""
    from prometheus_client import REGISTRY, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    import make_us_rich.serving.metrics  # noqa: F401 - registers the collector

    return {s.labels["state"]: s.value
            for family in text_string_to_metric_families(generate_latest(REGISTRY).decode())
            for s in family.samples
            if s.name == "mkrich_reload_loop_state" and s.labels["symbol"] == symbol}


def test_a_poll_that_hangs_is_reported_stalled_then_recovers(tmp_path, trained_artifacts):
    """In process, on a real local store whose latest.json is swapped for a FIFO: reading it
    blocks like a store that stopped answering."""
    from make_us_rich.serving.predictor import ForecastModel

    path = tmp_path / "store"
    store = ModelStore(path)
    store.publish(trained_artifacts, "BTCEUR")
    latest = path / "models" / "BTCEUR" / "latest.json"
    good = latest.read_bytes()
    model = ForecastModel("BTCEUR", store, reload_interval=0.05, stall_after=0.3)
    model.load()
    assert model.reload_state() == "off"
    model.start_watcher()
    try:
        fifo = latest.with_name("fifo")
        os.mkfifo(fifo)
        os.replace(fifo, latest)
        wait_until(lambda: model.reload_state() == "stalled", 10, 0.05, what="the reload loop stalled")
        assert model.status()["reload"]["state"] == "stalled"
        assert reload_metrics("BTCEUR") == {"running": 0, "stalled": 1, "dead": 0}
        (latest.parent / "tmp").write_bytes(good)
        writer = os.open(latest, os.O_WRONLY)  # the poll is blocked opening it for reading
        os.replace(latest.parent / "tmp", latest)
        os.write(writer, good)
        os.close(writer)
        wait_until(lambda: model.reload_state() == "running", 10, 0.05, what="the reload loop running again")
        assert model.reload_state() == "running" and model.last_reload_error is None
        assert reload_metrics("BTCEUR") == {"running": 1, "stalled": 0, "dead": 0}
    finally:
        model.stop()
    assert reload_metrics("BTCEUR") == {}  # a stopped loop exports no state


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the kill itself
def test_a_reload_thread_that_dies_is_reported_dead(tmp_path, trained_artifacts):
    """The loop survives every Exception; what can still end the thread (a BaseException raised
    into it asynchronously, here SystemExit) must show as ``dead``, not as a silent stale model."""
    import ctypes

    from make_us_rich.serving.predictor import ForecastModel

    store = ModelStore(tmp_path / "store")
    store.publish(trained_artifacts, "BTCEUR")
    model = ForecastModel("BTCEUR", store, reload_interval=0.05)
    model.load()
    model.start_watcher()
    try:
        assert model.reload_state() == "running"
        thread = model.reloader.thread
        assert ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(SystemExit)) == 1
        thread.join(timeout=10)
        assert not thread.is_alive()
        assert model.reload_state() == "dead" and model.status()["reload"]["state"] == "dead"
        assert reload_metrics("BTCEUR") == {"running": 0, "stalled": 0, "dead": 1}  # MkrichReloadLoopDown
    finally:
        model.stop()
    assert model.reload_state() != "dead"  # a stopped model is not reported dead


def test_a_store_error_while_loading_a_new_version_is_retried(tmp_path, trained_artifacts):
    """A new version whose model cannot be read yet (store hiccup) is loaded at a later poll;
    a version whose model is broken is refused once and not reloaded at every poll."""
    from make_us_rich.serving.predictor import ForecastModel

    store = ModelStore(tmp_path / "store")
    first = store.publish(trained_artifacts, "BTCEUR")
    model = ForecastModel("BTCEUR", store, reload_interval=0)
    model.load()
    second = store.publish(trained_artifacts, "BTCEUR")
    key = f"models/BTCEUR/{second.version}/model.onnx"
    onnx = store.backend.get(key)
    store.backend.delete([key])
    assert not model.check_for_update() and "no object" in model.last_reload_error
    store.backend.put(key, onnx)
    assert model.check_for_update() and model.current.version == second.version
    assert model.last_reload_error is None and first.version != second.version

    third = store.publish(trained_artifacts, "BTCEUR")
    pointer = store.latest("BTCEUR")
    store.backend.put(f"models/BTCEUR/{third.version}/model.onnx", b"not onnx")
    pointer["checksums"]["model.onnx"] = _sha256(b"not onnx")
    store.backend.put("models/BTCEUR/latest.json", json.dumps(pointer).encode())
    assert not model.check_for_update() and "refused version" in model.last_reload_error
    assert not model.check_for_update() and model.poll_failures == 2  # no reload attempt
    assert model.current.version == second.version and model._refused[0] == pointer


def test_unsupported_routes_answer_quietly_one_line_each_at_most(server, windows):
    """Issue 19 #3: versioned routes and :explain made KServe log a traceback per request
    (100 requests -> 1,630 lines); unknown routes and wrong methods are refused alike."""
    before = len(server.log.read_text().splitlines())
    body = v2_request(windows)
    cases = [
        ("GET", f"/v2/models/{NAME}/versions/1", None, {}, 501, "versions are not addressable"),
        ("GET", f"/v2/models/{NAME}/versions/1/ready", None, {}, 501, "versions are not addressable"),
        ("POST", f"/v2/models/{NAME}/versions/1/infer", body, AUTH, 501, "versions are not addressable"),
        ("POST", f"/v1/models/{NAME}:explain", {"instances": windows.tolist()}, AUTH, 501, "no explainer"),
        ("GET", "/v3/anything", None, {}, 404, "no such route"),
        ("DELETE", f"/v2/models/{NAME}", None, {}, 405, "not allowed; use GET"),
    ]
    n = 0
    for method, path, payload, headers, status, message in cases * 5:
        got, answer = http(method, server.url + path, payload, headers=headers)
        assert got == status and message in answer["error"], (path, got, answer)
        n += 1
    lines = server.log.read_text().splitlines()[before:]
    assert not any("Traceback" in line or "NotImplementedError" in line for line in lines), lines[:20]
    assert len(lines) <= n
    assert infer(server, windows)[0] == 200
    assert http("GET", f"{server.url}/v2/models/{NAME}")[0] == 200


def metric_value(url: str, name: str, **labels: str) -> float | None:
    """One sample of the server's /metrics (Prometheus text format), or None."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def test_a_store_moved_away_while_serving_is_reported_then_recovers(tmp_path, trained_artifacts, windows):
    """Issue 19 #6: after `mv store store.gone` the server kept answering (good) but reported
    nothing: a missing latest.json was taken for "no change"."""
    path = tmp_path / "store"
    first = ModelStore(path).publish(trained_artifacts, "BTCEUR")
    srv = Server(path, {"MKRICH_SERVING_TOKEN": TOKEN})

    def model_status():
        return http("GET", f"{srv.url}/mkrich/status", headers=AUTH)[1]["models"][0]

    def wait_for(predicate):
        return wait_until(lambda: current if predicate(current := model_status()) else None, 20, 0.1,
                          what=lambda: f"status never matched: {model_status()}")

    try:
        failures = metric_value(srv.url, "mkrich_model_reload_failures_total", symbol="BTCEUR")
        assert failures == 0
        path.rename(tmp_path / "store.gone")
        model = wait_for(lambda m: m["last_reload_error"] is not None)
        assert "no latest.json for BTCEUR" in model["last_reload_error"] and model["version"] == first.version
        wait_for(lambda m: m["reload"]["failures"] >= 3)
        assert metric_value(srv.url, "mkrich_model_reload_failures_total", symbol="BTCEUR") >= 3
        assert metric_value(srv.url, "mkrich_model_reload_failing", symbol="BTCEUR") == 1
        assert srv.infer(windows, headers=AUTH)[0] == 200  # still serving the model it holds
        assert srv.log.read_text().count("no latest.json for BTCEUR") == 1  # one line per cause
        (tmp_path / "store.gone").rename(path)
        wait_for(lambda m: m["last_reload_error"] is None)
        assert metric_value(srv.url, "mkrich_model_reload_failing", symbol="BTCEUR") == 0
        assert "reload recovered" in srv.log.read_text()
    finally:
        srv.stop()


def test_status_keeps_the_store_internals_for_the_token(tmp_path, trained_artifacts, s3_env):
    """Issue 19 #9: the open /mkrich/status showed the store path and the S3 endpoint in its
    error text. Anonymous callers get the error's kind; the token holder the full text."""
    path = tmp_path / "store"
    ModelStore(path).publish(trained_artifacts, "BTCEUR")
    srv = Server(path, {"MKRICH_SERVING_TOKEN": TOKEN})
    try:
        (path / "models" / "BTCEUR" / "latest.json").write_bytes(b"not json")
        wait_until(lambda: http("GET", f"{srv.url}/mkrich/status")[1]["models"][0]["last_reload_error"], 20, 0.1,
                   what="a reload error in /mkrich/status")
        full = http("GET", f"{srv.url}/mkrich/status", headers=AUTH)[1]
        assert full["store"] == str(path) and str(path) in full["models"][0]["last_reload_error"]
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            status, anonymous = http("GET", f"{srv.url}/mkrich/status", headers=headers)
            assert status == 200 and "store" not in anonymous and str(tmp_path) not in json.dumps(anonymous)
            model = anonymous["models"][0]
            assert model["last_reload_error"] == "the model store's latest pointer is malformed"
            assert model["version"] == full["models"][0]["version"] and model["reload"]["state"] == "running"
        assert str(path) in srv.log.read_text()  # the operator's side keeps the details
    finally:
        srv.stop()
    # an S3 store emptied while serving: its bucket stays out of the anonymous answer too
    store = ModelStore(f"s3://{s3_env}/status")
    store.publish(trained_artifacts, "BTCEUR")
    env = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                      "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")}
    srv = Server(f"s3://{s3_env}/status", {**env, "MKRICH_SERVING_TOKEN": TOKEN})
    try:
        store.backend.delete(store.backend.list("models"))
        wait_until(lambda: http("GET", f"{srv.url}/mkrich/status")[1]["models"][0]["last_reload_error"], 20, 0.1,
                   what="a reload error in /mkrich/status")
        anonymous = json.dumps(http("GET", f"{srv.url}/mkrich/status")[1])
        assert s3_env not in anonymous and "the model store cannot be read" in anonymous
        assert f"s3://{s3_env}/status" in json.dumps(http("GET", f"{srv.url}/mkrich/status", headers=AUTH)[1])
    finally:
        srv.stop()


def test_slow_headers_are_cut_off_with_408(store_dir, windows):
    """Issue 19 #7: 500 connections trickling headers were all still open after 70 s. Here a
    handful, with --header-timeout 1: each trickles a header byte every 0.2 s (or sends
    nothing) and must be answered 408 and closed within 15 s."""
    import select

    srv = Server(store_dir, None, "--header-timeout", "1")

    def slowloris(first: bytes, results: list, index: int) -> None:
        deadline = time.time() + 15
        answer = b""
        try:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
                sock.sendall(first)
                while time.time() < deadline:
                    if select.select([sock], [], [], 0.2)[0]:  # the server spoke: read to EOF
                        while chunk := sock.recv(4096):
                            answer += chunk
                        results[index] = answer or b"closed"
                        return
                    if first:
                        sock.sendall(b"X")  # one more byte of a header that never ends
        except (ConnectionResetError, BrokenPipeError):  # closed while we were still sending
            results[index] = answer or b"reset"
            return
        results[index] = b"still open"

    try:
        firsts = [b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nX-Slow: "] * 4 + [b"POST /v2/mod", b""]
        results: list = [None] * len(firsts)
        threads = [threading.Thread(target=slowloris, args=(f, results, i)) for i, f in enumerate(firsts)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert "still open" not in [r.decode() for r in results], results
        assert all(r.startswith(b"HTTP/1.1 408") or r == b"reset" for r in results), results
        assert results[-1].startswith(b"HTTP/1.1 408")  # silent: nothing was being sent
        assert b"request headers not received within 1 s" in results[-1]
        assert "rejected - (request line and headers incomplete): 408" in srv.log.read_text()
        # a prompt client on a kept-alive connection is not cut off between its requests
        conn = HTTPConnection("127.0.0.1", srv.port, timeout=10)
        for _ in range(3):
            conn.request("POST", f"/v2/models/{NAME}/infer", json.dumps(v2_request(windows)),
                         {"Content-Type": "application/json"})
            response = conn.getresponse()
            assert response.status == 200, response.read()
            response.read()
            time.sleep(0.6)  # 1.8 s in all on one connection: more than the header timeout
        conn.close()
    finally:
        srv.stop()


def test_absurd_windows_are_refused_and_never_reach_the_metrics(server, windows):
    """Issue 19 #4: a valid window x 1e5 was answered 200 with quantiles [0, 0, 9.98e12, null,
    null], and mkrich_forecast_close{quantile="0.5"} was +Inf afterwards."""
    from make_us_rich import contract

    assert infer(server, windows)[0] == 200
    before = {q: metric_value(server.url, "mkrich_forecast_close", symbol="BTCEUR", quantile=q)
              for q in ("0.05", "0.5", "0.95")}
    served = metric_value(server.url, "mkrich_predictions_total", symbol="BTCEUR")
    volatile = windows.copy()
    volatile[..., contract.FEATURES.index("log_return"):] *= 1e5  # calendar and prices intact
    for bad, message in [(windows * 1e5, "'hour' must be a whole number from 0 to 23"),
                         (volatile, "is not finite"), (windows * -1, "'open' must be > 0")]:
        status, answer = infer(server, bad)
        assert status == 400 and message in answer["error"], (status, answer)
        status, answer = http("POST", f"{server.url}/v1/models/{NAME}:predict", {"instances": bad.tolist()},
                              headers=AUTH)
        assert status == 400 and message in answer["error"], (status, answer)
    after = {q: metric_value(server.url, "mkrich_forecast_close", symbol="BTCEUR", quantile=q) for q in before}
    assert after == before and all(np.isfinite(v) for v in after.values())
    assert metric_value(server.url, "mkrich_predictions_total", symbol="BTCEUR") == served
    assert "Traceback" not in server.log.read_text()


@pytest.fixture(scope="module")
def short_window_artifacts(tmp_path_factory, tiny_config):
    """A real BTCEUR model of another serving contract: 6 h windows instead of 12."""
    pytest.importorskip("tensorflow")
    from dataclasses import replace

    from make_us_rich.workflow import train_symbol

    out = tmp_path_factory.mktemp("artifacts") / "btceur-6h"
    train_symbol("sample", "BTCEUR", out, replace(tiny_config, sequence_length=6), days=75, gate_tolerance=10.0)
    return out


def test_a_publish_with_another_contract_never_breaks_running_clients(
    tmp_path, trained_artifacts, short_window_artifacts, windows
):
    """Issue 19 #2: a model with shorter windows passed the gate, was promoted and hot-swapped;
    58 % of a watcher's requests then answered 400 and readiness stayed true. Now the gate
    refuses it; allowed explicitly, it is promoted but the running server keeps the model its
    clients use and says why, until a restart serves the new contract."""
    path = tmp_path / "store"
    store = ModelStore(path)
    first = store.publish(trained_artifacts, "BTCEUR")
    srv = Server(path, {"MKRICH_SERVING_TOKEN": TOKEN})
    answers: list = []
    stop = threading.Event()

    def watcher():
        while not stop.is_set():
            answers.append(srv.infer(windows, headers=AUTH)[0])
            time.sleep(0.02)

    def model_status():
        return http("GET", f"{srv.url}/mkrich/status", headers=AUTH)[1]["models"][0]

    thread = threading.Thread(target=watcher)
    thread.start()
    try:
        refused = store.publish(short_window_artifacts, "BTCEUR")
        assert refused.status == "rejected" and "serving contract differs" in refused.reasons[-1]
        assert store.latest("BTCEUR")["version"] == first.version
        allowed = store.publish(short_window_artifacts, "BTCEUR", allow_contract_change=True)
        assert allowed.latest and allowed.contract_changes
        wait_until(lambda: model_status()["last_reload_error"], 20, 0.1, what="the contract change refused")
        model = model_status()
        assert f"refused version {allowed.version}: its serving contract differs" in model["last_reload_error"]
        assert model["version"] == first.version
        anonymous = http("GET", f"{srv.url}/mkrich/status")[1]["models"][0]["last_reload_error"]
        assert anonymous == f"version {allowed.version} has another serving contract: it is served after a restart"
        assert metric_value(srv.url, "mkrich_model_reload_failing", symbol="BTCEUR") == 1
        time.sleep(1)  # a few more polls: still refused, logged once
        stop.set()
        thread.join()
        assert answers and set(answers) == {200}, sorted(set(answers))
        assert http("GET", f"{srv.url}/v2/models/{NAME}")[1]["inputs"][0]["shape"] == [-1, 12, 21]
        assert srv.log.read_text().count("serving contract differs") == 1
    finally:
        stop.set()
        thread.join()
        srv.stop()
    srv = Server(path, {"MKRICH_SERVING_TOKEN": TOKEN})  # the deliberate step: a restart (a rollout)
    try:
        assert http("GET", f"{srv.url}/v2/models/{NAME}")[1]["inputs"][0]["shape"] == [-1, 6, 21]
        status, answer = srv.infer(windows, headers=AUTH)
        assert status == 400 and "expected shape [batch, 6, 21]" in answer["error"]
        status, answer = srv.infer(windows[:, -6:], headers=AUTH)
        assert status == 200 and answer["model_version"] == allowed.version
    finally:
        srv.stop()
