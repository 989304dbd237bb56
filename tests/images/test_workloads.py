"""The local overlay's workloads, run: `kubectl kustomize manifests/overlays/local-kind`, then
each Pod its controller would make, played by `podman kube play` with the built images - the
console (its init container migrating a real PostgreSQL, standing in for the CloudNativePG
cluster), the Python predictor as KServe runs it (the model from an S3 server started here), and
the schedule registration Job against a fake KFP API. The manifest's probes are run against the
ports its Services name; read-only roots and non-root users are checked in the running
containers.

Networking (rootful podman 4.3 here): each pod has its own network namespace on slirp4netns
with `allow_host_loopback`, so a pod reaches the test's servers (127.0.0.1 only) at 10.0.2.2, and
its ports are published on 127.0.0.1 only."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import numpy as np
import pytest

from make_us_rich.testing import free_port

from .image_helpers import REPO
from .kube import (
    HOST_FROM_POD,
    logs,
    one,
    play,
    play_document,
    pod_spec,
    podman_secret,
    render,
    render_chart,
    secret_data,
    state,
)

OVERLAY = REPO / "manifests" / "overlays" / "local-kind"
MINIO = "http://minio-service.kubeflow.svc.cluster.local:9000"
KFP = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"


@pytest.fixture(scope="module")
def rendered():
    return render(OVERLAY)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("kube-play")


@pytest.fixture(scope="module")
def pods(engine):
    """Names of the pods played here, removed at the end with the secrets they read."""
    played: list[str] = []
    yield played
    for name in played:
        subprocess.run([engine, "pod", "rm", "--force", name], capture_output=True)
    for name in ("mkrich-s3-credentials", "mkrich-console-session", "mkrich-console-db-app"):
        subprocess.run([engine, "secret", "rm", name], capture_output=True)


@pytest.fixture(scope="module")
def s3_secret(engine, rendered, pods):
    """The overlay's S3 Secret, as rendered (moto takes any credentials)."""
    data = secret_data(one(rendered, "Secret", "mkrich-s3-credentials"))
    podman_secret(engine, "mkrich-s3-credentials", data)
    return data


