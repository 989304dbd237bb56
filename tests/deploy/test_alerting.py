"""The optional alerting objects (kustomize component alerting, chart value alerting.enabled):
valid prometheus-operator resources, one rule source for both, PodMonitors that find the
predictor pods and Triton's metrics port, and a dashboard and rules that read only metrics we
(or Triton) export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import yaml
from deploy_tools import REPO

SCHEMAS = Path(__file__).parent / "schemas"
ALERTING = REPO / "manifests" / "components" / "alerting"
VARIANTS = ("kustomize:overlays/alerting-test", "helm:alerting")
#: Triton's per-model metrics, from its documentation (docs/user_guide/metrics.md of
#: triton-inference-server/server): what the Triton rules may read
TRITON_METRICS = {
    "nv_inference_request_success", "nv_inference_request_failure", "nv_inference_count",
    "nv_inference_exec_count", "nv_inference_request_duration_us", "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us", "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
}


def of_kind(documents, kind, name=None):
    return [d for d in documents if d["kind"] == kind and name in (None, d["metadata"]["name"])]


def test_only_where_asked_for(rendered):
    for variant, documents in rendered.items():
        objects = {(d["kind"], d["metadata"]["name"]) for d in documents if d["kind"] in ("PrometheusRule", "PodMonitor")}
        if variant in VARIANTS:
            assert objects == {("PrometheusRule", "mkrich-alerts"), ("PodMonitor", "mkrich-predictor"),
                               ("PrometheusRule", "mkrich-triton-alerts"), ("PodMonitor", "mkrich-triton")}, variant
        elif variant == "helm:alerting-no-triton":  # no Triton, no Triton alerts
            assert objects == {("PrometheusRule", "mkrich-alerts"), ("PodMonitor", "mkrich-predictor")}
        else:
            assert not objects, variant


def test_prometheus_operator_objects_match_their_schemas(rendered):
    schemas = {kind: json.loads((SCHEMAS / f"{kind.lower()}.monitoring.v1.schema.json").read_text())
               for kind in ("PrometheusRule", "PodMonitor")}
    for variant in VARIANTS:
        for kind, schema in schemas.items():
            found = of_kind(rendered[variant], kind)
            assert len(found) == 2, variant
            for doc in found:
                jsonschema.validate(doc, schema)
    typo = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor", "metadata": {"name": "x"},
            "spec": {"selector": {}, "podMetricEndpoints": []}}
    try:
        jsonschema.validate(typo, schemas["PodMonitor"])
    except jsonschema.ValidationError as exc:
        assert "podMetricEndpoints" in exc.message
    else:
        raise AssertionError("the PodMonitor schema let a misspelt field through")


def test_chart_and_kustomize_render_the_same_rules(rendered):
    for name, source_file in (("mkrich-alerts", "prometheusrule.yaml"), ("mkrich-triton-alerts", "prometheusrule-triton.yaml")):
        source = yaml.safe_load((ALERTING / source_file).read_text())["spec"]
        for variant in VARIANTS:
            (rule,) = of_kind(rendered[variant], "PrometheusRule", name)
            assert rule["spec"] == source, (variant, name)
        (chart_rule,) = of_kind(rendered["helm:alerting"], "PrometheusRule", name)
        assert chart_rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_pod_monitor_finds_the_predictor_pods(rendered):
    for variant in VARIANTS:
        (monitor,) = of_kind(rendered[variant], "PodMonitor", "mkrich-predictor")
        (expr,) = monitor["spec"]["selector"]["matchExpressions"]
        assert expr["key"] == "serving.kserve.io/inferenceservice" and expr["operator"] == "In"
        predictors = {d["metadata"]["name"]: d for d in of_kind(rendered[variant], "InferenceService")
                      if d["spec"]["predictor"].get("containers")}
        assert predictors and set(predictors) <= set(expr["values"]), variant
        if variant.startswith("kustomize"):  # the component lists both predictor components' names
            assert sorted(expr["values"]) == sorted(_component_predictors()), variant
        else:
            assert sorted(expr["values"]) == sorted(predictors), variant
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        assert endpoint["path"] == "/metrics"
        for isvc in predictors.values():
            ports = {p.get("name"): p["containerPort"] for p in isvc["spec"]["predictor"]["containers"][0]["ports"]}
            assert ports.get(endpoint["port"]) == 8080, (variant, isvc["metadata"]["name"])


def test_triton_pod_monitor_scrapes_port_8002_of_the_triton_pods(rendered):
    """Knative declares only the serving port: the monitor keeps Triton's container target
    and rewrites its address to the pod IP and Triton's metrics port."""
    source = yaml.safe_load((ALERTING / "podmonitor-triton.yaml").read_text())["spec"]
    for variant in VARIANTS:
        (monitor,) = of_kind(rendered[variant], "PodMonitor", "mkrich-triton")
        (expr,) = monitor["spec"]["selector"]["matchExpressions"]
        tritons = [d for d in of_kind(rendered[variant], "InferenceService")
                   if d["spec"]["predictor"].get("model", {}).get("runtime") == "kserve-tritonserver"]
        assert [t["metadata"]["name"] for t in tritons] == ["mkrich-onnx"], variant
        assert (expr["key"], expr["operator"], expr["values"]) == ("serving.kserve.io/inferenceservice", "In", ["mkrich-onnx"])
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        (wanted,) = source["podMetricsEndpoints"]
        assert endpoint["relabelings"] == wanted["relabelings"] and endpoint["path"] == "/metrics", variant
        keep, address = endpoint["relabelings"]
        assert (keep["sourceLabels"], keep["regex"], keep["action"]) == (["__meta_kubernetes_pod_container_name"], "kserve-container", "keep")
        assert (address["sourceLabels"], address["targetLabel"]) == (["__meta_kubernetes_pod_ip"], "__address__")
        assert re.fullmatch(address["regex"], "10.1.2.3") and address["replacement"] == "${1}:8002"
        assert "port" not in endpoint and "portNumber" not in endpoint


