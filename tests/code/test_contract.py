"""The contract names every model input and output once. Adding an output is a change to the
contract and to the model: the test below adds one and everything that reads the contract
(signature check, inference, Triton config, model card section) follows without other edits."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from make_us_rich import contract
from make_us_rich.inference import (
    ModelSignatureError,
    check_signature,
    onnx_session,
    predict,
    predict_all,
)

L, F = 4, len(contract.FEATURES)


def _onnx_model(outputs: tuple[contract.Tensor, ...]) -> bytes:
    """A real ONNX model with the contract's input and the given outputs: each output is the
    last close times (1 + 0.01 k) for the k-th output."""
    import onnx
    from onnx import TensorProto, helper

    close = contract.FEATURES.index("close")
    nodes = [
        helper.make_node("Gather", ["window", "last"], ["last_row"], axis=1),
        helper.make_node("Gather", ["last_row", "close_idx"], ["close"], axis=1),
        helper.make_node("Unsqueeze", ["close", "one"], ["close_col"]),
    ]
    inits = [
        helper.make_tensor("last", TensorProto.INT64, [], [-1]),
        helper.make_tensor("close_idx", TensorProto.INT64, [], [close]),
        helper.make_tensor("one", TensorProto.INT64, [1], [1]),
    ]
    for k, t in enumerate(outputs):
        inits.append(helper.make_tensor(f"f{k}", TensorProto.FLOAT, [], [1 + 0.01 * k]))
        nodes.append(helper.make_node("Mul", ["close_col", f"f{k}"], [t.name]))
    graph = helper.make_graph(
        nodes, "contract",
        [helper.make_tensor_value_info("window", TensorProto.FLOAT, ["batch", L, F])],
        [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, ["batch", 1]) for t in outputs],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", contract.OPSET)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _windows(n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(1, 2, size=(n, L, F)).astype(np.float32)


def test_todays_contract_round_trips():
    session = onnx_session(_onnx_model(contract.OUTPUTS))
    check_signature(session, L, F)
    X = _windows()
    np.testing.assert_allclose(predict(session, X)[:, 0], X[:, -1, contract.FEATURES.index("close")])
    assert contract.OUTPUTS[0].name == contract.OUTPUT_NAME


def test_adding_an_output_is_a_change_to_the_contract_and_the_model_only(monkeypatch):
    extra = contract.Tensor("next_close_high", (-1, 1), "a second forecast")
    outputs = (*contract.OUTPUTS, extra)
    monkeypatch.setattr(contract, "OUTPUTS", outputs)
    monkeypatch.setattr(contract, "OUTPUT_NAMES", tuple(t.name for t in outputs))

    old_model = onnx_session(_onnx_model(outputs[:-1]))
    with pytest.raises(ModelSignatureError, match="next_close_high"):
        check_signature(old_model, L, F)  # a model without the new output is refused

    session = onnx_session(_onnx_model(outputs))
    check_signature(session, L, F)
    got = predict_all(session, _windows())
    assert list(got) == [*(t.name for t in outputs[:-1]), "next_close_high"]
    np.testing.assert_allclose(got["next_close_high"], got["next_close"] * (1 + 0.01 * (len(outputs) - 1)), rtol=1e-6)

    config = contract.triton_config("btceur-close", L, F, "{ latest: { num_versions: 1 } }")
    assert 'name: "next_close_high" data_type: TYPE_FP32 dims: [ -1, 1 ]' in config
    card = contract.signature(L, F)
    assert [o["name"] for o in card["outputs"]] == [*(t.name for t in outputs[:-1]), "next_close_high"]
    assert card["input"]["shape"] == [-1, L, F]


def test_triton_config_of_todays_contract():
    text = contract.triton_config("btceur-close", 24, F, "{ latest: { num_versions: 1 } }")
    assert f'name: "window" data_type: TYPE_FP32 dims: [ -1, 24, {F} ]' in text
    assert 'name: "next_close" data_type: TYPE_FP32 dims: [ -1, 1 ]' in text
    assert text.startswith('name: "btceur-close"\nplatform: "onnxruntime_onnx"\n')


def test_model_scores_read_once_from_the_metrics_block():
    """The typed record of a model's test scores: what metrics.json's ``test`` holds, read with
    None for a missing part and a clear error for a part of the wrong type."""
    from make_us_rich.contract import ModelScores

    test = {"n": 720, "period": ["2023-10-01", "2023-10-31"],
            "model": {"mean_pinball": 0.21, "intervals": {"90": {"coverage": 0.9}, "50": {"coverage": 0.52}}},
            "ratio": {"pinball_vs_empirical": 0.97, "pinball_vs_garch_t": 0.99, "median_rmse_vs_persistence": 1.0},
            "baselines": {"empirical": {"mean_pinball": 0.22}, "har": {}}}
    scores = ModelScores.of(test)
    assert (scores.n, scores.coverage90, scores.coverage50, scores.pinball_vs_empirical) == (720, 0.9, 0.52, 0.97)
    assert scores.pinball_vs_har is None and scores.rmse_vs_persistence == 1.0
    assert dict(scores.baselines) == {"empirical": 0.22, "har": None}
    assert scores.period == ("2023-10-01", "2023-10-31")
    assert ModelScores.of(None) == ModelScores() == ModelScores.of({})
    with pytest.raises(ValueError, match=r"metrics test.ratio is list, not an object"):
        ModelScores.of({"ratio": [0.97]})
    with pytest.raises(ValueError, match=r"ratio.pinball_vs_empirical is '0.97', not a number"):
        ModelScores.of({"ratio": {"pinball_vs_empirical": "0.97"}})


VERSION = "20240101T000000.000000Z-0123abcd"


def test_pointer_reads_old_and_new_stores():
    """``latest.json`` as typed record: a pointer of an early store (only the keys the server
    needs) reads with the later keys empty; a key this record does not name yet stays in ``raw``."""
    from make_us_rich.contract import MODEL_FILE, Pointer

    old = {"symbol": "BTCEUR", "version": VERSION, "checksums": {MODEL_FILE: "ab"}, "sequence_length": 48,
           "features": ["open", "close"]}
    p = Pointer.of(old)
    assert (p.symbol, p.version, p.sequence_length, p.features) == ("BTCEUR", VERSION, 48, ("open", "close"))
    assert p.triton_version is None and p.shared is None and p.promoted == () and p.scores.n is None
    new = {**old, "triton_version": 3, "shared": VERSION, "shared_files": [MODEL_FILE], "promoted": [VERSION],
           "metrics": {"n": 24, "ratio": {"pinball_vs_empirical": 0.98}}, "horizons": [1, 4]}
    p = Pointer.of(new)
    assert (p.triton_version, p.shared, p.shared_files, p.promoted) == (3, VERSION, (MODEL_FILE,), (VERSION,))
    assert p.scores.pinball_vs_empirical == 0.98 and p.raw["horizons"] == [1, 4]
    assert p.horizon_axis == p.horizons == ()  # no horizon_axis: a model of the next hour only
    p = Pointer.of({**new, "horizon_axis": [1, 4, 24], "horizons": [4, 1]})
    assert (p.horizon_axis, p.horizons) == ((1, 4, 24), (1, 4))  # served, in the model's row order
    for bad, message in [({**old, "version": "../x"}, "'version' is '../x', not a version name"),
                         ({**old, "checksums": {}}, f"'checksums' lacks {MODEL_FILE}"),
                         ({**old, "sequence_length": True}, "'sequence_length' is True"),
                         ({**old, "features": []}, "'features' is not a non-empty list"),
                         ({**old, "triton_version": "3"}, "'triton_version' is '3', not a whole number"),
                         ({**old, "metrics": [1]}, "'metrics' is list, not an object"),
                         ({**old, "horizon_axis": [1, 4], "horizons": [1, 24]}, "are not all in its horizon_axis"),
                         ({**old, "horizon_axis": [4, 24], "horizons": [4]}, "not a list of distinct whole hours including 1"),
                         ([old], "not a JSON object")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            Pointer.of(bad)


def test_manifest_and_model_card_records():
    from make_us_rich.contract import Manifest, ModelCard, StoredFile

    manifest = {"symbol": "BTCEUR", "version": VERSION, "status": "rejected",
                "gate": {"passed": False, "reasons": ["coverage 0.70 below 0.85"]},
                "files": {"model.onnx": {"sha256": "ab", "size": 10}, "scaler.pkl": {"sha256": "cd", "shared": VERSION}},
                "metrics": {"n": 5}}
    m = Manifest.of(manifest)
    assert (m.status, m.gate.passed, m.gate.reasons) == ("rejected", False, ("coverage 0.70 below 0.85",))
    assert m.files["scaler.pkl"] == StoredFile(sha256="cd", shared=VERSION) and m.scores.n == 5
    assert m.triton_version is None and m.contract_changes == ()
    with pytest.raises(ValueError, match="'status' is 'maybe', not one of accepted, rejected, incomplete"):
        Manifest.of({**manifest, "status": "maybe"})
    with pytest.raises(ValueError, match=r"'files.model.onnx.sha256' is None, not a string"):
        Manifest.of({**manifest, "files": {"model.onnx": {"size": 1}}})

    per_symbol = ModelCard.of({"symbol": "BTCEUR", "sequence_length": 48, "hyperparameters": {"lstm_units": 32}})
    assert not per_symbol.is_universal and per_symbol.trained_on == ("BTCEUR",)
    universal = ModelCard.of({"kind": "universal", "symbol": None, "symbols": ["BTCEUR", "ETHUSDT"],
                              "horizons": [1, 4, 24]})
    assert universal.is_universal and universal.trained_on == ("BTCEUR", "ETHUSDT")
    assert universal.horizons == (1, 4, 24)
    evaluated = ModelCard.of({"symbol": "SOLUSDT", "universal": {"kind": "universal", "trained_on": ["BTCEUR"]}})
    assert evaluated.is_universal and evaluated.trained_on == ("BTCEUR",)
    with pytest.raises(ValueError, match=r"'horizons' is \['1'\], not a list of whole hours"):
        ModelCard.of({"horizons": ["1"]})


def test_a_malformed_manifest_is_a_store_error_naming_it(tmp_path):
    from make_us_rich.store import ModelStore, StoreError

    folder = tmp_path / "store" / "models" / "BTCEUR" / VERSION
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"symbol": "BTCEUR", "version": VERSION, "status": 3}))
    store = ModelStore(tmp_path / "store")
    with pytest.raises(StoreError, match=rf"models/BTCEUR/{VERSION}/manifest.json is malformed: 'status' is 3"):
        store.manifests("BTCEUR")
