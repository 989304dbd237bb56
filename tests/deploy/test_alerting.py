"""The optional alerting objects (kustomize component alerting, chart value alerting.enabled):
valid prometheus-operator resources, one rule source for both, a PodMonitor that finds the
predictor pods, and a dashboard and rules that read only metrics we export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import yaml

from conftest import REPO

SCHEMAS = Path(__file__).parent / "schemas"
ALERTING = REPO / "manifests" / "components" / "alerting"
VARIANTS = ("kustomize:overlays/alerting-test", "helm:alerting")


def of_kind(documents, kind):
    return [d for d in documents if d["kind"] == kind]


def test_only_where_asked_for(rendered):
    for variant, documents in rendered.items():
        kinds = {d["kind"] for d in documents}
        if variant in VARIANTS:
            assert {"PrometheusRule", "PodMonitor"} <= kinds, variant
        else:
            assert not kinds & {"PrometheusRule", "PodMonitor"}, variant


def test_prometheus_operator_objects_match_their_schemas(rendered):
    schemas = {kind: json.loads((SCHEMAS / f"{kind.lower()}.monitoring.v1.schema.json").read_text())
               for kind in ("PrometheusRule", "PodMonitor")}
    for variant in VARIANTS:
        for kind, schema in schemas.items():
            (doc,) = of_kind(rendered[variant], kind)
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
    source = yaml.safe_load((ALERTING / "prometheusrule.yaml").read_text())["spec"]
    for variant in VARIANTS:
        (rule,) = of_kind(rendered[variant], "PrometheusRule")
        assert rule["spec"] == source, variant
    (chart_rule,) = of_kind(rendered["helm:alerting"], "PrometheusRule")
    assert chart_rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_pod_monitor_finds_the_predictor_pods(rendered):
    for variant in VARIANTS:
        (monitor,) = of_kind(rendered[variant], "PodMonitor")
        (expr,) = monitor["spec"]["selector"]["matchExpressions"]
        assert expr["key"] == "serving.kserve.io/inferenceservice" and expr["operator"] == "In"
        predictors = {d["metadata"]["name"]: d for d in of_kind(rendered[variant], "InferenceService")
                      if d["spec"]["predictor"].get("containers")}
        assert sorted(expr["values"]) == sorted(predictors) and predictors, variant
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        assert endpoint["path"] == "/metrics"
        for isvc in predictors.values():
            ports = {p.get("name"): p["containerPort"] for p in isvc["spec"]["predictor"]["containers"][0]["ports"]}
            assert ports.get(endpoint["port"]) == 8080, (variant, isvc["metadata"]["name"])


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
    (rule,) = of_kind(rendered["helm:alerting"], "PrometheusRule")
    exprs += [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    used = {m for e in exprs for m in re.findall(r"\b(?:mkrich_\w+|request_\w+_seconds\w*)", e)}
    assert used and used <= exported, used - exported
    assert {"mkrich_forecast_close", "mkrich_last_close", "mkrich_model_created_timestamp_seconds",
            "mkrich_pipeline_gate_passed"} <= used
