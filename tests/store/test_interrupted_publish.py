"""`mkrich publish` killed (SIGKILL, no cleanup) at chosen points, then the store's invariants:
latest never names an incomplete version, Triton never serves a version latest did not choose,
the debris is not listed as accepted, does not count for retention, and the next publish cleans
it. On the local folder backend and on moto's S3 server over HTTP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from make_us_rich.store import MalformedPointer, ModelStore, StoreError
from make_us_rich.store.model_store import _sha256

NAME = "btceur-close"
POINTS = ["files", "manifest", "pointer", "triton-copy", "triton-config"]
#: ``mkrich ARGS...`` in a process killed at POINT (make_us_rich.testing.faults)
KILLED_MKRICH = ("import sys; from make_us_rich.testing.faults import kill_at; kill_at(sys.argv[1]); "
                 "from make_us_rich.cli import main; sys.exit(main(sys.argv[2:]))")


def publish_killed_at(point: str, artifacts, store_path, keep: int = 10) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_MKRICH, point, "publish", str(artifacts), "--symbol", "BTCEUR",
         "--store", str(store_path), "--keep", str(keep)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == -9, (proc.returncode, proc.stdout, proc.stderr)


def triton_numbers(store: ModelStore) -> list[int]:
    return sorted({int(k.split("/")[2]) for k in store.backend.list(f"triton/{NAME}") if k.count("/") == 3})


def pinned(store: ModelStore) -> int:
    config = store.backend.get(f"triton/{NAME}/config.pbtxt").decode()
    match = re.search(r"version_policy: \{ specific: \{ versions: \[ (\d+) \] \} \}", config)
    assert match, config
    return int(match.group(1))


def assert_triton_follows_promotions(store: ModelStore, allowed: set[int]) -> None:
    """Triton's pinned version has its model, is one latest chose, and no folder is ahead."""
    latest = store.latest("BTCEUR")
    n = pinned(store)
    assert n in allowed and all(k <= latest["triton_version"] for k in triton_numbers(store))
    by_number = {m["triton_version"]: m for m in store.versions("BTCEUR") if m["status"] == "accepted"}
    onnx = store.backend.get(f"triton/{NAME}/{n}/model.onnx")
    assert _sha256(onnx) == by_number[n]["files"]["model.onnx"]["sha256"]


@pytest.mark.parametrize("point, backend", [
    *((p, "local") for p in POINTS), ("manifest", "s3"), ("pointer", "s3"), ("triton-copy", "s3"),
])
def test_kill_during_publish_then_next_publish_repairs(point, backend, tmp_path, trained_artifacts, request):
    path = tmp_path / "store"
    uri = str(path) if backend == "local" else f"s3://{request.getfixturevalue('s3_env')}/killed"
    store = ModelStore(uri)
    first = store.publish(trained_artifacts, "BTCEUR")
    publish_killed_at(point, trained_artifacts, uri)  # the S3 settings reach it through the environment

    latest = store.latest("BTCEUR")
    moved = latest["version"] != first.version
    assert moved == (point in ("pointer", "triton-copy", "triton-config"))
    store.fetch("BTCEUR", tmp_path / "fetched")  # latest is complete: every checksum verifies
    assert_triton_follows_promotions(store, {1, latest["triton_version"]})
    assert pinned(store) == (2 if point == "triton-config" else 1)
    statuses = [m["status"] for m in store.versions("BTCEUR")]
    expected = {"files": ["accepted"], "manifest": ["accepted", "incomplete"]}
    assert statuses == expected.get(point, ["accepted", "accepted"])
    if point == "manifest":
        listing = subprocess.run([sys.executable, "-m", "make_us_rich.cli", "versions", "--store", uri],
                                 capture_output=True, text=True, timeout=60).stdout
        assert "incomplete" in listing and listing.count("accepted") == 1

    if backend == "local":  # what a kill in the middle of a local write leaves behind
        stale_part = path / "models" / "BTCEUR" / ".latest.json.abc123.part"
        stale_part.write_bytes(b"{")
        os.utime(stale_part, (time.time() - 10, time.time() - 10))
    after = ModelStore(uri, stale_after=0).publish(trained_artifacts, "BTCEUR")
    assert store.latest("BTCEUR")["version"] == after.version
    assert pinned(store) == after.triton_version and triton_numbers(store)[-1] == after.triton_version
    assert_triton_follows_promotions(store, {after.triton_version})
    assert [m["status"] for m in store.versions("BTCEUR")] == ["accepted"] * (3 if moved else 2)
    assert not list(tmp_path.rglob("*.part"))
    assert {k.split("/")[2] for k in store.backend.list("models/BTCEUR") if k.count("/") == 3} == {
        m["version"] for m in store.versions("BTCEUR")
    }  # no folder without a manifest is left


def test_debris_does_not_count_for_retention(tmp_path, trained_artifacts):
    path = tmp_path / "store"
    store = ModelStore(path, keep=2)
    a, b = (store.publish(trained_artifacts, "BTCEUR") for _ in range(2))
    publish_killed_at("files", trained_artifacts, path, keep=2)
    publish_killed_at("manifest", trained_artifacts, path, keep=2)
    c = store.publish(trained_artifacts, "BTCEUR")
    kept = {m["version"]: m["status"] for m in store.versions("BTCEUR")}
    # the two complete versions that retention keeps are b and c; the young debris stays
    # (it may be a publish still running) but is neither accepted nor counted
    assert a.version not in kept and kept[b.version] == kept[c.version] == "accepted"
    assert sorted(kept.values()) == ["accepted", "accepted", "incomplete"]
    assert len(store._by_version("BTCEUR")) == 4


@pytest.fixture(params=["local", "s3"])
def any_store(request, tmp_path):
    if request.param == "local":
        return ModelStore(tmp_path / "store")
    return ModelStore(f"s3://{request.getfixturevalue('s3_env')}/mkrich")


@pytest.mark.parametrize("payload, message", [
    (b"{}", "'version' is None"),
    (b"[]", "not a JSON object"),
    (b'{"version": "../x"', "not valid JSON"),
    (json.dumps({"version": "20240101T000000.000000Z-0123abcd", "symbol": "BTCEUR"}).encode(), "'checksums'"),
])
def test_malformed_latest_is_a_clear_error_and_the_next_publish_repairs_it(
    any_store, trained_artifacts, payload, message
):
    any_store.backend.put("models/BTCEUR/latest.json", payload)
    with pytest.raises(MalformedPointer, match=re.escape(message)) as err:
        any_store.latest("BTCEUR")
    assert isinstance(err.value, StoreError) and "mkrich publish" in str(err.value)
    result = any_store.publish(trained_artifacts, "BTCEUR")
    assert any_store.latest("BTCEUR")["version"] == result.version
    assert any_store.symbols() == ["BTCEUR"]
