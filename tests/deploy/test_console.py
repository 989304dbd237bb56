"""The console on the cluster (manifests/components/console*, the chart's ``console``): its
image, the migration before serving, settings from Secrets only, probes on the app's routes, the
pieces wired to each other by name (Service -> pods, Ingress -> Service, NetworkPolicy -> pods,
inference URL -> a predictor we deploy, PostgreSQL Secret -> the Cluster that makes it)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from deploy_tools import REPO, run, tool

from make_us_rich.images import image

VARIANTS = ("kustomize:overlays/console-test", "kustomize:overlays/console-postgres-test",
            "kustomize:overlays/local-kind", "helm:console", "helm:console-predictor", "helm:all-symbols-predictor")
SCHEMAS = Path(__file__).parent / "schemas"


def _one(documents, kind, component="console"):
    found = [d for d in documents if d["kind"] == kind
             and d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component]
    assert len(found) == 1, (kind, [d["metadata"]["name"] for d in found])
    return found[0]


def _env(container, documents) -> dict[str, dict]:
    """Name -> {"value": …} or {"secret": (name, key)} of a container, ConfigMaps resolved."""
    env = {}
    for ref in container.get("envFrom", []):
        (cm,) = [d for d in documents if d["kind"] == "ConfigMap"
                 and d["metadata"]["name"] == ref["configMapRef"]["name"]]
        env.update({k: {"value": v} for k, v in cm["data"].items()})
    for e in container.get("env", []):
        if "valueFrom" in e:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = {"secret": (ref["name"], ref["key"]), "optional": ref.get("optional", False)}
        else:
            env[e["name"]] = {"value": e["value"]}
    return env


def _matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("variant", VARIANTS)
def test_console_deployment(rendered, variant):
    documents = rendered[variant]
    deployment = _one(documents, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (migrate,) = pod["initContainers"]
    (console,) = pod["containers"]
    assert migrate["image"] == console["image"] == image("console")
    assert migrate["args"] == ["migrate"] and "command" not in migrate  # the image's `mkrich console`
    env, migrate_env = _env(console, documents), _env(migrate, documents)
    # the database URL and session key from Secrets, the same database for both containers
    assert "secret" in env["MKRICH_CONSOLE_DB"] and "secret" in env["MKRICH_CONSOLE_SECRET"]
    assert migrate_env["MKRICH_CONSOLE_DB"] == env["MKRICH_CONSOLE_DB"]
    assert not env["MKRICH_CONSOLE_SECRET"].get("optional")
    for name, value in env.items():
        if re.search(r"SECRET|PASSWORD|TOKEN|_DB$|KEY", name) and name != "AWS_ACCESS_KEY_ID":
            assert "secret" in value, f"{variant}: {name} must come from a Secret"
    assert env["MKRICH_STORE"]["value"].startswith("s3://")
    # no kfp.local runs folder on a cluster: the runs page points to the KFP dashboard
    assert env["MKRICH_CONSOLE_RUNS_DIR"]["value"] == "off", variant
    # behind an Ingress, the controller's X-Forwarded-For is believed (per-address throttle)
    if any(d["kind"] == "Ingress" for d in documents):
        assert "/" in env["MKRICH_CONSOLE_TRUSTED_PROXIES"]["value"], variant
    # probes on the app's routes, on the port the app listens on
    (port,) = console["ports"]
    args = console["args"]
    assert port["containerPort"] == int(args[args.index("--port") + 1]) == 8000
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert console["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert console["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert console["startupProbe"]["httpGet"]["path"] == "/healthz"
    # Service -> pods -> port; NetworkPolicy lets that port in
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _matches(deployment["spec"]["selector"]["matchLabels"], labels)
    service = _one(documents, "Service")
    assert _matches(service["spec"]["selector"], labels)
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    policy = _one(documents, "NetworkPolicy")
    assert _matches(policy["spec"]["podSelector"]["matchLabels"], labels)
    assert {"protocol": "TCP", "port": 8000} in policy["spec"]["ingress"][0]["ports"]
    assert pod["serviceAccountName"] == _one(documents, "ServiceAccount")["metadata"]["name"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_console_calls_a_predictor_we_deploy(rendered, variant):
    documents = rendered[variant]
    console = _one(documents, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    url = _env(console, documents)["MKRICH_CONSOLE_INFERENCE_URL"]["value"]
    host = re.fullmatch(r"http://([a-z0-9-]+)-predictor(\.[a-z0-9-]+\.svc\.cluster\.local)?", url)
    assert host, url  # KServe's predictor Service of an InferenceService
    isvcs = {d["metadata"]["name"]: d for d in documents if d["kind"] == "InferenceService"}
    assert host.group(1) in isvcs, (url, sorted(isvcs))
    if host.group(2):
        assert host.group(2) == f".{isvcs[host.group(1)]['metadata']['namespace']}.svc.cluster.local"


def test_console_ingress_routes_to_its_service(rendered):
    for variant in ("kustomize:overlays/console-test", "helm:console"):
        documents = rendered[variant]
        ingress, service = _one(documents, "Ingress"), _one(documents, "Service")
        backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        assert backend["name"] == service["metadata"]["name"]
        assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
        assert ingress["spec"]["tls"][0]["hosts"] == [ingress["spec"]["rules"][0]["host"]]
    assert not [d for d in rendered["helm:console-predictor"] if d["kind"] == "Ingress"]


def test_console_postgres_option(rendered):
    schema = json.loads((SCHEMAS / "cluster.postgresql.cnpg.v1.schema.json").read_text())
    for variant in ("kustomize:overlays/console-postgres-test", "kustomize:overlays/local-kind", "helm:console"):
        documents = rendered[variant]
        cluster = _one(documents, "Cluster", component="console-db")
        jsonschema.validate(cluster, schema)
        pod = _one(documents, "Deployment")["spec"]["template"]["spec"]
        for container in pod["containers"] + pod["initContainers"]:
            # CloudNativePG writes <cluster>-app with the owner's connection URI under `uri`
            assert _env(container, documents)["MKRICH_CONSOLE_DB"]["secret"] == (
                f"{cluster['metadata']['name']}-app", "uri"), variant
    for variant in ("kustomize:overlays/console-test", "helm:console-predictor"):
        assert not [d for d in rendered[variant] if d["kind"] == "Cluster"]
    typo = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "db"},
            "spec": {"instances": 2, "storage": {"size": "1Gi"}, "bootstrap": {"initDB": {}}}}
    with pytest.raises(jsonschema.ValidationError, match="initDB"):
        jsonschema.validate(typo, schema)


def test_console_is_off_by_default(rendered):
    """Except on a local cluster (local-kind), where the walkthrough reaches it."""
    for variant in ("kustomize:overlays/prod", "helm:default", "helm:all"):
        assert not [d for d in rendered[variant]
                    if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "console"]


def test_console_args_are_flags_of_the_cli(rendered):
    """What the manifests pass is what `mkrich console` accepts (the image's entry point)."""
    out = subprocess.run([sys.executable, "-m", "make_us_rich.cli", "console", "--help"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    for variant in VARIANTS:
        console = _one(rendered[variant], "Deployment")["spec"]["template"]["spec"]["containers"][0]
        for flag in (a for a in console["args"] if a.startswith("--")):
            assert flag in out.stdout, (variant, flag)
    migrate = subprocess.run([sys.executable, "-m", "make_us_rich.cli", "console", "migrate", "--help"],
                             capture_output=True, text=True, cwd=REPO)
    assert migrate.returncode == 0, migrate.stderr


def test_chart_refuses_bad_console_values():
    chart = str(REPO / "charts" / "make-us-rich")
    helm = tool("helm")
    linted = run(helm, "lint", "--strict", chart, "--set", "console.enabled=true",
                 "--set", "console.ingress.enabled=true", "--set", "console.ingress.trustedProxies=10.0.0.0/8",
                 "--set", "console.postgres.enabled=true")
    assert "0 chart(s) failed" in linted
    # behind an Ingress the console must know whose X-Forwarded-For to believe
    with pytest.raises(AssertionError, match="console.ingress.trustedProxies: set the ingress controller"):
        run(helm, "template", "x", chart, "--set", "console.enabled=true", "--set", "console.ingress.enabled=true")
    for bad in (["--set", "console.source=csv"], ["--set", "console.replicas=0"],
                ["--set", "console.ingress.trustedProxies=$(evil)"],
                ["--set", "console.inferenceUrl=predictor:8080"], ["--set", "console.database.secretName=Bad_Name"]):
        with pytest.raises(AssertionError, match="values don't meet the specifications|does not match|minimum|value must be one of"):
            run(helm, "template", "x", chart, "--set", "console.enabled=true", *bad)
    with pytest.raises(AssertionError, match="console.inferenceUrl is required"):
        run(helm, "template", "x", chart, "--set", "console.enabled=true", "--set", "triton.enabled=false",
            "--set", "predictor.enabled=true", "--set", "symbols={BTCEUR,BTCUSDT}")
    explicit = run(helm, "template", "x", chart, "--set", "console.enabled=true",
                   "--set", "console.inferenceUrl=https://triton.example.com")
    assert '"https://triton.example.com"' in explicit
