"""The compiled ``universal-training`` pipeline (what the cluster registers when the scheduler's
``pipeline`` setting names it): the committed manifest is current, the wiring, the images and
the training task's resources."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from make_us_rich.errors import ConfigError
from make_us_rich.images import image
from make_us_rich.pipelines.catalog import PIPELINES, compile_all, pipeline_named

NATIVE = Path(__file__).resolve().parents[2] / "manifests" / "components" / "kfp-native-pipeline"


def load(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, Path]:
    return {p.name: p for p in compile_all(tmp_path_factory.mktemp("compiled"))}


def test_every_pipeline_compiled_and_the_committed_manifests_current(compiled):
    assert sorted(compiled) == sorted(f"{n}{ext}" for n in PIPELINES for ext in (".yaml", ".k8s.yaml"))
    for name in PIPELINES:
        assert load(NATIVE / f"{name}.k8s.yaml") == load(compiled[f"{name}.k8s.yaml"]), (
            f"manifests/components/kfp-native-pipeline/{name}.k8s.yaml is stale: run `make compile`")
    kustomization = load(NATIVE / "kustomization.yaml")[0]
    assert sorted(kustomization["resources"]) == sorted(f"{n}.k8s.yaml" for n in PIPELINES)


def test_universal_wiring_images_resources(compiled):
    ir, platform = yaml.safe_load_all(compiled["universal-training.yaml"].read_text())
    assert ir["pipelineInfo"]["name"] == "universal-training"
    assert sorted(ir["root"]["dag"]["tasks"]) == ["exit-handler-1", "notify-run"]
    body = ir["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    assert sorted(body) == ["fetch-market", "for-loop-2", "train-universal"]
    assert body["train-universal"]["dependentTasks"] == ["fetch-market"]  # ONE training task
    assert sorted(body["for-loop-2"]["dependentTasks"]) == ["fetch-market", "train-universal"]
    # the evaluation batches are the ones fetch-market returns, in parallel
    assert body["for-loop-2"]["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--fetch-market-Output"
    assert list(ir["components"]["comp-for-loop-2"]["dag"]["tasks"]) == ["evaluate-and-publish"]
    executors = ir["deploymentSpec"]["executors"]
    roles = {"fetch-market": "data", "train-universal": "trainer", "evaluate-and-publish": "trainer",
             "notify-run": "data"}
    for name, role in roles.items():
        container = executors[f"exec-{name}"]["container"]
        assert container["image"] == image(role), name
        assert "pip install" not in " ".join(container["command"]), name
    resources = executors["exec-train-universal"]["container"]["resources"]
    assert resources["resourceCpuLimit"] == "2" and resources["resourceMemoryLimit"] == "8G"
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert k8s["exec-train-universal"]["activeDeadlineSeconds"] == "1800"
    assert {s["keyToEnv"][0]["envVar"] for s in k8s["exec-evaluate-and-publish"]["secretAsEnv"]} >= {
        "AWS_ACCESS_KEY_ID"}  # publish writes the store
    params = ir["root"]["inputDefinitions"]["parameters"]
    assert {"concurrency", "eval_batch", "time_budget", "warm_start", "rollout_isvc"} <= set(params)
    for task in [*body.values(), *ir["components"]["comp-for-loop-2"]["dag"]["tasks"].values()]:
        assert not task.get("cachingOptions", {}).get("enableCache")


def test_universal_kubernetes_manifests(compiled):
    kinds = {d["kind"]: d for d in load(compiled["universal-training.k8s.yaml"])}
    assert kinds["Pipeline"]["metadata"]["name"] == "universal-training"
    assert kinds["PipelineVersion"]["spec"]["pipelineName"] == "universal-training"
    assert kinds["PipelineVersion"]["metadata"]["name"].startswith("universal-training-v")


def test_unknown_pipeline_name_is_a_clear_error():
    with pytest.raises(ConfigError, match="hourly-training, universal-training"):
        pipeline_named("hourly")


def test_each_exit_task_is_told_its_pipeline(compiled):
    """The run summary's title names the pipeline even when the run published nothing."""
    for name in PIPELINES:
        ir = next(yaml.safe_load_all(compiled[f"{name}.yaml"].read_text()))
        notify = ir["root"]["dag"]["tasks"]["notify-run"]["inputs"]["parameters"]["pipeline"]
        assert notify["runtimeValue"]["constant"] == name
