"""Rendering of the deployment (kustomize overlays, Helm chart) with the real binaries."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from deploy_tools import REPO, docs, run, tool


@pytest.fixture(scope="session")
def manifests_copy(tmp_path_factory) -> Path:
    """The manifests with the prod overlay's s3-credentials.env created from its example."""
    copy = tmp_path_factory.mktemp("manifests") / "manifests"
    shutil.copytree(REPO / "manifests", copy)
    prod = copy / "overlays" / "prod"
    (prod / "s3-credentials.env").write_text(
        "AWS_ACCESS_KEY_ID=placeholder-id\nAWS_SECRET_ACCESS_KEY=placeholder-key\n"
    )
    return copy


@pytest.fixture(scope="session")
def rendered(manifests_copy) -> dict[str, list[dict]]:
    """Every deployment variant we ship, rendered: the kustomize overlays and chart variants."""
    kubectl, helm = tool("kubectl"), tool("helm")
    native = manifests_copy / "overlays" / "native-test"
    native.mkdir()
    (native / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "namespace: kubeflow-user-example-com\n"
        "resources: [../local-kind]\ncomponents: [../../components/kfp-native-pipeline]\n"
    )
    alerting = manifests_copy / "overlays" / "alerting-test"
    alerting.mkdir()
    (alerting / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "namespace: kubeflow-user-example-com\n"
        "resources: [../local-kind]\ncomponents: [../../components/alerting]\n"
    )
    console = manifests_copy / "overlays" / "console-test"
    console.mkdir()
    (console / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "namespace: kubeflow-user-example-com\n"
        "resources: [../../base]\n"  # local-kind has the console already
        "components: [../../components/console, ../../components/console-ingress]\n"
    )
    console_pg = manifests_copy / "overlays" / "console-postgres-test"
    console_pg.mkdir()
    (console_pg / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "namespace: make-us-rich\nresources: [../prod]\n"
        "components: [../../components/console, ../../components/console-postgres]\n"
    )
    out = {}
    for name in ("base", "overlays/local-kind", "overlays/prod", "overlays/native-test", "overlays/alerting-test",
                 "overlays/console-test", "overlays/console-postgres-test"):
        out[f"kustomize:{name}"] = docs(run(kubectl, "kustomize", str(manifests_copy / name)))
    chart = str(REPO / "charts" / "make-us-rich")
    variants = {
        "default": [],
        "all": ["--set", "predictor.enabled=true", "--set", "scheduler.enabled=true",
                "--set", "symbols={BTCEUR,BTCUSDT}", "--set", "predictor.tokenSecret=mkrich-token"],
        "own-secret": ["--set", "s3.createSecret=true", "--set", "s3.accessKeyId=id",
                       "--set", "s3.secretAccessKey=key", "--set", "triton.enabled=false",
                       "--set", "predictor.enabled=true"],
        "alerting": ["--set", "predictor.enabled=true", "--set", "alerting.enabled=true",
                     "--set", "symbols={BTCEUR,BTCUSDT}", "--set", "alerting.labels.release=kube-prometheus-stack"],
        "alerting-no-triton": ["--set", "predictor.enabled=true", "--set", "alerting.enabled=true",
                               "--set", "triton.enabled=false"],
        "console": ["--set", "console.enabled=true", "--set", "console.ingress.enabled=true",
                    "--set", "console.ingress.trustedProxies=10.0.0.0/8",
                    "--set", "console.postgres.enabled=true", "--set", "predictor.tokenSecret=mkrich-token"],
        "console-predictor": ["--set", "console.enabled=true", "--set", "triton.enabled=false",
                              "--set", "predictor.enabled=true", "--set", "console.source=sample"],
        "all-symbols-predictor": ["--set", "predictor.enabled=true", "--set", "predictor.allSymbols=true",
                                  "--set", "symbols={BTCEUR,BTCUSDT}",
                                  "--set", "console.enabled=true", "--set", "console.source=sample"],
    }
    for name, args in variants.items():
        out[f"helm:{name}"] = docs(run(helm, "template", "mkrich", chart, "--namespace", "make-us-rich", *args))
    return out
