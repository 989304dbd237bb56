"""Benchmark: one server for 100 symbols served by one universal model (issue 21 #6).

A tiny universal model is trained on the bundled sample (BTCEUR, BTCUSDT; latency and memory do
not depend on training), then 100 symbol names (copies of the two samples' first 2,000 hours
under other names) are evaluated, gated and published with it through the pipeline's own stage
(``evaluate_publish_stage``: the model stored once, 100 pointers naming it). Then, against the
real server (``python -m make_us_rich.serving``, a subprocess on loopback; the client is this
process):

* a single forecast: sequential requests of one real window to one symbol's URL, p50/p99;
* a batch of 100 symbols: 100 requests at once, one per symbol URL on its own keep-alive
  connection, p50/p99 of the time until the last answer; and the same 100 windows in one
  request to ``/v2/models/universal/infer``;
* resident memory of the server serving 100 symbols vs the same server serving 1 (ratio),
  and the onnxruntime sessions each holds (``/mkrich/status``).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from common import machine, save
from make_us_rich.testing import free_port

N_SYMBOLS = 100
ROWS = 2000
TINY = dict(sequence_length=12, lstm_units=8, batch_size=64, max_epochs=2, patience=1)


def rss_mib(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(line.split()[1]) / 1024
    return fields


def start_server(store: Path, symbols: list[str] | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "make_us_rich.serving", "--store", str(store), "--port", str(port),
           "--reload-interval", "0"]
    if symbols:
        cmd += ["--symbols", ",".join(symbols)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server not ready")


def body(windows: np.ndarray) -> bytes:
    return json.dumps({"inputs": [{"name": "window", "datatype": "FP32", "shape": list(windows.shape),
                                   "data": windows.ravel().tolist()}]}).encode()


def post(conn: http.client.HTTPConnection, path: str, payload: bytes) -> float:
    t0 = time.perf_counter()
    conn.request("POST", path, payload, {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}")
    return time.perf_counter() - t0


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {"n": int(ms.size), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def single(url: str, symbol: str, window: np.ndarray, n: int = 500) -> dict[str, float]:
    port = int(url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    path, payload = f"/v2/models/{symbol.lower()}-close/infer", body(window[None])
    for _ in range(20):
        post(conn, path, payload)
    return percentiles([post(conn, path, payload) for _ in range(n)])


def batch_of_requests(url: str, windows: dict[str, np.ndarray], rounds: int = 40) -> dict[str, float]:
    """100 requests at once, one per symbol (each on its own connection and thread)."""
    port = int(url.rsplit(":", 1)[1])
    symbols = list(windows)
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in symbols]
    payloads = [(f"/v2/models/{s.lower()}-close/infer", body(windows[s][None])) for s in symbols]
    start, done = threading.Barrier(len(symbols) + 1), threading.Barrier(len(symbols) + 1)
    errors: list[str] = []

    def client(i: int) -> None:
        for _ in range(rounds + 2):
            start.wait()
            try:
                post(conns[i], *payloads[i])
            except Exception as exc:
                errors.append(repr(exc))
            done.wait()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(len(symbols))]
    for t in threads:
        t.start()
    times = []
    for r in range(rounds + 2):
        t0 = time.perf_counter()
        start.wait()
        done.wait()
        if r >= 2:  # two warm-up rounds
            times.append(time.perf_counter() - t0)
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[0]}")
    return percentiles(times)


def one_request(url: str, windows: np.ndarray, n: int = 200) -> dict[str, float]:
    port = int(url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    payload = body(windows)
    for _ in range(10):
        post(conn, "/v2/models/universal/infer", payload)
    return percentiles([post(conn, "/v2/models/universal/infer", payload) for _ in range(n)])


def status(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/mkrich/status", timeout=10) as r:
        return json.loads(r.read())


def main() -> None:
    from make_us_rich import contract
    from make_us_rich.data import load_klines, write_klines_csv
    from make_us_rich.params import RunSpec
    from make_us_rich.stages import (
        evaluate_publish_stage,
        fetch_many_stage,
        read_table,
        run_universal,
    )
    from make_us_rich.store import ModelStore
    from make_us_rich.training.config import TrainConfig

    work = Path(tempfile.mkdtemp(prefix="mkrich-bench-universal-"))
    samples = {s: load_klines("sample", s)[0].iloc[:ROWS] for s in ("BTCEUR", "BTCUSDT")}
    two, many = work / "csv2", work / "csv100"
    two.mkdir()
    many.mkdir()
    for s, k in samples.items():
        write_klines_csv(k, two / f"{s}_1h.csv")
    names = [f"S{i:03d}USDT" for i in range(N_SYMBOLS)]
    for i, name in enumerate(names):
        shutil.copyfile(two / f"{list(samples)[i % 2]}_1h.csv", many / f"{name}_1h.csv")

    t0 = time.perf_counter()
    run_universal(f"csv:{two}", list(samples), work / "model", RunSpec(train=TrainConfig(**TINY)))
    trained = time.perf_counter() - t0
    t0 = time.perf_counter()
    fetch_many_stage(f"csv:{many}", names, work / "market", test_size=0.1)
    rows = evaluate_publish_stage(work / "model", work / "market", names, work / "eval", store_uri=str(work / "store"))
    published = time.perf_counter() - t0
    accepted = [s for s, r in rows.items() if (r.get("published") or {}).get("latest")]
    store = ModelStore(work / "store")
    served = store.symbols()
    store_bytes = sum(p.stat().st_size for p in (work / "store").rglob("*") if p.is_file())
    model_bytes = sum(p.stat().st_size for p in (work / "store" / "shared").rglob("*") if p.is_file())
    windows = {}
    for s in served:
        table = read_table(work / "market" / s / "features.csv")
        windows[s] = table[list(contract.FEATURES)].to_numpy(np.float32)[-TINY["sequence_length"]:]

    results: dict = {}
    one, url1 = start_server(work / "store", served[:1])
    try:
        time.sleep(1)
        results["one_symbol"] = {"rss_mib": rss_mib(one.pid), "sessions": status(url1)["sessions"],
                                 "single_forecast": single(url1, served[0], windows[served[0]])}
        results["one_symbol"]["rss_after_mib"] = rss_mib(one.pid)
    finally:
        one.terminate()
        one.wait(timeout=30)
    hundred, url = start_server(work / "store", None)
    try:
        time.sleep(1)
        results["all_symbols"] = {
            "symbols": len(served), "rss_mib": rss_mib(hundred.pid), "sessions": status(url)["sessions"],
            "single_forecast": single(url, served[0], windows[served[0]]),
            "batch_100_requests": batch_of_requests(url, windows),
            "batch_1_request_universal": one_request(url, np.stack([windows[s] for s in served])),
        }
        results["all_symbols"]["rss_after_mib"] = rss_mib(hundred.pid)
    finally:
        hundred.terminate()
        hundred.wait(timeout=30)
    ratio = results["all_symbols"]["rss_after_mib"]["VmRSS"] / results["one_symbol"]["rss_after_mib"]["VmRSS"]
    payload = {"benchmark": "serving_universal", "symbols": len(served), "accepted": len(accepted),
               "train_seconds": trained, "evaluate_publish_seconds": published,
               "store_bytes": store_bytes, "shared_model_bytes": model_bytes,
               "rss_ratio_100_vs_1": ratio, "results": results, "machine": machine(),
               "load": os.getloadavg()}
    path = save("serving_universal", payload)
    m = payload["machine"]
    a = results["all_symbols"]
    print(f"machine: {m['cpu']}, {m['cores']} cores (client and server share them); load {payload['load']}")
    print(f"{len(served)} symbols served by one model ({len(accepted)} accepted); evaluate+publish "
          f"{published:.0f} s; store {store_bytes / 2**20:.1f} MiB, of which the shared model "
          f"{model_bytes / 2**20:.2f} MiB")
    print(f"single forecast, 1 symbol served:   {results['one_symbol']['single_forecast']}")
    print(f"single forecast, {len(served)} symbols served: {a['single_forecast']}")
    print(f"batch of {len(served)} requests at once:     {a['batch_100_requests']}")
    print(f"{len(served)} windows in one request (universal): {a['batch_1_request_universal']}")
    print(f"RSS 1 symbol {results['one_symbol']['rss_after_mib']} MiB, {len(served)} symbols "
          f"{a['rss_after_mib']} MiB: ratio {ratio:.2f}; sessions {results['one_symbol']['sessions']} vs "
          f"{a['sessions']}  -> {path}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
