"""The deployment renders with the real kubectl/helm and every object is valid: core kinds by
kubernetes-validate --strict, InferenceServices by the kserve SDK models, KFP custom resources
by their schemas. Pods meet Pod Security "restricted"."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from deploy_tools import K8S_VERSION, REPO, run, tool

CUSTOM = {"InferenceService", "Pipeline", "PipelineVersion", "PrometheusRule", "PodMonitor", "Cluster"}
SCHEMAS = Path(__file__).parent / "schemas"


def all_docs(rendered):
    for variant, documents in rendered.items():
        for doc in documents:
            yield variant, doc


def test_every_variant_renders(rendered):
    kinds = {variant: sorted({d["kind"] for d in documents}) for variant, documents in rendered.items()}
    assert {"Job", "InferenceService", "Role", "NetworkPolicy", "ConfigMap"} <= set(kinds["kustomize:base"])
    assert {"Pipeline", "PipelineVersion"} <= set(kinds["kustomize:overlays/native-test"])
    assert "Pipeline" not in kinds["kustomize:overlays/prod"]  # CRDs of KFP's native mode only
    assert "Secret" in kinds["kustomize:overlays/local-kind"] and "Namespace" in kinds["kustomize:overlays/prod"]
    assert kinds["helm:default"] == ["InferenceService", "ServiceAccount"]
    isvcs = [d["metadata"]["name"] for d in rendered["helm:all"] if d["kind"] == "InferenceService"]
    assert sorted(isvcs) == ["btceur-close", "btcusdt-close", "mkrich-onnx"]
    for variant, doc in all_docs(rendered):
        if variant == "kustomize:base":
            continue  # not deployable alone
        if doc["kind"] != "Namespace":  # every namespaced object says where it goes
            assert doc["metadata"].get("namespace"), (variant, doc["kind"], doc["metadata"]["name"])


def test_core_kinds_validate_strictly(rendered):
    import kubernetes_validate

    checked = 0
    for variant, doc in all_docs(rendered):
        if doc["kind"] in CUSTOM:
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{variant} {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
        checked += 1
    assert checked >= 20


def _check_model(value, type_name: str, path: str, errors: list[str]) -> None:
    import kserve.models
    import kubernetes.client.models as k8s

    if type_name in ("object",):
        return
    if type_name in ("str", "int", "bool", "float"):
        expected = {"str": str, "int": int, "bool": bool, "float": (int, float)}[type_name]
        if not isinstance(value, expected) or (type_name == "int" and isinstance(value, bool)):
            errors.append(f"{path}: expected {type_name}, got {type(value).__name__} {value!r}")
        return
    if type_name.startswith("list["):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list")
            return
        for i, item in enumerate(value):
            _check_model(item, type_name[5:-1], f"{path}[{i}]", errors)
        return
    if type_name.startswith("dict("):
        inner = type_name[5:-1].split(", ", 1)[1]
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a mapping")
            return
        for k, v in value.items():
            _check_model(v, inner, f"{path}.{k}", errors)
        return
    cls = getattr(kserve.models, type_name, None) or getattr(k8s, type_name, None)
    if cls is None:
        errors.append(f"{path}: unknown model type {type_name}")
        return
    if not isinstance(value, dict):
        errors.append(f"{path}: expected an object ({type_name})")
        return
    by_json = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    for key, item in value.items():
        if key not in by_json:
            errors.append(f"{path}.{key}: no such field in {type_name}")
            continue
        _check_model(item, cls.openapi_types[by_json[key]], f"{path}.{key}", errors)


def test_isvc_schema_is_what_the_sdk_models_give():
    from isvc_schema import build

    committed = json.loads((SCHEMAS / "inferenceservice.v1beta1.schema.json").read_text())
    assert committed == json.loads(json.dumps(build())), "regenerate: python tests/deploy/isvc_schema.py"


def test_inference_services_match_their_openapi_schema(rendered):
    schema = json.loads((SCHEMAS / "inferenceservice.v1beta1.schema.json").read_text())
    checked = 0
    for variant, doc in all_docs(rendered):
        if doc["kind"] == "InferenceService":
            try:
                jsonschema.validate(doc, schema)
            except jsonschema.ValidationError as exc:
                pytest.fail(f"{variant} {doc['metadata']['name']}: {exc.message} at {list(exc.absolute_path)}")
            checked += 1
    assert checked >= 5
    typo = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "spec": {"predictor": {"model": {"protocolversion": "v2"}}}}
    with pytest.raises(jsonschema.ValidationError, match="protocolversion"):
        jsonschema.validate(typo, schema)


def test_inference_services_match_the_kserve_sdk_models(rendered):
    checked = 0
    for variant, doc in all_docs(rendered):
        if doc["kind"] != "InferenceService":
            continue
        assert doc["apiVersion"] == "serving.kserve.io/v1beta1"
        errors: list[str] = []
        _check_model(doc, "V1beta1InferenceService", doc["metadata"]["name"], errors)
        assert errors == [], f"{variant}: {errors}"
        checked += 1
    assert checked >= 5
    # the checker is strict: a typo is caught
    bad: list[str] = []
    _check_model({"spec": {"predictor": {"model": {"protocolversion": "v2"}}}}, "V1beta1InferenceService", "x", bad)
    assert bad == ["x.spec.predictor.model.protocolversion: no such field in V1beta1ModelSpec"]


def test_kfp_custom_resources_match_their_schemas(rendered):
    schemas = {kind: json.loads((SCHEMAS / f"{kind.lower()}.v2beta1.schema.json").read_text())
               for kind in ("Pipeline", "PipelineVersion")}
    checked = 0
    for _, doc in all_docs(rendered):
        if doc["kind"] in schemas:
            jsonschema.validate(doc, schemas[doc["kind"]])
            checked += 1
    assert checked == 4  # the native-mode component: Pipeline + PipelineVersion of each pipeline


def _pod_specs(doc):
    if doc["kind"] in ("Job", "Deployment"):
        pod = doc["spec"]["template"]["spec"]
        yield pod, pod["containers"] + pod.get("initContainers", [])
    elif doc["kind"] == "InferenceService":
        predictor = doc["spec"]["predictor"]
        containers = predictor.get("containers") or [predictor["model"]]
        # Knative filters the pod securityContext: everything must sit on the container
        assert "securityContext" not in predictor, doc["metadata"]["name"]
        yield predictor, containers


def test_pods_meet_pod_security_restricted(rendered):
    checked = 0
    for variant, doc in all_docs(rendered):
        for pod, containers in _pod_specs(doc):
            where = f"{variant} {doc['kind']}/{doc['metadata']['name']}"
            assert pod.get("automountServiceAccountToken") is False, where
            for c in containers:
                sc = {**pod.get("securityContext", {}), **c["securityContext"]}
                assert sc["runAsNonRoot"] is True, where
                assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
                assert sc["allowPrivilegeEscalation"] is False, where
                assert sc["readOnlyRootFilesystem"] is True, where
                assert sc["capabilities"]["drop"] == ["ALL"], where
                mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
                assert "/tmp" in mounts, f"{where}: a read-only root needs a writable /tmp"
            checked += 1
    assert checked >= 8


def test_helm_lint_strict_and_schema():
    helm = tool("helm")
    chart = str(REPO / "charts" / "make-us-rich")
    out = run(helm, "lint", "--strict", chart)
    assert "0 chart(s) failed" in out
    for bad in (["--set", "symbols={btceur}"], ["--set", "store.uri=/local/path"],
                ["--set", "triton.minReplicas=-1"], ["--set", "unknown=1"]):
        with pytest.raises(AssertionError, match="values don't meet the specifications|does not match|minimum|additional properties"):
            run(helm, "template", "x", chart, *bad)
    with pytest.raises(AssertionError, match="s3.accessKeyId is required"):
        run(helm, "template", "x", chart, "--set", "s3.createSecret=true")
