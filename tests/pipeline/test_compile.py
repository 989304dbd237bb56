"""The compiled pipeline: one task per stage, wiring, images, caching, retries, resources."""

from __future__ import annotations

import pytest
import yaml

from make_us_rich.images import image
from make_us_rich.pipelines.catalog import compile_pipeline

STAGES = {
    "fetch-klines": None,
    "extract-features": ["fetch-klines"],
    "split-dataset": ["extract-features"],
    "make-sequences": ["split-dataset"],
    "scale-features": ["make-sequences"],
    "train-lstm": ["make-sequences", "scale-features", "split-dataset"],
    "convert-to-onnx": ["make-sequences", "train-lstm"],
    "evaluate-and-gate": ["convert-to-onnx", "fetch-klines", "scale-features", "split-dataset", "train-lstm"],
    "publish-model": ["evaluate-and-gate"],
}
TRAINER_TASKS = {"train-lstm", "convert-to-onnx", "evaluate-and-gate"}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    ir_path, k8s_path = compile_pipeline("hourly-training", tmp_path_factory.mktemp("compiled"))
    ir, platform = yaml.safe_load_all(ir_path.read_text())
    return ir, platform, list(yaml.safe_load_all(k8s_path.read_text()))


def test_one_task_per_stage_in_a_parallel_for(compiled):
    ir, _, _ = compiled
    assert ir["pipelineInfo"]["name"] == "hourly-training"
    root = ir["root"]["dag"]["tasks"]
    assert sorted(root) == ["exit-handler-1", "notify-run"]
    body = ir["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    assert list(body) == ["for-loop-2"]
    assert body["for-loop-2"]["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--symbols"
    loop = ir["components"]["comp-for-loop-2"]["dag"]["tasks"]
    assert set(loop) == set(STAGES)
    for name, deps in STAGES.items():
        assert sorted(loop[name].get("dependentTasks") or []) == sorted(deps or []), name


def test_images_by_role_and_no_runtime_pip_install(compiled):
    ir, _, _ = compiled
    executors = ir["deploymentSpec"]["executors"]
    for name in STAGES:
        container = executors[f"exec-{name}"]["container"]
        role = "trainer" if name in TRAINER_TASKS else "data"
        assert container["image"] == image(role), name
        assert "pip install" not in " ".join(container["command"]), name


def test_caching_off_retries_resources_timeout(compiled):
    ir, platform, _ = compiled
    loop = ir["components"]["comp-for-loop-2"]["dag"]["tasks"]
    for name, task in loop.items():
        assert not task.get("cachingOptions", {}).get("enableCache"), name
    # no KFP retry: it would repeat errors no retry cures (fetch retries transient faults itself)
    assert not any("retryPolicy" in task for task in loop.values())
    resources = ir["deploymentSpec"]["executors"]["exec-train-lstm"]["container"]["resources"]
    assert resources["resourceCpuLimit"] == "2" and resources["resourceMemoryLimit"] == "4G"
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors["exec-train-lstm"]["activeDeadlineSeconds"] == "1800"
    secret = executors["exec-publish-model"]["secretAsEnv"][0]
    assert {k["envVar"] for k in secret["keyToEnv"]} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert secret["optional"] is True


def test_the_exit_task_sends_the_run_summary_whatever_the_body_did(compiled):
    ir, platform, _ = compiled
    notify = ir["root"]["dag"]["tasks"]["notify-run"]
    assert notify["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert notify["dependentTasks"] == ["exit-handler-1"]
    params = notify["inputs"]["parameters"]
    assert params["status"]["taskFinalStatus"]["producerTask"] == "exit-handler-1"
    assert params["run_created"]["runtimeValue"]["constant"] == "{{$.pipeline_job_create_time_utc}}"
    assert params["run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"
    assert params["symbols"]["componentInputParameter"] == "symbols"
    assert not notify.get("cachingOptions", {}).get("enableCache")
    assert ir["deploymentSpec"]["executors"]["exec-notify-run"]["container"]["image"] == image("data")
    secrets = {s.get("secretName", "s3_secret param"): s for s in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
               ["exec-notify-run"]["secretAsEnv"]}
    hook = secrets["mkrich-notify"]
    assert hook["optional"] is True  # no Secret: the summary is only logged
    assert {(k["secretKey"], k["envVar"]) for k in hook["keyToEnv"]} == {
        ("url", "MKRICH_NOTIFY_URL"), ("format", "MKRICH_NOTIFY_FORMAT"), ("dashboard_url", "MKRICH_DASHBOARD_URL")}
    assert set(secrets) == {"s3_secret param", "mkrich-pushgateway", "mkrich-notify"}  # reads the store, pushes a failure


def test_fetch_ends_at_the_scheduled_time(compiled):
    ir, _, _ = compiled
    fetch = ir["components"]["comp-for-loop-2"]["dag"]["tasks"]["fetch-klines"]
    end = fetch["inputs"]["parameters"]["end_time"]["runtimeValue"]["constant"]
    assert end == "{{$.pipeline_job_schedule_time_utc}}"


def test_pipeline_parameters_and_defaults(compiled):
    ir, _, _ = compiled
    params = ir["root"]["inputDefinitions"]["parameters"]
    assert params["symbols"]["defaultValue"] == ["BTCEUR"]
    assert params["source"]["defaultValue"] == "binance"
    assert params["sequence_length"]["defaultValue"] == 48
    assert params["coverage_min"]["defaultValue"] == 0.85 and params["blend_har"]["defaultValue"] is True
    assert params["gate_tolerance"]["defaultValue"] == 0.02
    assert {"lookback_days", "lstm_units", "learning_rate", "store_uri", "s3_secret"} <= set(params)


def test_kubernetes_manifests(compiled):
    _, _, docs = compiled
    kinds = {(d["apiVersion"], d["kind"]): d for d in docs}
    pipeline = kinds[("pipelines.kubeflow.org/v2beta1", "Pipeline")]
    version = kinds[("pipelines.kubeflow.org/v2beta1", "PipelineVersion")]
    assert pipeline["metadata"]["name"] == "hourly-training"
    assert version["spec"]["pipelineName"] == "hourly-training"
    assert version["spec"]["pipelineSpec"]["pipelineInfo"]["name"] == "hourly-training"
