"""One universal model for many symbols in the store (issue 21 #6): stored once per version,
each symbol's pointer and manifest naming it, gate per symbol, retention that never removes a
shared version still named, the Triton view with one folder for it, and kill -9 anywhere in a
publish. On the local folder backend and on moto's S3 server over HTTP."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys

import pytest

from make_us_rich.store import ModelStore

SYMBOLS = ("BTCEUR", "BTCUSDT", "ETHUSDT")


@pytest.fixture(params=["local", "s3"])
def store_uri(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "store")
    return f"s3://{request.getfixturevalue('s3_env')}/mkrich"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def publish_all(store: ModelStore, model, symbols=SYMBOLS, **options):
    return {s: store.publish(model / "symbols" / s, s, shared_model=model, **options) for s in symbols}


def rejected_copy(universal_models, model: str, symbol: str, dest):
    """``symbol``'s artifacts of a model evaluated under a gate it cannot pass (its 90 % interval
    would have to cover 99-100 %)."""
    from make_us_rich.stages import market_evaluate_stage

    row = market_evaluate_stage(universal_models[model], universal_models["market"], symbol, dest,
                                gate_tolerance=0.0, coverage_min=0.99, coverage_max=1.0)
    assert row["gate"] is False, row
    return dest


def triton_numbers(store: ModelStore, name: str = "universal") -> list[int]:
    return sorted({int(k.split("/")[2]) for k in store.backend.list(f"triton/{name}") if k.count("/") == 3})


def pinned(store: ModelStore) -> list[int]:
    config = store.backend.get("triton/universal/config.pbtxt").decode()
    match = re.search(r"version_policy: \{ specific: \{ versions: \[ ([\d, ]+) \] \} \}", config)
    assert match and 'name: "universal"' in config, config
    return [int(n) for n in match.group(1).split(", ")]


def test_a_universal_model_is_stored_once_and_every_symbol_names_it(store_uri, universal_models, tmp_path):
    store = ModelStore(store_uri)
    model = universal_models["a"]
    results = publish_all(store, model)
    onnx = (model / "model.onnx").read_bytes()
    (shared,) = store.shared_versions()
    assert all(r.status == "accepted" and r.latest and r.shared == shared for r in results.values())
    assert shared.endswith(sha(onnx)[:8])
    assert store.backend.get(f"shared/{shared}/model.onnx") == onnx
    assert json.loads(store.backend.get(f"shared/{shared}/model_card.json"))["kind"] == "universal"
    # one copy of the model and its Keras state in the whole store
    assert [k for k in store.backend.list("") if k.endswith(("model.onnx", "model.keras"))] == [
        f"shared/{shared}/model.keras", f"shared/{shared}/model.onnx", f"triton/universal/{results['BTCEUR'].triton_version}/model.onnx"]
    for sym, result in results.items():
        pointer = store.latest(sym)
        assert pointer["shared"] == shared and pointer["checksums"]["model.onnx"] == sha(onnx)
        assert {"model.onnx", "model.keras"} <= set(pointer["shared_files"])
        manifest = store.manifest(sym, result.version)
        assert manifest["files"]["model.onnx"]["shared"] == shared
        assert "shared" not in manifest["files"]["metrics.json"]  # the symbol's own evaluation
        assert json.loads(store.read(sym, result.version, "metrics.json"))["symbol"] == sym
        card = json.loads(store.read(sym, result.version, "model_card.json"))
        assert card["symbol"] == sym and card["universal"]["model_sha256"] == sha(onnx)
        assert store.read(sym, result.version, "model.onnx", sha(onnx)) == onnx  # through the manifest
        fetched = store.fetch(sym, tmp_path / sym)
        for path in (model / "symbols" / sym).iterdir():  # the symbol's whole artifact folder comes back
            assert (fetched / path.name).read_bytes() == path.read_bytes(), path.name
    # the Triton view: one model for all, no folder per symbol
    assert pinned(store) == [results["BTCEUR"].triton_version]
    assert not [k for k in store.backend.list("triton") if k.split("/")[1].endswith("-close")]


def test_a_symbol_failing_the_gate_keeps_its_previous_shared_model(store_uri, universal_models, tmp_path):
    store = ModelStore(store_uri)
    first = publish_all(store, universal_models["a"])
    model_b = universal_models["b"]
    second = publish_all(store, model_b, SYMBOLS[:2])
    refused = store.publish(rejected_copy(universal_models, "b", "ETHUSDT", tmp_path / "eth"), "ETHUSDT",
                            shared_model=model_b)
    old, new = first["BTCEUR"].shared, second["BTCEUR"].shared
    assert old != new and refused.status == "rejected" and not refused.latest and refused.shared == new
    assert store.latest("ETHUSDT")["shared"] == old and store.latest("ETHUSDT")["version"] == first["ETHUSDT"].version
    assert {store.latest(s)["shared"] for s in SYMBOLS[:2]} == {new}
    assert store.shared_versions() == sorted([old, new])
    # Triton: the unversioned URL answers from the newest, the kept one stays at its version
    assert pinned(store) == sorted([first["ETHUSDT"].triton_version, second["BTCEUR"].triton_version])
    assert triton_numbers(store) == pinned(store)
    # once every symbol has moved on, the older Triton version goes
    store.publish(model_b / "symbols" / "ETHUSDT", "ETHUSDT", shared_model=model_b)
    assert pinned(store) == triton_numbers(store) == [second["BTCEUR"].triton_version]


def test_retention_never_removes_a_shared_version_still_named(store_uri, universal_models, tmp_path):
    store = ModelStore(store_uri, keep=1, stale_after=0)
    first = publish_all(store, universal_models["a"])
    old = first["BTCEUR"].shared
    model_b = universal_models["b"]
    publish_all(store, model_b, SYMBOLS[:2])
    assert old in store.shared_versions()  # ETHUSDT's pointer still names it
    refused = store.publish(rejected_copy(universal_models, "b", "ETHUSDT", tmp_path / "eth"), "ETHUSDT",
                            shared_model=model_b)
    assert refused.removed_versions == [] and old in store.shared_versions()  # latest is always kept
    store.fetch("ETHUSDT", tmp_path / "eth-fetched")
    done = store.publish(model_b / "symbols" / "ETHUSDT", "ETHUSDT", shared_model=model_b)
    assert first["ETHUSDT"].version in done.removed_versions
    assert store.shared_versions() == [done.shared]  # nobody uses the older model any more
    assert not store.backend.list(f"shared/{old}")
    for sym in SYMBOLS:
        store.fetch(sym, tmp_path / f"fetched-{sym}")


def test_a_young_unnamed_shared_version_is_kept(tmp_path, universal_models):
    """A shared version no symbol names yet may be one a publish is writing: kept until stale."""
    store = ModelStore(tmp_path / "store", stale_after=3600)
    publish_all(store, universal_models["a"], SYMBOLS[:1])
    shutil.rmtree(tmp_path / "store" / "models")
    (version,) = store.shared_versions()
    assert store.prune_shared() == [] and store.shared_versions() == [version]
    assert ModelStore(tmp_path / "store", stale_after=0).prune_shared() == [version]
    assert not store.shared_versions() and not store.backend.list("shared")


def test_the_contract_check_still_applies_per_symbol(tmp_path, universal_models, trained_artifacts):
    """A symbol served by its own model moves to the universal one through the same gate: a
    changed serving contract is refused unless allowed; then its own Triton folder goes."""
    store = ModelStore(tmp_path / "store")
    store.publish(trained_artifacts, "BTCEUR")
    assert triton_numbers(store, "btceur-close") == [1]
    model = universal_models["a"]
    shorter = tmp_path / "short"
    shutil.copytree(model / "symbols" / "BTCEUR", shorter)
    card = json.loads((shorter / "model_card.json").read_text())
    (shorter / "model_card.json").write_text(json.dumps({**card, "sequence_length": 6}))
    refused = store.publish(shorter, "BTCEUR", shared_model=model)
    assert refused.status == "rejected" and "serving contract differs" in refused.reasons[-1]
    assert "shared" not in store.latest("BTCEUR") and triton_numbers(store, "btceur-close") == [1]
    allowed = store.publish(model / "symbols" / "BTCEUR", "BTCEUR", shared_model=model)
    assert allowed.status == "accepted" and store.latest("BTCEUR")["shared"] == allowed.shared
    assert triton_numbers(store, "btceur-close") == [] and triton_numbers(store) == [allowed.triton_version]


def test_artifacts_of_another_model_are_refused(tmp_path, universal_models):
    from make_us_rich.errors import ConfigError

    store = ModelStore(tmp_path / "store")
    with pytest.raises(ConfigError, match="not evaluated from the model"):
        store.publish(universal_models["a"] / "symbols" / "BTCEUR", "BTCEUR", shared_model=universal_models["b"])
    with pytest.raises(ConfigError, match="not a universal model folder"):
        store.publish(universal_models["a"] / "symbols" / "BTCEUR", "BTCEUR", shared_model=tmp_path)
    assert not store.backend.list("")


def test_the_pipeline_stage_publishes_the_model_once(tmp_path, universal_models):
    from make_us_rich.stages import evaluate_publish_stage

    store = ModelStore(tmp_path / "store")
    rows = evaluate_publish_stage(universal_models["a"], universal_models["market"], list(SYMBOLS[:2]),
                                  tmp_path / "eval", store_uri=store.uri)
    (shared,) = store.shared_versions()
    assert {r["published"]["shared"] for r in rows.values()} == {shared}
    assert {store.latest(s)["shared"] for s in SYMBOLS[:2]} == {shared}
    assert pinned(store) == [store.latest("BTCEUR")["triton_version"]]


# ----------------------------------------------------------------------------- kill -9
POINTS = ["files", "shared", "manifest", "pointer", "triton-copy", "triton-config"]
PUBLISH = ("import sys; from make_us_rich.testing.faults import kill_at; kill_at(sys.argv[1]); "
           "from make_us_rich.stages import publish_stage; "
           "publish_stage(sys.argv[2], sys.argv[3], sys.argv[4], shared_model=sys.argv[5])")


def publish_killed_at(point: str, model, symbol: str, uri: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PUBLISH, point, str(model / "symbols" / symbol), symbol, uri, str(model)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == -9, (proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize("point, backend", [*((p, "local") for p in POINTS), ("shared", "s3"), ("pointer", "s3")])
def test_kill_during_a_shared_publish_then_the_next_publish_repairs(point, backend, tmp_path, universal_models, request):
    uri = str(tmp_path / "store") if backend == "local" else f"s3://{request.getfixturevalue('s3_env')}/killed"
    store = ModelStore(uri, stale_after=0)
    first = publish_all(store, universal_models["a"], SYMBOLS[:2])
    model_b = universal_models["b"]
    publish_killed_at(point, model_b, "BTCEUR", uri)

    moved = store.latest("BTCEUR")["shared"] != first["BTCEUR"].shared
    assert moved == (point in ("pointer", "triton-copy", "triton-config"))
    for sym in SYMBOLS[:2]:
        store.fetch(sym, tmp_path / f"{point}-{sym}")  # what the pointers name is complete
    named = {store.latest(s)["triton_version"] for s in SYMBOLS[:2]}
    assert set(pinned(store)) <= named | {first["BTCEUR"].triton_version}
    for n in pinned(store):  # every pinned version has its model
        assert store.backend.list(f"triton/universal/{n}")
    assert [m["status"] for m in store.versions("BTCEUR")] == (
        ["accepted"] if point in ("files", "shared") else ["accepted", "incomplete" if point == "manifest" else "accepted"])

    done = publish_all(store, model_b, SYMBOLS[:2])  # repairs: the view, the debris, unused models
    assert {store.latest(s)["shared"] for s in SYMBOLS[:2]} == {done["BTCEUR"].shared}
    assert pinned(store) == triton_numbers(store) == [done["BTCEUR"].triton_version]
    for sym in SYMBOLS[:2]:
        store.fetch(sym, tmp_path / f"after-{sym}")


def test_a_batch_cleans_up_and_syncs_once(tmp_path, universal_models):
    """``publish(..., sync=False)`` per symbol, then one ``sync()`` for the batch (the pipeline's
    evaluation tasks): unused shared versions removed, the Triton view following the pointers."""
    store = ModelStore(tmp_path / "store", keep=1, stale_after=0)
    old = publish_all(store, universal_models["a"], SYMBOLS[:2], sync=False)["BTCEUR"]
    assert not store.backend.list("triton")
    new = publish_all(store, universal_models["b"], SYMBOLS[:2], sync=False)["BTCEUR"]
    assert store.shared_versions() == sorted([old.shared, new.shared])  # not yet cleaned
    store.sync(list(SYMBOLS[:2]))
    assert store.shared_versions() == [new.shared]
    assert pinned(store) == triton_numbers(store) == [new.triton_version]


def test_two_models_trained_in_the_same_second_share_one_triton_number(tmp_path, universal_models):
    """Triton numbers a universal model by its training second: two models of the same second
    are one version in the view (the later name), never a number listed twice in the config."""
    store = ModelStore(tmp_path / "store")
    model_a = universal_models["a"]
    same = tmp_path / "b-same-second"
    shutil.copytree(universal_models["b"], same)
    card = json.loads((same / "model_card.json").read_text())
    card["created"] = json.loads((model_a / "model_card.json").read_text())["created"]
    (same / "model_card.json").write_text(json.dumps(card))
    first = store.publish(model_a / "symbols" / "BTCEUR", "BTCEUR", shared_model=model_a)
    second = store.publish(same / "symbols" / "BTCUSDT", "BTCUSDT", shared_model=same)
    assert first.triton_version == second.triton_version and first.shared != second.shared
    assert pinned(store) == triton_numbers(store) == [first.triton_version]
    later = max(first.shared, second.shared)
    onnx = store.backend.get(f"triton/universal/{first.triton_version}/model.onnx")
    assert sha(onnx) == store.shared_manifest(later)["files"]["model.onnx"]["sha256"]


def test_mkrich_publish_stores_a_universal_model_once(universal_models, tmp_path, capsys):
    """``mkrich publish --shared-model DIR``: the CLI's way to the same layout as the pipeline."""
    from make_us_rich.cli import main

    model, uri = universal_models["a"], str(tmp_path / "store")
    for symbol in ("BTCEUR", "ETHUSDT"):
        assert main(["publish", str(model / "symbols" / symbol), "--symbol", symbol, "--store", uri,
                     "--shared-model", str(model)]) == 0
    out = capsys.readouterr().out
    assert out.count("/triton/universal/") == 2 and "model shared by every symbol" in out
    store = ModelStore(uri)
    shared = {store.latest(s)["shared"] for s in ("BTCEUR", "ETHUSDT")}
    assert len(shared) == 1 and None not in shared
    assert len([k for k in store.backend.list("shared") if k.endswith("/model.onnx")]) == 1
