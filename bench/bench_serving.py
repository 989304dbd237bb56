"""Benchmark: the KServe server (``python -m make_us_rich.serving``) under bounded concurrent load
from a second process on loopback, beside in-process onnxruntime on the same input, same run.

HTTP overhead = server p50 - in-process p50. Scenarios: sequential JSON and binary (v2 binary
tensor extension), 100 req/s paced, closed loop with 8 and 32 clients. Peak RSS of the server
from /proc. The model is the default preset trained for one epoch on the bundled sample
(latency does not depend on training).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from common import machine, save, timeit
from make_us_rich.testing import free_port

HERE = Path(__file__).resolve().parent


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(url: str, **kw) -> dict:
    from make_us_rich import contract
    from make_us_rich.training import TrainConfig

    args = [sys.executable, str(HERE / "load_client.py"), "--url", url,
            "--seq-len", str(TrainConfig().sequence_length), "--features", str(len(contract.FEATURES))]
    for k, v in kw.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from make_us_rich.inference import onnx_session, predict
    from make_us_rich.store import ModelStore
    from make_us_rich.training import preset
    from make_us_rich.workflow import train_symbol

    work = Path(tempfile.mkdtemp(prefix="mkrich-bench-"))
    train_symbol("sample", "BTCEUR", work / "model", preset("fast").with_overrides(max_epochs=1))
    store = ModelStore(work / "store")
    store.publish(work / "model", "BTCEUR")

    session = onnx_session((work / "model" / "model.onnx").read_bytes())
    from make_us_rich import contract

    window = np.ones((1, preset("fast").sequence_length, len(contract.FEATURES)), dtype=np.float32)
    inproc_ms = timeit(lambda: predict(session, window), 2000)[0] * 1e3

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "make_us_rich.serving", "--store", str(work / "store"),
         "--symbols", "BTCEUR", "--port", str(port), "--reload-interval", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{url}/v2/models/btceur-close/ready", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        scenarios = [
            ("sequential, JSON", dict(kind="json", concurrency=1, seconds=5)),
            ("sequential, binary tensor", dict(kind="binary", concurrency=1, seconds=5)),
            ("100 req/s paced, JSON", dict(kind="json", concurrency=2, rate=100, seconds=10)),
            ("8 clients, JSON", dict(kind="json", concurrency=8, seconds=5)),
            ("32 clients, JSON", dict(kind="json", concurrency=32, seconds=5)),
        ]
        results = []
        for label, kw in scenarios:
            r = load(url, **kw)
            r["label"] = label
            r["http_overhead_p50_ms"] = r["p50_ms"] - inproc_ms
            results.append(r)
        rss = peak_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)

    payload = {"benchmark": "serving", "inprocess_onnxruntime_p50_ms": inproc_ms,
               "scenarios": results, "server_peak_rss_mib": rss, "machine": machine()}
    path = save("serving", payload)
    m = payload["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores (client and server share them)")
    print(f"in-process onnxruntime, batch 1: {inproc_ms:.3f} ms (median)")
    print(f"  {'scenario':<28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'overhead p50':>13} {'errors':>6}")
    for r in results:
        print(f"  {r['label']:<28} {r['throughput_rps']:>8.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
              f"{r['http_overhead_p50_ms']:>13.2f} {r['errors']:>6}")
    print(f"server peak RSS: {rss:.0f} MiB  -> {path}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
