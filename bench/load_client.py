"""Load generator for bench_serving.py, run as its own process (a second process on loopback).

Each worker thread holds one keep-alive HTTP/1.1 connection. ``--rate`` paces requests (open
loop, per worker), otherwise each worker sends as fast as answers come back (closed loop).
Bounded in count and time; prints one JSON line of results.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from urllib.parse import urlsplit

import numpy as np


def body_for(kind: str, seq_len: int, n_features: int) -> tuple[bytes, dict[str, str]]:
    window = np.ones((1, seq_len, n_features), dtype=np.float32)
    if kind == "json":
        payload = {"inputs": [{"name": "window", "shape": [1, seq_len, n_features],
                               "datatype": "FP32", "data": window.reshape(-1).tolist()}]}
        return json.dumps(payload).encode(), {"Content-Type": "application/json"}
    raw = window.tobytes()
    header = json.dumps({"inputs": [{"name": "window", "shape": [1, seq_len, n_features], "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    return header + raw, {"Content-Type": "application/octet-stream",
                          "Inference-Header-Content-Length": str(len(header))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", default="btceur-close")
    ap.add_argument("--kind", choices=("json", "binary"), default="json")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--rate", type=float, default=0.0, help="requests/s in total (0: closed loop)")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--max-requests", type=int, default=50_000)
    ap.add_argument("--seq-len", type=int, default=48)
    ap.add_argument("--features", type=int, default=21)
    args = ap.parse_args()
    parts = urlsplit(args.url)
    path = f"/v2/models/{args.model}/infer"
    body, headers = body_for(args.kind, args.seq_len, args.features)
    per_worker = args.max_requests // args.concurrency
    interval = args.concurrency / args.rate if args.rate else 0.0
    latencies: list[list[float]] = [[] for _ in range(args.concurrency)]
    errors = [0] * args.concurrency
    start_at = time.perf_counter() + 0.2
    deadline = start_at + args.seconds

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        for _ in range(20):  # warm-up, not measured
            conn.request("POST", path, body, headers)
            conn.getresponse().read()
        next_at = start_at + (interval * i / args.concurrency if interval else 0)
        for _ in range(per_worker):
            now = time.perf_counter()
            if interval:
                if next_at > now:
                    time.sleep(next_at - now)
                next_at += interval
            if time.perf_counter() >= deadline:
                break
            t0 = time.perf_counter()
            conn.request("POST", path, body, headers)
            response = conn.getresponse()
            response.read()
            latencies[i].append(time.perf_counter() - t0)
            if response.status != 200:
                errors[i] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = min(time.perf_counter(), deadline) - start_at
    lat = np.concatenate([np.asarray(x) for x in latencies]) * 1e3
    print(json.dumps({
        "kind": args.kind, "concurrency": args.concurrency, "target_rate": args.rate,
        "requests": int(lat.size), "errors": int(sum(errors)), "seconds": elapsed,
        "throughput_rps": lat.size / elapsed if elapsed > 0 else 0.0,
        "p50_ms": float(np.percentile(lat, 50)), "p90_ms": float(np.percentile(lat, 90)),
        "p99_ms": float(np.percentile(lat, 99)), "max_ms": float(lat.max()),
    }))


if __name__ == "__main__":
    main()
