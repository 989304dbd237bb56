"""Model store tests: a local folder and real S3 over HTTP (moto's server on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import json
import shutil

import boto3
import pytest

from make_us_rich.errors import ConfigError
from make_us_rich.store import (
    LocalBackend,
    ModelStore,
    PublishError,
    S3Backend,
    StoreError,
    open_backend,
)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return ModelStore(tmp_path / "store", keep=3)
    bucket = request.getfixturevalue("s3_env")
    return ModelStore(f"s3://{bucket}/mkrich", keep=3)


def test_open_backend_by_uri(tmp_path, s3_env):
    assert isinstance(open_backend(tmp_path), LocalBackend)
    assert isinstance(open_backend(tmp_path.as_uri()), LocalBackend)
    s3 = open_backend(f"s3://{s3_env}/some/prefix")
    assert isinstance(s3, S3Backend) and s3.uri == f"s3://{s3_env}/some/prefix"
    for bad in ("", "gs://bucket/x", "file://host/path", "s3:///nobucket"):
        with pytest.raises(ConfigError):
            open_backend(bad)


def test_publish_accepted_model(store, trained_artifacts):
    result = store.publish(trained_artifacts, "BTC/EUR")
    assert result.status == "accepted" and result.latest and result.triton_version == 1
    latest = store.latest("BTCEUR")
    assert latest["version"] == result.version and latest["model_name"] == "btceur-close"
    onnx = (trained_artifacts / "model.onnx").read_bytes()
    assert latest["checksums"]["model.onnx"] == hashlib.sha256(onnx).hexdigest()
    # immutable version folder with every artifact + manifest
    keys = store.backend.list(f"models/BTCEUR/{result.version}")
    names = sorted(k.rsplit("/", 1)[1] for k in keys)
    assert names == sorted([p.name for p in trained_artifacts.iterdir()] + ["manifest.json"])
    # Triton repository view: <repo>/<model_name>/<n>/model.onnx + config
    assert store.backend.get("triton/btceur-close/1/model.onnx") == onnx
    config = store.backend.get("triton/btceur-close/config.pbtxt").decode()
    assert 'name: "btceur-close"' in config and 'platform: "onnxruntime_onnx"' in config
    assert "dims: [ -1, 12, 21 ]" in config and 'name: "window"' in config
    assert store.triton_uri.endswith("/triton")


def test_fetch_round_trip(store, trained_artifacts, tmp_path):
    store.publish(trained_artifacts, "BTCEUR")
    out = store.fetch("BTCEUR", tmp_path / "fetched")
    for p in trained_artifacts.iterdir():
        assert (out / p.name).read_bytes() == p.read_bytes()


def test_rejected_model_is_stored_but_never_latest(store, trained_artifacts, rejected_artifacts):
    first = store.publish(trained_artifacts, "BTCEUR")
    rejected = store.publish(rejected_artifacts, "BTCEUR")
    assert rejected.status == "rejected" and not rejected.latest and rejected.triton_version is None
    assert any("outside 0.99-1.00" in r for r in rejected.reasons)
    assert store.latest("BTCEUR")["version"] == first.version
    statuses = {m["version"]: m["status"] for m in store.versions("BTCEUR")}
    assert statuses == {first.version: "accepted", rejected.version: "rejected"}
    assert store.backend.list("triton/btceur-close") == [
        "triton/btceur-close/1/model.onnx", "triton/btceur-close/config.pbtxt",
    ]


def test_retention_keeps_the_newest_and_latest(store, trained_artifacts, rejected_artifacts):
    published = [store.publish(trained_artifacts, "BTCEUR") for _ in range(4)]
    assert [p.triton_version for p in published] == [1, 2, 3, 4]
    rejected = [store.publish(rejected_artifacts, "BTCEUR") for _ in range(2)]
    kept = [m["version"] for m in store.versions("BTCEUR")]
    # keep=3 newest versions, plus the one latest points to (published[-1])
    assert kept == [published[-1].version, rejected[0].version, rejected[1].version]
    assert store.latest("BTCEUR")["version"] == published[-1].version
    assert store.backend.list("triton/btceur-close") == [
        "triton/btceur-close/4/model.onnx", "triton/btceur-close/config.pbtxt",
    ]


def test_symbols_are_validated_before_becoming_keys(store, trained_artifacts):
    for bad in ("../../etc", "BTC/../EUR", "btc eur/x"):
        with pytest.raises(ConfigError):
            store.publish(trained_artifacts, bad)
    with pytest.raises(ConfigError, match="holds a model of 'BTCEUR', not 'BTCUSDT'"):
        store.publish(trained_artifacts, "BTCUSDT")
    with pytest.raises(ConfigError):
        store.backend.get("models/../secret")


def test_tampered_or_incomplete_artifacts_are_refused(store, trained_artifacts, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(trained_artifacts, copy)
    (copy / "model.onnx").write_bytes(b"not the trained model")
    with pytest.raises(ConfigError, match="model.onnx does not match the checksum"):
        store.publish(copy, "BTCEUR")
    (copy / "scaler.json").unlink()
    with pytest.raises(ConfigError, match="lacks scaler.json"):
        store.publish(copy, "BTCEUR")
    with pytest.raises(ConfigError, match="no artifact folder"):
        store.publish(tmp_path / "nothing", "BTCEUR")
    assert store.latest("BTCEUR") is None


def test_interrupted_s3_upload_leaves_latest_intact(s3_env, trained_artifacts):
    """A fault injected mid-publish (the 4th PUT fails at the HTTP layer): latest unchanged."""
    store = ModelStore(f"s3://{s3_env}/mkrich")
    first = store.publish(trained_artifacts, "BTCEUR")
    before = store.backend.get("models/BTCEUR/latest.json")

    client = boto3.client("s3")
    puts = {"n": 0}

    def fail_fourth_put(**kwargs):
        puts["n"] += 1
        if puts["n"] == 4:
            raise ConnectionError("injected: connection reset mid-publish")

    client.meta.events.register("before-send.s3.PutObject", fail_fourth_put)
    faulty = ModelStore(S3Backend(s3_env, "mkrich", client=client))
    with pytest.raises(PublishError, match="latest is unchanged"):
        faulty.publish(trained_artifacts, "BTCEUR")
    assert store.backend.get("models/BTCEUR/latest.json") == before
    assert [m["version"] for m in store.versions("BTCEUR")] == [first.version]  # no manifest
    assert store.backend.list("triton/btceur-close")[0] == "triton/btceur-close/1/model.onnx"
    # the next publish works and the partial version is eventually pruned
    second = store.publish(trained_artifacts, "BTCEUR")
    assert store.latest("BTCEUR")["version"] == second.version and second.triton_version == 2


def test_clear_errors_from_s3(s3_env, monkeypatch, trained_artifacts):
    with pytest.raises(PublishError, match="bucket 'no-such-bucket' does not exist"):
        ModelStore("s3://no-such-bucket/x").publish(trained_artifacts, "BTCEUR")
    store = ModelStore(f"s3://{s3_env}/x")
    with pytest.raises(StoreError, match="no accepted model for BTCEUR"):
        store.fetch("BTCEUR", "/tmp/unused")
    assert store.latest("BTCEUR") is None


def test_local_store_is_plain_files(tmp_path, trained_artifacts):
    store = ModelStore(tmp_path / "s")
    result = store.publish(trained_artifacts, "BTCEUR")
    latest = json.loads((tmp_path / "s" / "models" / "BTCEUR" / "latest.json").read_text())
    assert latest["version"] == result.version
    assert (tmp_path / "s" / "triton" / "btceur-close" / "1" / "model.onnx").is_file()
    assert not list((tmp_path / "s").rglob(".*.part"))  # no temp files left


def test_publish_command(tmp_path, trained_artifacts, rejected_artifacts, capsys, s3_env):
    from make_us_rich.cli import main

    uri = f"s3://{s3_env}/cli"
    assert main(["publish", str(trained_artifacts), "--symbol", "BTCEUR", "--store", uri]) == 0
    out = capsys.readouterr().out
    assert "ACCEPTED" in out and "latest ->" in out and "/triton/btceur-close/1/model.onnx" in out
    assert main(["publish", str(rejected_artifacts), "--symbol", "BTCEUR", "--store", uri]) == 0
    out = capsys.readouterr().out
    assert "REJECTED" in out and "not promoted: latest is unchanged" in out
    assert main(["publish", str(rejected_artifacts), "--symbol", "BTCEUR", "--store", uri,
                 "--fail-on-reject"]) == 3
    capsys.readouterr()
    assert main(["versions", "--symbol", "BTCEUR", "--store", uri]) == 0
    listing = capsys.readouterr().out
    assert listing.count("rejected") == 2 and listing.count("<- latest") == 1


def _with_card(src, dest, **changes):
    """A copy of an artifact folder whose model card says another serving contract (the store
    reads the contract from the card; the model itself is the server's business)."""
    shutil.copytree(src, dest)
    card = json.loads((dest / "model_card.json").read_text())
    card.update(changes)
    (dest / "model_card.json").write_text(json.dumps(card))
    return dest


def test_a_contract_change_is_refused_at_promotion_unless_allowed(tmp_path, trained_artifacts):
    """Issue 19 #2: a model with 12 h windows instead of 48 passed the gate, was promoted, and
    every client got 400s."""
    from make_us_rich import contract

    store = ModelStore(tmp_path / "store")
    first = store.publish(trained_artifacts, "BTCEUR")
    assert store.latest("BTCEUR")["contract"]["input"]["shape"] == [-1, 12, 21]
    shorter = _with_card(trained_artifacts, tmp_path / "short", sequence_length=6)
    refused = store.publish(shorter, "BTCEUR")
    assert refused.status == "rejected" and not refused.latest and refused.contract_changes == []
    assert "serving contract differs from latest" in refused.reasons[-1]
    assert "input window [-1, 12, 21] -> window [-1, 6, 21]" in refused.reasons[-1]
    assert "--allow-contract-change" in refused.reasons[-1]
    assert store.latest("BTCEUR")["version"] == first.version
    manifest = store.manifest("BTCEUR", refused.version)
    assert manifest["gate"]["passed"] is False and manifest["contract_changes"]

    fewer = _with_card(trained_artifacts, tmp_path / "fewer", features=list(contract.FEATURES[:-1]))
    reasons = store.publish(fewer, "BTCEUR").reasons[-1]
    assert "features removed norm_vol" in reasons

    allowed = store.publish(shorter, "BTCEUR", allow_contract_change=True)
    assert allowed.status == "accepted" and allowed.latest
    assert allowed.contract_changes == ["input window [-1, 12, 21] -> window [-1, 6, 21]"]
    assert store.latest("BTCEUR")["contract"]["input"]["shape"] == [-1, 6, 21]
    assert store.publish(shorter, "BTCEUR").status == "accepted"  # same contract: no change


def test_added_outputs_and_older_pointers_are_no_contract_change(tmp_path, trained_artifacts):
    from make_us_rich import contract

    store = ModelStore(tmp_path / "store")
    store.publish(trained_artifacts, "BTCEUR")
    pointer = store.latest("BTCEUR")
    del pointer["contract"]  # written before the contract was recorded
    store.backend.put("models/BTCEUR/latest.json", json.dumps(pointer).encode())
    assert store.publish(trained_artifacts, "BTCEUR").status == "accepted"
    card = json.loads((trained_artifacts / "model_card.json").read_text())
    extra = {"name": "spread", "datatype": "FP32", "shape": [-1, 1]}
    more = _with_card(trained_artifacts, tmp_path / "more", outputs=[*card["outputs"], extra])
    assert store.publish(more, "BTCEUR").status == "accepted"  # clients read outputs by name
    old = contract.contract_of(pointer)
    assert len(contract.contract_of(store.latest("BTCEUR"))["outputs"]) == 3
    assert contract.contract_changes(old, {**old, "quantiles": [0.1, 0.5, 0.9]}) == [
        f"quantiles {old['quantiles']} -> [0.1, 0.5, 0.9]"]
    assert contract.contract_changes(old, {**old, "outputs": old["outputs"][1:]})[0] == "output next_close removed"


def test_publish_command_with_a_contract_change(tmp_path, trained_artifacts, capsys):
    from make_us_rich.cli import main

    store = str(tmp_path / "store")
    shorter = _with_card(trained_artifacts, tmp_path / "short", sequence_length=6)
    assert main(["publish", str(trained_artifacts), "--symbol", "BTCEUR", "--store", store]) == 0
    capsys.readouterr()
    assert main(["publish", str(shorter), "--symbol", "BTCEUR", "--store", store, "--fail-on-reject"]) == 3
    out = capsys.readouterr().out
    assert "REJECTED" in out and "gate: serving contract differs from latest" in out
    assert main(["publish", str(shorter), "--symbol", "BTCEUR", "--store", store, "--allow-contract-change"]) == 0
    out = capsys.readouterr().out
    assert "ACCEPTED" in out and "serving contract changed (input window [-1, 12, 21] -> window [-1, 6, 21])" in out
    assert main(["publish", str(trained_artifacts), "--symbol", "BTCEUR", "--store", store,
                 "--allow-contract-change", "false"]) == 0
    assert "REJECTED" in capsys.readouterr().out  # back to 12 h windows is a change too


def test_horizons_that_do_not_fit_are_not_published(tmp_path, trained_artifacts):
    """A card's horizons and a gate's served horizons that no reader would accept (a served
    horizon the model does not have) must not replace a good latest.json: refused, nothing written."""
    from make_us_rich.store import PublishError

    store = ModelStore(tmp_path / "store")
    first = store.publish(trained_artifacts, "BTCEUR")
    metrics = json.loads((trained_artifacts / "metrics.json").read_text())
    metrics["gate"]["served_horizons"] = [1, 24]
    text = json.dumps(metrics)
    card = json.loads((trained_artifacts / "model_card.json").read_text())
    files = {**card["files"], "metrics.json": hashlib.sha256(text.encode()).hexdigest()}
    bad = _with_card(trained_artifacts, tmp_path / "bad", horizons=[1, 4], files=files)
    (bad / "metrics.json").write_text(text)
    with pytest.raises(PublishError, match=r"horizons .* do not fit together .*not all in its horizon_axis"):
        store.publish(bad, "BTCEUR")
    assert store.latest("BTCEUR")["version"] == first.version
    assert [v["version"] for v in store.versions("BTCEUR")] == [first.version]
