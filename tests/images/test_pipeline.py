"""The pipeline in its images: `hourly-training` through kfp.local's DockerRunner, each component
in the image the compiled pipeline names, restricted, publishing to moto's S3 server on loopback;
its metrics against the in-process run (SubprocessRunner) of the same pipeline; then the server
image serving the published model, answering a v2 request as in-process onnxruntime does."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from make_us_rich.predict_client import v2_request
from make_us_rich.store import ModelStore

from .image_helpers import RESTRICTED

SYMBOL = "BTCEUR"
PARAMS = {"source": "sample", "lookback_days": 75.0, "sequence_length": 12, "lstm_units": 8,
          "batch_size": 64, "max_epochs": 2, "patience": 2}
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}  # moto's test values


def _metrics(pipeline_root: Path) -> dict:
    found = list(pipeline_root.glob("hourly-training-*/**/evaluate-and-gate/artifacts/metrics.json"))
    assert len(found) == 1, found
    return json.loads(found[0].read_text())


@pytest.fixture(scope="session")
def bucket(s3_server):
    import boto3

    name = f"models-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                 aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"],
                 aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def s3_client_env(s3_server, monkeypatch_session):
    for key, value in {**AWS, "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": s3_server}.items():
        monkeypatch_session.setenv(key, value)


@pytest.fixture(scope="session")
def monkeypatch_session():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_the_compiled_pipeline_names_the_built_images(images, tmp_path):
    import yaml

    from make_us_rich.pipelines.catalog import compile_pipeline

    ir = compile_pipeline("hourly-training", tmp_path)[0]
    spec = next(yaml.safe_load_all(ir.read_text()))  # then the platform spec
    executors = spec["deploymentSpec"]["executors"]
    named = {e["container"]["image"] for e in executors.values()}
    assert named == {images["data"], images["trainer"]}


@pytest.fixture(scope="session")
def in_images(images, docker_api, s3_server, bucket, tmp_path_factory):
    """One run of the pipeline with every component in its image."""
    from kfp import local

    from make_us_rich.pipelines.hourly_training import hourly_training
    from make_us_rich.pipelines.kfp_compat import (
        resolve_time_placeholders as _resolve_time_placeholders,
    )

    root = tmp_path_factory.mktemp("pipeline-in-images")
    root.chmod(0o777)  # the components run as uid 10001 and write their outputs under the root
    runner = local.DockerRunner(
        # KFP on Kubernetes puts the component's command in the pod's `command`, which replaces
        # the image's ENTRYPOINT; the DockerRunner passes it as CMD, so reset the ENTRYPOINT.
        entrypoint=[""],
        read_only=True, tmpfs={"/tmp": ""}, cap_drop=["ALL"], security_opt=["no-new-privileges"],
        network_mode="host",  # the S3 server listens on this machine's loopback
        environment=dict(AWS),
    )
    local.init(runner=runner, pipeline_root=str(root), raise_on_error=True)
    store = f"s3://{bucket}/mkrich"
    started = time.time()
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with _resolve_time_placeholders(now):
        hourly_training(symbols=[SYMBOL], store_uri=store, s3_endpoint=s3_server,
                        s3_region="us-east-1", **PARAMS)
    return {"root": root, "store": store, "seconds": time.time() - started}


@pytest.fixture(scope="session")
def in_process(tmp_path_factory):
    """The same pipeline in this environment (what `mkrich run` does)."""
    from make_us_rich.pipelines.local import run_local

    root = tmp_path_factory.mktemp("pipeline-in-process")
    result = run_local([SYMBOL], store_uri=str(root / "store"), pipeline_root=root / "root", **PARAMS)
    return {"root": root / "root", "store": result["store"], "seconds": result["seconds"]}


def test_pipeline_in_its_images_publishes_to_s3(in_images, s3_client_env):
    store = ModelStore(in_images["store"])
    versions = store.versions(SYMBOL)
    assert len(versions) == 1
    manifest = versions[0]
    assert manifest["status"] == "accepted", manifest  # the tiny quantile model passes the gate
    assert store.latest(SYMBOL)["version"] == manifest["version"]
    store.read(SYMBOL, manifest["version"], "model.onnx", manifest["files"]["model.onnx"]["sha256"])
    # every step's outputs were written by the containers, as uid 10001
    run_dir = next(in_images["root"].glob("hourly-training-*"))
    steps = {p.parent.name for p in run_dir.glob("**/executor_output.json")}
    assert {"train-lstm", "convert-to-onnx", "evaluate-and-gate", "publish-model", "notify-run"} <= steps, steps
    # the exit handler, in the data image, read the run's result back from S3
    notify = json.loads((run_dir / "notify-run" / "executor_output.json").read_text())
    summary = json.loads(notify["parameterValues"]["Output"])
    assert summary["status"] == "succeeded" and summary["delivery"].startswith("no webhook configured"), summary
    assert [(s["symbol"], s["status"], s["version"]) for s in summary["symbols"]] == [
        (SYMBOL, "accepted", manifest["version"])]
    evaluation = next(run_dir.glob("**/evaluate-and-gate"))
    assert (evaluation / "artifacts" / "model.onnx").stat().st_uid == 10001
    assert "<img" in (evaluation / "report").read_text()
    print(f"pipeline in images: {in_images['seconds']:.1f} s")


def test_pipeline_metrics_match_the_in_process_run(in_images, in_process):
    """Same data, seed and library versions: the same model, to the last bit."""
    ours, reference = _metrics(in_images["root"]), _metrics(in_process["root"])
    for key in ("test", "gate", "parity"):
        assert ours[key] == reference[key], key
    print(f"pipeline in images {in_images['seconds']:.1f} s, in process {in_process['seconds']:.1f} s")


@pytest.fixture(scope="session")
def served(engine, images, in_images, s3_server, bucket):
    """The server image serving the published model straight from the S3 server."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    name = f"mkrich-server-{uuid.uuid4().hex[:8]}"
    env = [f"--env={k}={v}" for k, v in {**AWS, "AWS_ENDPOINT_URL": s3_server,
                                         "AWS_DEFAULT_REGION": "us-east-1"}.items()]
    started = subprocess.run(
        [engine, "run", "--detach", "--name", name, *RESTRICTED, "--network", "host", *env,
         images["server"], "--store", in_images["store"], "--symbols", SYMBOL, "--port", str(port)],
        capture_output=True, text=True,
    )
    assert started.returncode == 0, started.stderr
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(engine, name, f"{url}/v2/models/{SYMBOL.lower()}-close/ready")
        yield url
    finally:
        subprocess.run([engine, "rm", "--force", name], capture_output=True)


