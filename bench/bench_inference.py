"""Benchmark: inference latency of one window and of a batch of 64 for the quantile forecaster,
onnxruntime vs Keras ``model.predict`` vs a direct Keras call, same run, medians. Default
config, untrained weights (latency does not depend on training); real windows of BTCUSDT 2023."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd

from common import machine, save, shared_data, timeit
from make_us_rich import contract
from make_us_rich.data import read_klines_csv, validate_klines
from make_us_rich.inference import onnx_session
from make_us_rich.preprocessing import build_features
from make_us_rich.preprocessing.windows import fit_input_scaler, make_quantile_windows
from make_us_rich.training import TrainConfig
from make_us_rich.training import quantile_model as qm
from make_us_rich.training.export import to_onnx


def main() -> None:
    k = read_klines_csv(shared_data("BTCUSDT_1h_until_2023.csv.gz"))
    k, _ = validate_klines(k[k["timestamp"] >= pd.Timestamp("2023-01-01", tz="UTC")])
    features = build_features(k)
    cfg = TrainConfig()
    w = make_quantile_windows(features, cfg.sequence_length)
    har = qm.fit_har(features[list(contract.FEATURES)]) if cfg.blend_har else None
    model = qm.build_quantile_model(cfg, fit_input_scaler(w.X, cfg.inputs), w.y / w.norm_vol, har).serving
    session = onnx_session(to_onnx(model))
    out = {"config": cfg.to_dict()}
    for batch in (1, 64):
        x = np.ascontiguousarray(w.X[-batch:])
        feed = {contract.INPUT_NAME: x}
        session.run(None, feed)
        model.predict(x, verbose=0)
        model(x, training=False)
        out[f"onnx_b{batch}_ms"] = timeit(lambda f=feed: session.run(None, f), 200 if batch == 1 else 50)[0] * 1e3
        out[f"keras_predict_b{batch}_ms"] = timeit(lambda x=x: model.predict(x, verbose=0), 20)[0] * 1e3
        out[f"keras_call_b{batch}_ms"] = timeit(lambda x=x: model(x, training=False), 20)[0] * 1e3
        out[f"speedup_vs_predict_b{batch}"] = out[f"keras_predict_b{batch}_ms"] / out[f"onnx_b{batch}_ms"]
    payload = {"benchmark": "inference", "results": out, "machine": machine()}
    path = save("inference", payload)
    m = payload["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores")
    for b in (1, 64):
        print(f"  batch {b:>2}: onnxruntime {out[f'onnx_b{b}_ms']:.3f} ms, keras predict "
              f"{out[f'keras_predict_b{b}_ms']:.1f} ms, keras call {out[f'keras_call_b{b}_ms']:.1f} ms "
              f"-> ONNX {out[f'speedup_vs_predict_b{b}']:.0f}x faster than predict")
    print(f"  -> {path}")


if __name__ == "__main__":
    main()
