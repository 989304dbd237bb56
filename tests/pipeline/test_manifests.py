"""manifests/base: the committed pipeline manifests match the code, and the scheduler Job is
least-privilege and Pod-Security-restricted."""

from __future__ import annotations

from pathlib import Path

import yaml

from make_us_rich.pipelines.catalog import compile_pipeline

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
BASE = MANIFESTS / "base"
NATIVE = MANIFESTS / "components" / "kfp-native-pipeline"


def load(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_committed_pipeline_manifest_is_up_to_date(tmp_path):
    _, fresh = compile_pipeline("hourly-training", tmp_path)
    assert load(NATIVE / "hourly-training.k8s.yaml") == load(fresh), (
        "manifests/components/kfp-native-pipeline is stale: run `make compile`"
    )


def test_kustomization_lists_existing_files():
    for folder in (BASE, NATIVE, *(MANIFESTS / "components" / c for c in ("python-predictor", "universal-predictor"))):
        kustomization = load(folder / "kustomization.yaml")[0]
        for resource in kustomization["resources"]:
            assert (folder / resource).is_file(), resource
    kustomization = load(BASE / "kustomization.yaml")[0]
    literals = dict(item.split("=", 1) for item in kustomization["configMapGenerator"][0]["literals"])
    assert {"KFP_HOST", "KFP_NAMESPACE", "SYMBOLS", "SOURCE", "STORE_URI", "S3_ENDPOINT",
            "MKRICH_IMAGE_REGISTRY", "MKRICH_IMAGE_TAG"} <= set(literals)


def test_scheduler_job_runs_mkrich_schedule_restricted():
    (job,) = load(BASE / "scheduler" / "job.yaml")
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "mkrich-scheduler"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = pod["containers"]
    assert container["command"] == ["mkrich", "schedule"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] and sc["capabilities"]["drop"] == ["ALL"]
    assert not sc["allowPrivilegeEscalation"]
    token = next(v for v in pod["volumes"] if v["name"] == "kfp-token")
    assert token["projected"]["sources"][0]["serviceAccountToken"]["audience"] == "pipelines.kubeflow.org"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KF_PIPELINES_SA_TOKEN_PATH"] == "/var/run/secrets/kubeflow/pipelines/token"


def test_scheduler_rbac_is_least_privilege():
    role, binding = load(BASE / "scheduler" / "rbac.yaml")
    assert role["kind"] == "Role"  # namespaced, never a ClusterRole
    for rule in role["rules"]:
        assert rule["apiGroups"] == ["pipelines.kubeflow.org"]
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "mkrich-scheduler"}]
