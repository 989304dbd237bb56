"""The schedule registration never decides the fate of a release: a plain Job (Helm waits for
hooks, so a slow or unreachable KFP failed `helm install` with "context deadline exceeded"),
which retries on its own with Kubernetes' pod backoff and says in its status whether it worked."""

from __future__ import annotations

import re

import pytest
import yaml
from deploy_tools import REPO, docs, run, tool

CHART = str(REPO / "charts" / "make-us-rich")


def _dry_run(*args: str) -> tuple[list[dict], list[dict], str]:
    """(hooks, manifest, notes) of `helm install --dry-run=client` (no cluster needed)."""
    out = run(tool("helm"), "install", "mkrich", CHART, "--namespace", "make-us-rich",
              "--dry-run=client", *args)
    match = re.search(r"^HOOKS:\n(.*?)^MANIFEST:\n(.*?)(?:^NOTES:\n(.*))?\Z", out, re.S | re.M)
    assert match, out
    return docs(match.group(1)), docs(match.group(2)), match.group(3) or ""


def test_registration_is_not_a_hook_helm_waits_for():
    hooks, manifest, notes = _dry_run("--set", "scheduler.enabled=true")
    assert hooks == []  # `helm install` returns once the objects are created
    (job,) = [d for d in manifest if d["kind"] == "Job"]
    assert not any(key.startswith("helm.sh/hook") for key in job["metadata"].get("annotations", {}))
    # one Job per revision: Jobs are immutable, and Helm deletes the previous revision's
    assert job["metadata"]["name"] == "mkrich-register-schedule-1"
    assert "job/mkrich-register-schedule-1" in notes  # NOTES say how to see whether it worked


def test_registration_retries_and_cleans_up(rendered):
    jobs = {variant: d for variant, documents in rendered.items() for d in documents if d["kind"] == "Job"}
    assert {"helm:all", "kustomize:overlays/local-kind", "kustomize:overlays/prod"} <= set(jobs)
    for variant, job in jobs.items():
        spec = job["spec"]
        # a failed attempt ends its pod; the Job controller starts the next one after 10 s, 20 s,
        # 40 s ... (capped at 6 min): 6 retries wait ~10 min for KFP before the Job is Failed
        assert spec["template"]["spec"]["restartPolicy"] == "Never", variant
        assert spec["backoffLimit"] == 6, variant
        assert spec["ttlSecondsAfterFinished"] == 86400, variant


def test_retries_and_ttl_are_values_checked_by_the_schema(tmp_path):
    hooks, manifest, _ = _dry_run("--set", "scheduler.enabled=true", "--set", "scheduler.backoffLimit=2",
                                  "--set", "scheduler.ttlSecondsAfterFinished=600")
    (job,) = [d for d in manifest if d["kind"] == "Job"]
    assert (job["spec"]["backoffLimit"], job["spec"]["ttlSecondsAfterFinished"]) == (2, 600)
    values = tmp_path / "bad.yaml"
    values.write_text(yaml.safe_dump({"scheduler": {"backoffLimit": "forever"}}))
    with pytest.raises(AssertionError, match="backoffLimit"):
        run(tool("helm"), "template", "mkrich", CHART, "-f", str(values))
    linted = run(tool("helm"), "lint", "--strict", CHART, "--set", "scheduler.enabled=true")
    assert "0 chart(s) failed" in linted
