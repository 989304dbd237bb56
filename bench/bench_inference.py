"""Benchmark: inference latency of one window and of a batch of 64, onnxruntime vs Keras
``model.predict`` vs a direct Keras call, same run, medians. Default (fast) and large configs,
untrained weights (latency does not depend on training)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd

from common import machine, save, shared_data, timeit
from make_us_rich import contract
from make_us_rich.data import read_klines_csv, validate_klines
from make_us_rich.inference import onnx_session
from make_us_rich.preprocessing import preprocess, raw_windows, split_data
from make_us_rich.training import preset
from make_us_rich.training.export import to_onnx
from make_us_rich.training.model import build_model


def bench(name: str, klines: pd.DataFrame) -> dict:
    cfg = preset(name)
    prep = preprocess(klines, cfg.sequence_length)
    target = prep.feature_names.index("close")
    model = build_model(cfg, prep.X_train.shape[2], target)
    X_raw, _, _ = raw_windows(split_data(prep.features, cfg.test_size)[1], cfg.sequence_length)
    session = onnx_session(to_onnx(model, prep.scaler, target))
    out = {"preset": name}
    for batch in (1, 64):
        raw = np.ascontiguousarray(X_raw[:batch])
        scaled = np.ascontiguousarray(prep.X_test[:batch])
        model.predict(scaled, verbose=0)
        model(scaled, training=False)
        session.run(None, {contract.INPUT_NAME: raw})
        reps = 200 if batch == 1 else 50
        feed = {contract.INPUT_NAME: raw}
        out[f"onnx_b{batch}_ms"] = timeit(lambda f=feed: session.run(None, f), reps)[0] * 1e3
        out[f"keras_predict_b{batch}_ms"] = (
            timeit(lambda x=scaled: model.predict(x, verbose=0), 20)[0] * 1e3
        )
        out[f"keras_call_b{batch}_ms"] = timeit(lambda x=scaled: model(x, training=False), 20)[0] * 1e3
        out[f"speedup_vs_predict_b{batch}"] = out[f"keras_predict_b{batch}_ms"] / out[f"onnx_b{batch}_ms"]
    return out


def main() -> None:
    k = read_klines_csv(shared_data("BTCUSDT_1h_until_2023.csv.gz"))
    k, _ = validate_klines(k[k["timestamp"] >= pd.Timestamp("2023-01-01", tz="UTC")])
    results = [bench("fast", k), bench("large", k)]
    payload = {"benchmark": "inference", "results": results, "machine": machine()}
    path = save("inference", payload)
    m = payload["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores")
    for r in results:
        for b in (1, 64):
            print(f"  {r['preset']:<5} batch {b:>2}: onnxruntime {r[f'onnx_b{b}_ms']:.3f} ms, "
                  f"keras predict {r[f'keras_predict_b{b}_ms']:.1f} ms, "
                  f"keras call {r[f'keras_call_b{b}_ms']:.1f} ms -> ONNX "
                  f"{r[f'speedup_vs_predict_b{b}']:.0f}x faster than predict")
    print(f"  -> {path}")


if __name__ == "__main__":
    main()
