"""The alert rules with the real promtool: `check rules`, and `test rules` unit tests in which
every alert fires when it should and stays silent when it should not. Two rule files: the
predictor's and the pipeline's (prometheusrule.yaml), and the Triton path's
(prometheusrule-triton.yaml), each with its own unit tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from monitoring import ALERTING, binary

HERE = Path(__file__).parent
RUNBOOK = "https://github.com/make-us-rich/make-us-rich/blob/main/docs/operations.md#"
#: rule file -> (its promtool unit tests, its alerts, the runbook sections of docs/operations.md)
RULES = {
    "prometheusrule.yaml": (HERE / "alerts_test.yml", {
        "MkrichModelStale", "MkrichModelReloadFailing", "MkrichReloadLoopDown", "MkrichEndpointErrorRate",
        "MkrichEndpointLatencyHigh", "MkrichNoPredictions", "MkrichGateRejectedRepeatedly",
        "MkrichPipelineRunFailed", "MkrichPipelineStalled",
    }, {"model-stale", "reload-failing", "reload-loop-down", "endpoint-errors", "endpoint-latency",
        "no-predictions", "gate-rejected", "pipeline-failed", "pipeline-stalled"}),
    "prometheusrule-triton.yaml": (HERE / "alerts_triton_test.yml", {
        "MkrichTritonDown", "MkrichTritonModelMissing", "MkrichTritonErrorRate", "MkrichTritonLatencyHigh",
        "MkrichTritonQueueing",
    }, {"triton-down", "triton-model-missing", "triton-errors", "triton-latency", "triton-queueing"}),
}
by_file = pytest.mark.parametrize("rule_file", list(RULES))


def rule_groups(rule_file: str) -> dict:
    rule = yaml.safe_load((ALERTING / rule_file).read_text())
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    return rule["spec"]


def alerts(spec: dict) -> list[dict]:
    return [r for g in spec["groups"] for r in g["rules"] if "alert" in r]


def promtool(workdir: Path, spec: dict, tests: Path, *args: str, only: str | None = None) -> subprocess.CompletedProcess:
    """promtool on the PrometheusRule's rules written to ``workdir/rules.yml``, beside the unit
    tests (``only``: those of one alert)."""
    (workdir / "rules.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    if only is None:
        shutil.copy(tests, workdir / tests.name)
    else:
        cases = yaml.safe_load(tests.read_text())
        cases["tests"] = [t for t in cases["tests"] if any(c["alertname"] == only for c in t["alert_rule_test"])]
        (workdir / tests.name).write_text(yaml.safe_dump(cases, sort_keys=False))
    return subprocess.run([binary("promtool"), *args], cwd=workdir, capture_output=True, text=True, timeout=120)


@by_file
def test_rules_are_valid(tmp_path, rule_file):
    spec = rule_groups(rule_file)
    out = promtool(tmp_path, spec, RULES[rule_file][0], "check", "rules", "rules.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(alerts(spec))} rules found" in out.stdout


@by_file
def test_every_alert_is_documented(rule_file):
    _, names, sections = RULES[rule_file]
    found = alerts(rule_groups(rule_file))
    assert {a["alert"] for a in found} == names
    anchors = set()
    for a in found:
        assert a["labels"]["severity"] in ("warning", "critical"), a["alert"]
        assert set(a["annotations"]) == {"summary", "description", "runbook_url"}, a["alert"]
        assert a["annotations"]["runbook_url"].startswith(RUNBOOK), a["alert"]
        anchors.add(a["annotations"]["runbook_url"].removeprefix(RUNBOOK))
    assert anchors == sections
    operations = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text().lower()
    for anchor in anchors:  # MkDocs' anchor of "#### Triton model missing" is #triton-model-missing
        assert f"#### {anchor.replace('-', ' ')}\n" in operations, anchor


@by_file
def test_unit_tests_pass(tmp_path, rule_file):
    tests = RULES[rule_file][0]
    out = promtool(tmp_path, rule_groups(rule_file), tests, "test", "rules", tests.name)
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr


@by_file
def test_every_alert_has_a_firing_and_a_silent_case(rule_file):
    cases: dict[str, set[str]] = {}
    for test in yaml.safe_load(RULES[rule_file][0].read_text())["tests"]:
        for case in test["alert_rule_test"]:
            cases.setdefault(case["alertname"], set()).add("fires" if case["exp_alerts"] else "silent")
    for a in alerts(rule_groups(rule_file)):
        assert cases.get(a["alert"]) == {"fires", "silent"}, a["alert"]


@by_file
@pytest.mark.parametrize("broken", ["vector(1) < 0", "vector(1)"], ids=["never-fires", "always-fires"])
def test_the_unit_tests_catch_a_broken_alert(tmp_path, rule_file, broken):
    """A rule that never (or always) fires fails its unit test, for every alert."""
    tests = RULES[rule_file][0]
    for name in (a["alert"] for a in alerts(rule_groups(rule_file))):
        spec = rule_groups(rule_file)
        next(a for a in alerts(spec) if a["alert"] == name)["expr"] = broken
        out = promtool(tmp_path, spec, tests, "test", "rules", tests.name, only=name)
        assert out.returncode != 0 and f"alertname: {name}," in out.stdout + out.stderr, (name, out.stdout)
