"""The pipeline the registration Job schedules is one setting: ``PIPELINE`` in the kustomize
ConfigMap, ``scheduler.pipeline`` in the chart (checked by its schema), both passed as
``mkrich schedule --pipeline``."""

from __future__ import annotations

import pytest
from deploy_tools import REPO, docs, run, tool

from make_us_rich.pipelines.catalog import DEFAULT_PIPELINE, PIPELINES

CHART = str(REPO / "charts" / "make-us-rich")


def _schedule_args(job: dict) -> list[str]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["mkrich", "schedule"]
    return container["args"]


def test_kustomize_job_takes_the_pipeline_from_its_configmap(rendered):
    for variant in ("kustomize:base", "kustomize:overlays/local-kind", "kustomize:overlays/prod"):
        documents = rendered[variant]
        (cm,) = [d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "mkrich-schedule"]
        assert cm["data"]["PIPELINE"] == DEFAULT_PIPELINE, variant
        (job,) = [d for d in documents if d["kind"] == "Job"]
        assert "--pipeline=$(PIPELINE)" in _schedule_args(job), variant


@pytest.mark.parametrize("name", list(PIPELINES))
def test_chart_value_reaches_the_job(name):
    out = run(tool("helm"), "template", "mkrich", CHART, "--set", "scheduler.enabled=true",
              "--set", f"scheduler.pipeline={name}")
    (job,) = [d for d in docs(out) if d["kind"] == "Job"]
    assert f"--pipeline={name}" in _schedule_args(job)


def test_chart_default_and_schema():
    out = run(tool("helm"), "template", "mkrich", CHART, "--set", "scheduler.enabled=true")
    (job,) = [d for d in docs(out) if d["kind"] == "Job"]
    assert f"--pipeline={DEFAULT_PIPELINE}" in _schedule_args(job)
    with pytest.raises(AssertionError, match="pipeline"):
        run(tool("helm"), "template", "mkrich", CHART, "--set", "scheduler.pipeline=universal")