def _get(url: str, *, data: bytes | None = None, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, headers=headers or {},
                                     method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _port_number(container: dict, port) -> int:
    """A probe's or Service's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    (found,) = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    return found


def _probe(engine: str, name: str, container: dict, probe: str, published: dict[int, int],
           seconds: float = 180) -> str:
    """Run the manifest's HTTP probe as a kubelet would, through the published port, until it
    succeeds; fail with the container's log if the container stops or time runs out."""
    get = container[probe]["httpGet"]
    url = f"http://127.0.0.1:{published[_port_number(container, get['port'])]}{get['path']}"
    deadline = time.time() + seconds
    while True:
        try:
            status, body = _get(url)
            if 200 <= status < 400:
                return body
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        running = state(engine, name)["State"]["Running"]
        if not running or time.time() > deadline:
            pytest.fail(f"{probe} {get['path']} of {name} never succeeded (running: {running}):\n{logs(engine, name)}")
        time.sleep(1)


def _restricted(engine: str, name: str) -> None:
    """Non-root, read-only root, nothing kept of the capabilities, /tmp writable."""
    info = state(engine, name)
    assert info["HostConfig"]["ReadonlyRootfs"] is True, name
    assert info["EffectiveCaps"] in (None, []), (name, info["EffectiveCaps"])
    check = ("import os\ntry:\n    open('/root-write-test', 'w')\n    print('writable')\n"
             "except OSError as e:\n    print(e.strerror)\n"
             "open('/tmp/ok', 'w').write('x')\nprint(os.getuid(), os.getgid())")
    out = subprocess.run([engine, "exec", name, "python", "-c", check], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["Read-only file system", "10001 10001"], out.stdout


# --------------------------------------------------------------------------------- the console
@pytest.fixture(scope="module")
def postgres():
    from make_us_rich.testing.postgres import started_or_missing

    with started_or_missing() as server:
        yield server


@pytest.fixture(scope="module")
def console(engine, images, rendered, s3_secret, postgres, s3_server, pods, workdir):
    deployment = one(rendered, "Deployment", "mkrich-console")
    spec = pod_spec(deployment)
    (container,) = spec["containers"]
    # the Service's port -> the container port the pods are reached on
    service = one(rendered, "Service", "mkrich-console")
    target = _port_number(container, service["spec"]["ports"][0]["targetPort"])
    published = {target: free_port()}
    # CloudNativePG's Secret <cluster>-app, key uri: here a database of the test's PostgreSQL
    cluster = one(rendered, "Cluster", "mkrich-console-db")
    postgres.create_database("console")
    uri = postgres.dsn("console").replace("127.0.0.1", HOST_FROM_POD)
    podman_secret(engine, f"{cluster['metadata']['name']}-app", {"uri": uri})
    podman_secret(engine, "mkrich-console-session", {"secret": secrets.token_urlsafe(48)})
    name = deployment["metadata"]["name"]
    document = play_document(name, spec, rendered, publish=published,
                             endpoints={MINIO: s3_server.replace("127.0.0.1", HOST_FROM_POD)})
    pods.append(name)
    play(engine, name, document, workdir)
    return {"name": name, "container": container, "published": published, "target": target,
            "service": service, "postgres": postgres}


def test_console_runs_as_its_manifest_says(engine, console):
    name = f"{console['name']}-{console['container']['name']}"
    assert _probe(engine, name, console["container"], "startupProbe", console["published"]) == "ok"
    _probe(engine, name, console["container"], "livenessProbe", console["published"])
    # ready: the database answers and is at the newest revision (migrated by the init container)
    _probe(engine, name, console["container"], "readinessProbe", console["published"])
    import psycopg

    with psycopg.connect(console["postgres"].dsn("console")) as db:
        (revisions,) = db.execute("SELECT count(*) FROM alembic_version").fetchone()
        tables = {r[0] for r in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert revisions == 1 and "users" in tables, tables
    # through the Service's port: the sign-in page
    status, body = _get(f"http://127.0.0.1:{console['published'][console['target']]}/login")
    assert status == 200 and 'name="password"' in body
    _restricted(engine, name)


# ------------------------------------------------------------------------------- the predictor
@pytest.fixture(scope="module")
def predictor(engine, images, rendered, s3_secret, s3_server, trained_artifacts, pods, workdir):
    import boto3

    from make_us_rich.store import ModelStore

    isvc = one(rendered, "InferenceService", "mkrich-universal")  # every symbol of the store
    spec = pod_spec(isvc)
    (container,) = spec["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    store_uri = env["STORE_URI"]
    bucket = store_uri.removeprefix("s3://").split("/")[0]
    s3 = dict(endpoint_url=s3_server, region_name="us-east-1",
              aws_access_key_id=s3_secret["AWS_ACCESS_KEY_ID"],
              aws_secret_access_key=s3_secret["AWS_SECRET_ACCESS_KEY"])
    try:
        boto3.client("s3", **s3).create_bucket(Bucket=bucket)
    except boto3.client("s3", **s3).exceptions.BucketAlreadyOwnedByYou:
        pass
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"AWS_ENDPOINT_URL": s3_server, "AWS_DEFAULT_REGION": "us-east-1",
                           "AWS_ACCESS_KEY_ID": s3["aws_access_key_id"],
                           "AWS_SECRET_ACCESS_KEY": s3["aws_secret_access_key"]}.items():
            mp.setenv(key, value)
        store = ModelStore(store_uri)
        store.publish(trained_artifacts, "BTCEUR")
        latest = store.latest("BTCEUR")
        model = store.read("BTCEUR", latest["version"], "model.onnx")
    # KServe's predictor Service sends port 80 to the container's port
    (port,) = container["ports"]
    published = {port["containerPort"]: free_port()}
    name = f"{isvc['metadata']['name']}-predictor"
    document = play_document(name, spec, rendered, publish=published,
                             endpoints={MINIO: s3_server.replace("127.0.0.1", HOST_FROM_POD)})
    pods.append(name)
    play(engine, name, document, workdir)
    return {"name": name, "container": container, "published": published, "port": port["containerPort"],
            "latest": latest, "model": model}


def test_predictor_serves_the_model_from_s3(engine, predictor, sample_btceur):
    from make_us_rich import contract
    from make_us_rich.inference import onnx_session, predict_all
    from make_us_rich.predict_client import v2_request
    from make_us_rich.preprocessing import build_features

    name = f"{predictor['name']}-{predictor['container']['name']}"
    _probe(engine, name, predictor["container"], "readinessProbe", predictor["published"])
    _probe(engine, name, predictor["container"], "livenessProbe", predictor["published"])
    base = f"http://127.0.0.1:{predictor['published'][predictor['port']]}"
    model = contract.model_name("BTCEUR")
    assert _get(f"{base}/v2/models/{model}/ready")[0] == 200
    session = onnx_session(predictor["model"])
    seq = session.get_inputs()[0].shape[1]
    k = sample_btceur.tail(24 * 40).reset_index(drop=True)
    table = build_features(k)[list(contract.FEATURES)]
    features = table.to_numpy(np.float32)[-(seq + 2):]
    windows = np.stack([features[i : i + seq] for i in range(3)])
    status, body = _get(f"{base}/v2/models/{model}/infer", data=json.dumps(v2_request(windows)).encode(),
                        headers={"Content-Type": "application/json"})
    assert status == 200, body
    answer = json.loads(body)
    assert answer["model_version"] == predictor["latest"]["version"]
    expected = predict_all(session, windows)
    for output in answer["outputs"]:
        np.testing.assert_array_equal(np.reshape(np.asarray(output["data"], np.float32), output["shape"]),
                                      expected[output["name"]])
    # bad input is the client's error, not the server's
    status, body = _get(f"{base}/v2/models/{model}/infer", data=b'{"inputs": []}',
                        headers={"Content-Type": "application/json"})
    assert 400 <= status < 500, (status, body)
    _restricted(engine, name)


# --------------------------------------------------------------------- the registration Job
def _run_job(engine, rendered, workdir, pods, *, kfp_url: str, token: str,
             job: dict | None = None) -> tuple[int, str, dict]:
    job = job or one(rendered, "Job", "mkrich-register-schedule")
    spec = pod_spec(job)
    token_dir = workdir / f"token-{uuid.uuid4().hex[:6]}"
    token_dir.mkdir()
    token_dir.chmod(0o755)
    (token_dir / "token").write_text(token)
    (token_dir / "token").chmod(0o644)
    name = f"{job['metadata']['name']}-{uuid.uuid4().hex[:6]}"
    document = play_document(name, spec, rendered, publish={}, token_dir=token_dir,
                             endpoints={KFP: kfp_url.replace("127.0.0.1", HOST_FROM_POD)})
    pods.append(name)
    play(engine, name, document, workdir)
    container = f"{name}-{spec['containers'][0]['name']}"
    waited = subprocess.run([engine, "wait", container], capture_output=True, text=True, timeout=300)
    assert waited.returncode == 0, waited.stderr
    settings = [d["data"] for d in rendered if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "mkrich-schedule"]
    return int(waited.stdout.strip()), logs(engine, container), (settings or [{}])[0]


def test_registration_job_registers_the_hourly_run(engine, images, rendered, workdir, pods):
    from make_us_rich.testing.fake_kfp import FakeKFP

    token = secrets.token_urlsafe(24)
    with FakeKFP(token=token) as kfp:
        code, log, settings = _run_job(engine, rendered, workdir, pods, kfp_url=kfp.url, token=token)
        assert code == 0, log
        assert "recurring run" in log and "0 0 * * * *" in log
        (post,) = kfp.calls("POST", "/recurringruns")
        # every call carried the projected-token file's bearer token (the fake refuses others)
        assert {r["authorization"] for r in kfp.requests} == {f"Bearer {token}"}
    body = post["body"]
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 * * * *"}}
    parameters = body["runtime_config"]["parameters"]
    assert parameters["symbols"] == settings["SYMBOLS"].split(",")
    assert parameters["store_uri"] == settings["STORE_URI"]
    assert parameters.get("rollout_isvc", "") == settings["ROLLOUT_ISVC"]
    # the pipeline it registered runs the images the ConfigMap names
    executors = body["pipeline_spec"]["pipeline_spec"]["deploymentSpec"]["executors"]
    registry = settings["MKRICH_IMAGE_REGISTRY"]
    assert {e["container"]["image"].rsplit("/", 1)[0] for e in executors.values()} == {registry}


def test_registration_job_says_why_when_kfp_does_not_answer(engine, images, rendered, workdir, pods):
    """What the Job's pod shows when KFP is unreachable: a failed attempt (the Job then starts
    another after its backoff) whose log names the address and the problem."""
    code, log, _ = _run_job(engine, rendered, workdir, pods, kfp_url=f"http://127.0.0.1:{free_port()}",
                            token="unused")
    assert code != 0
    assert "cannot reach Kubeflow Pipelines at http://10.0.2.2:" in log, log
    assert "Traceback" not in log, log


def test_the_charts_registration_job_registers_too(engine, images, workdir, pods):
    """The chart's Job, whose flags are written by the template (not $(VAR) from a ConfigMap),
    from `helm template` with the pull policy a cluster with loaded images needs."""
    from make_us_rich.testing.fake_kfp import FakeKFP

    documents = render_chart("--set", "scheduler.enabled=true", "--set", "image.pullPolicy=IfNotPresent",
                             "--set", "symbols={BTCEUR,BTCUSDT}")
    (job,) = [d for d in documents if d["kind"] == "Job"]
    token = secrets.token_urlsafe(24)
    with FakeKFP(token=token) as kfp:
        code, log, _ = _run_job(engine, documents, workdir, pods, kfp_url=kfp.url, token=token, job=job)
        assert code == 0, log
        (post,) = kfp.calls("POST", "/recurringruns")
        assert {r["authorization"] for r in kfp.requests} == {f"Bearer {token}"}
    parameters = post["body"]["runtime_config"]["parameters"]
    assert parameters["symbols"] == ["BTCEUR", "BTCUSDT"]
    assert parameters["store_uri"] == "s3://mlpipeline/make-us-rich"  # the chart's store.uri
    assert parameters["rollout_isvc"] == "mkrich-onnx"  # triton.enabled: each new model rolls it
