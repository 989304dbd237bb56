"""hadolint on the Dockerfile, checkov on the rendered manifests, the chart and the Dockerfile
(zero failed checks; the only skips are inline, each with a written reason)."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml
from deploy_tools import REPO, tool

CHECKOV_ENV = {"BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE"}


def test_hadolint_is_clean():
    out = subprocess.run([tool("hadolint"), "Dockerfile"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def _checkov(*args: str) -> list[dict]:
    out = subprocess.run(
        [tool("checkov"), *args, "--skip-download", "--compact", "-o", "json"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, **CHECKOV_ENV},
    )
    assert out.returncode in (0, 1), out.stderr[-2000:]
    text, reports, decoder, i = out.stdout.strip(), [], json.JSONDecoder(), 0
    while i < len(text):  # one JSON value per scanned target, back to back
        value, i = decoder.raw_decode(text, i)
        reports.extend(value if isinstance(value, list) else [value])
        while i < len(text) and text[i].isspace():
            i += 1
    return reports


def _failed(reports) -> list[str]:
    failed = [f"{r['check_type']}: {c['check_id']} {c.get('resource')} {c.get('file_path')}"
              for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    # a target without findings reports only a summary
    unexplained = sum(r.get("failed", 0) for r in reports if "results" not in r)
    return failed + ["failures without details"] * unexplained


def _skips_have_reasons(reports) -> int:
    skipped = [c for r in reports for c in r.get("results", {}).get("skipped_checks", [])]
    for check in skipped:
        reason = check.get("check_result", {}).get("suppress_comment") or check.get("suppress_comment") or ""
        assert len(reason.strip()) > 20, check
    return len(skipped)


@pytest.fixture(scope="module")
def rendered_dir(rendered, tmp_path_factory):
    folder = tmp_path_factory.mktemp("rendered")
    for name, documents in rendered.items():
        if name == "kustomize:base":
            continue  # not deployable alone (no namespace); its overlays are scanned
        (folder / f"{name.replace(':', '_').replace('/', '_')}.yaml").write_text(yaml.safe_dump_all(documents))
    return folder


def test_checkov_kubernetes_on_everything_we_render(rendered_dir):
    reports = _checkov("-d", str(rendered_dir), "--framework", "kubernetes")
    assert _failed(reports) == []
    passed = sum(r["summary"]["passed"] for r in reports)
    assert passed > 100


def test_checkov_secrets_on_sources(tmp_path):
    reports = _checkov("-d", "manifests", "-d", "charts", "--framework", "secrets")
    assert _failed(reports) == []
    _skips_have_reasons(reports)
    # the scan does find a credential when there is one
    leak = tmp_path / "leak.yaml"
    leak.write_text("env:\n  - name: AWS_SECRET_ACCESS_KEY\n    value: wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEYq8\n")
    assert _failed(_checkov("-d", str(tmp_path), "--framework", "secrets"))


def test_checkov_dockerfile():
    reports = _checkov("-f", "Dockerfile", "--framework", "dockerfile")
    assert _failed(reports) == []
    assert _skips_have_reasons(reports) >= 1  # HEALTHCHECK on the batch images, with reasons
    text = (REPO / "Dockerfile").read_text()
    assert all(re.match(r"python:3\.11\.\d+-slim-bookworm", line.split()[1])
               for line in text.splitlines() if line.startswith("FROM python"))
    # every role is the one final stage (ROLE picks its role-* stage): it runs as uid 10001
    lines = text.splitlines()
    last_from = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    assert [line for line in lines if line.startswith("USER ")] == ["USER 10001:10001"]
    assert "USER 10001:10001" in lines[last_from:]