def _wait_ready(engine: str, name: str, url: str, seconds: float = 120) -> None:
    import urllib.request

    from make_us_rich.testing import wait_until

    def ready() -> bool:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200

    def logs() -> str:
        out = subprocess.run([engine, "logs", name], capture_output=True, text=True)
        return f"the server container ready:\n{out.stdout}{out.stderr}"

    wait_until(ready, seconds, 0.5, what=logs, ignoring=(urllib.error.URLError, ConnectionError, TimeoutError))


def test_server_image_answers_like_onnxruntime_in_process(served, in_images, s3_client_env, sample_btceur):
    import urllib.request

    from make_us_rich import contract
    from make_us_rich.inference import onnx_session, predict_all
    from make_us_rich.preprocessing import build_features

    seq = PARAMS["sequence_length"]
    k = sample_btceur.tail(24 * 40).reset_index(drop=True)
    table = build_features(k)[list(contract.FEATURES)]
    features = table.to_numpy(np.float32)[-(seq + 4):]
    windows = np.stack([features[i : i + seq] for i in range(5)])
    request = urllib.request.Request(f"{served}/v2/models/{SYMBOL.lower()}-close/infer",
                                     data=json.dumps(v2_request(windows)).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.loads(response.read())
    store = ModelStore(in_images["store"])
    latest = store.latest(SYMBOL)
    assert body["model_version"] == latest["version"]
    session = onnx_session(store.read(SYMBOL, latest["version"], "model.onnx"))
    expected = predict_all(session, windows)
    answers = {o["name"]: np.reshape(np.asarray(o["data"], dtype=np.float32), o["shape"]) for o in body["outputs"]}
    assert list(answers) == list(contract.OUTPUT_NAMES)
    for name, values in answers.items():
        np.testing.assert_array_equal(values, expected[name])  # identical, not merely close