def test_triton_rules_read_only_tritons_documented_metrics(rendered):
    (rule,) = of_kind(rendered["helm:alerting"], "PrometheusRule", "mkrich-triton-alerts")
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    used = {m for e in exprs for m in re.findall(r"\bnv_\w+", e)}
    assert used <= TRITON_METRICS and {"nv_inference_request_failure", "nv_inference_queue_duration_us"} <= used
    assert all('job=~".+/mkrich-triton"' in e for e in exprs if "up{" in e)  # the PodMonitor's job label


def _exported_metrics() -> set[str]:
    """Every metric name the predictor (/metrics) and the publish step (Pushgateway) export."""
    from prometheus_client import REGISTRY

    from make_us_rich.observability import PREFIX, run_metrics
    from make_us_rich.serving import metrics  # noqa: F401  (registers the predictor's metrics)

    names = set()
    for family in REGISTRY.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}.get(family.type, ("",))
        names |= {family.name + s for s in suffixes}
    full = {"test": {"ratio": {"pinball_vs_empirical": 1, "median_rmse_vs_persistence": 1},
                     "model": {"intervals": {"90": {"coverage": 0.9}}}},
            "gate": {"passed": True}, "training": {"seconds": 1}}
    names |= {PREFIX + n for n in run_metrics(full, 0, 0.0)}
    names.add(PREFIX + "last_failure_timestamp_seconds")
    return names


def test_rules_and_dashboard_read_only_exported_metrics(rendered):
    exported = _exported_metrics()
    (dashboard,) = [d for d in of_kind(rendered["helm:alerting"], "ConfigMap") if d["metadata"]["name"] == "mkrich-grafana-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    (kustomized,) = [d for d in of_kind(rendered["kustomize:overlays/alerting-test"], "ConfigMap")
                     if d["metadata"]["name"] == "mkrich-grafana-dashboard"]
    assert kustomized["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = json.loads(dashboard["data"]["make-us-rich.json"])
    assert board == json.loads(kustomized["data"]["make-us-rich.json"])
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    (rule,) = of_kind(rendered["helm:alerting"], "PrometheusRule", "mkrich-alerts")
    exprs += [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    used = {m for e in exprs for m in re.findall(r"\b(?:mkrich_\w+|request_\w+_seconds\w*)", e)}
    assert used and used <= exported, used - exported
    assert {"mkrich_forecast_close", "mkrich_last_close", "mkrich_model_created_timestamp_seconds",
            "mkrich_pipeline_gate_passed"} <= used


def _component_predictors() -> list[str]:
    """The InferenceService names of the kustomize predictor components (python-predictor, one
    symbol; universal-predictor, every symbol)."""
    names = []
    for component in ("python-predictor", "universal-predictor"):
        (isvc,) = yaml.safe_load_all((ALERTING.parent / component / "inferenceservice.yaml").read_text())
        names.append(isvc["metadata"]["name"])
    return names
