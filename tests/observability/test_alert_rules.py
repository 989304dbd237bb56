"""The alert rules with the real promtool: `check rules`, and `test rules` unit tests in which
every alert fires when it should and stays silent when it should not."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from monitoring import ALERTING, binary

TESTS = Path(__file__).parent / "alerts_test.yml"
RUNBOOK = "https://github.com/make-us-rich/make-us-rich/blob/main/docs/operations.md#"
#: the runbook sections of docs/operations.md, one per alert
ANCHORS = {"model-stale", "reload-failing", "reload-loop-down", "endpoint-errors", "endpoint-latency", "no-predictions",
           "gate-rejected", "pipeline-failed", "pipeline-stalled"}


def rule_groups() -> dict:
    rule = yaml.safe_load((ALERTING / "prometheusrule.yaml").read_text())
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    return rule["spec"]


def alerts(spec: dict) -> list[dict]:
    return [r for g in spec["groups"] for r in g["rules"] if "alert" in r]


def promtool(workdir: Path, spec: dict, *args: str, only: str | None = None) -> subprocess.CompletedProcess:
    """promtool on the PrometheusRule's rules written to ``workdir/rules.yml``, beside the unit
    tests (``only``: those of one alert)."""
    (workdir / "rules.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    if only is None:
        shutil.copy(TESTS, workdir / TESTS.name)
    else:
        tests = yaml.safe_load(TESTS.read_text())
        tests["tests"] = [t for t in tests["tests"] if any(c["alertname"] == only for c in t["alert_rule_test"])]
        (workdir / TESTS.name).write_text(yaml.safe_dump(tests, sort_keys=False))
    return subprocess.run([binary("promtool"), *args], cwd=workdir, capture_output=True, text=True, timeout=120)


def test_rules_are_valid(tmp_path):
    out = promtool(tmp_path, rule_groups(), "check", "rules", "rules.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(alerts(rule_groups()))} rules found" in out.stdout


def test_every_alert_is_documented():
    found = alerts(rule_groups())
    assert {a["alert"] for a in found} >= {
        "MkrichModelStale", "MkrichModelReloadFailing", "MkrichReloadLoopDown", "MkrichEndpointErrorRate", "MkrichEndpointLatencyHigh",
        "MkrichNoPredictions", "MkrichGateRejectedRepeatedly", "MkrichPipelineRunFailed", "MkrichPipelineStalled",
    }
    anchors = set()
    for a in found:
        assert a["labels"]["severity"] in ("warning", "critical"), a["alert"]
        assert set(a["annotations"]) == {"summary", "description", "runbook_url"}, a["alert"]
        assert a["annotations"]["runbook_url"].startswith(RUNBOOK), a["alert"]
        anchors.add(a["annotations"]["runbook_url"].removeprefix(RUNBOOK))
    assert anchors == ANCHORS


def test_unit_tests_pass(tmp_path):
    out = promtool(tmp_path, rule_groups(), "test", "rules", TESTS.name)
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr


def test_every_alert_has_a_firing_and_a_silent_case():
    cases: dict[str, set[str]] = {}
    for test in yaml.safe_load(TESTS.read_text())["tests"]:
        for case in test["alert_rule_test"]:
            cases.setdefault(case["alertname"], set()).add("fires" if case["exp_alerts"] else "silent")
    for a in alerts(rule_groups()):
        assert cases.get(a["alert"]) == {"fires", "silent"}, a["alert"]


@pytest.mark.parametrize("broken", ["vector(1) < 0", "vector(1)"], ids=["never-fires", "always-fires"])
def test_the_unit_tests_catch_a_broken_alert(tmp_path, broken):
    """A rule that never (or always) fires fails its unit test, for every alert."""
    for name in (a["alert"] for a in alerts(rule_groups())):
        spec = rule_groups()
        next(a for a in alerts(spec) if a["alert"] == name)["expr"] = broken
        out = promtool(tmp_path, spec, "test", "rules", TESTS.name, only=name)
        assert out.returncode != 0 and f"alertname: {name}," in out.stdout + out.stderr, (name, out.stdout)
