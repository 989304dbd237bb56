"""One source of truth: names, storage prefix, signature and images agree between the code
(contract, store, images, TrainConfig) and what the manifests and chart deploy."""

from __future__ import annotations

import re

from deploy_tools import docs, run, tool

from make_us_rich import contract
from make_us_rich.images import ROLES, image
from make_us_rich.store import ModelStore, triton_config
from make_us_rich.training import TrainConfig


def _config_map(documents):
    (cm,) = [d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "mkrich-schedule"]
    return cm["data"]


def test_triton_storage_uri_is_where_the_store_writes(rendered):
    for variant in ("kustomize:base", "kustomize:overlays/local-kind", "kustomize:overlays/prod"):
        documents = rendered[variant]
        store_uri = _config_map(documents)["STORE_URI"]
        (isvc,) = [d for d in documents if d["kind"] == "InferenceService" and d["metadata"]["name"] == "mkrich-onnx"]
        model = isvc["spec"]["predictor"]["model"]
        assert model["storageUri"] == ModelStore(store_uri).triton_uri, variant
        # each accepted model rolls exactly this InferenceService (Triton loads at start only);
        # not on local-kind, whose single-user KFP runs in another namespace than the service
        expected = "" if variant == "kustomize:overlays/local-kind" else isvc["metadata"]["name"]
        assert _config_map(documents)["ROLLOUT_ISVC"] == expected, variant
        assert model["protocolVersion"] == "v2" and model["modelFormat"]["name"] == "onnx"
    for variant in ("helm:default", "helm:all"):
        (isvc,) = [d for d in rendered[variant] if d["metadata"]["name"] == "mkrich-onnx"]
        assert isvc["spec"]["predictor"]["model"]["storageUri"] == ModelStore("s3://mlpipeline/make-us-rich").triton_uri


def test_predictor_services_are_named_like_the_models_they_serve(rendered):
    found, universal = 0, set()
    for variant, documents in rendered.items():
        for d in documents:
            if d["kind"] != "InferenceService" or "containers" not in d["spec"]["predictor"]:
                continue
            (container,) = d["spec"]["predictor"]["containers"]
            args = container["args"]
            if "--symbols" in args:
                symbol = args[args.index("--symbols") + 1]
                assert d["metadata"]["name"] == contract.model_name(symbol), variant
            else:  # every symbol of the store (predictor.allSymbols)
                assert d["metadata"]["name"] == "mkrich-universal", variant
                universal.add(variant)
            assert container["image"] == image("server")
            found += 1
    assert found >= 4
    # the chart's predictor.allSymbols and the universal-predictor component of local-kind
    assert {"helm:all-symbols-predictor", "kustomize:overlays/local-kind"} <= universal, universal


def test_served_signature_matches_the_contract():
    cfg = TrainConfig()
    text = triton_config(contract.model_name("BTCEUR"), cfg.sequence_length, len(contract.FEATURES))
    assert f'name: "{contract.INPUT_NAME}"' in text and f'name: "{contract.OUTPUT_NAME}"' in text
    assert f"dims: [ -1, {cfg.sequence_length}, {len(contract.FEATURES)} ]" in text
    assert "TYPE_FP32" in text and contract.DATATYPE == "FP32"


def test_images_are_one_setting(rendered, monkeypatch):
    # the Job compiles the pipeline with the images its ConfigMap names: the same ones
    for variant in ("kustomize:overlays/local-kind", "kustomize:overlays/prod"):
        data = _config_map(rendered[variant])
        monkeypatch.setenv("MKRICH_IMAGE_REGISTRY", data["MKRICH_IMAGE_REGISTRY"])
        monkeypatch.setenv("MKRICH_IMAGE_TAG", data["MKRICH_IMAGE_TAG"])
        (job,) = [d for d in rendered[variant] if d["kind"] == "Job"]
        assert job["spec"]["template"]["spec"]["containers"][0]["image"] == image("data"), variant
    monkeypatch.delenv("MKRICH_IMAGE_REGISTRY")
    monkeypatch.delenv("MKRICH_IMAGE_TAG")
    (job,) = [d for d in rendered["helm:all"] if d["kind"] == "Job"]
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert f"{env['MKRICH_IMAGE_REGISTRY']}/make-us-rich-data:{env['MKRICH_IMAGE_TAG']}" == image("data")
    seen = set()
    for _, documents in rendered.items():
        for text in (str(d) for d in documents):
            seen.update(re.findall(r"[\w.\-/]+/make-us-rich-(?:data|trainer|server|console):[\w.\-]+", text))
    assert seen == {image(role) for role in ROLES}


def test_server_data_and_console_roles_exclude_tensorflow():
    import tomllib
    from pathlib import Path

    extras = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())[
        "project"]["optional-dependencies"]

    def closure(name, seen=None):
        seen = seen if seen is not None else set()
        for req in extras[name]:
            m = re.match(r"make-us-rich\[(.+)\]", req)
            if m:
                for sub in m.group(1).split(","):
                    if sub not in seen:
                        seen.add(sub)
                        closure(sub, seen)
            else:
                seen.add(req)
        return seen

    for role in ("serve", "pipeline", "console"):
        deps = " ".join(closure(role)).lower()
        assert "tensorflow" not in deps and "keras" not in deps and "tf2onnx" not in deps, role
    assert "tensorflow" in " ".join(closure("train"))
    assert "kserve" not in " ".join(closure("console")).lower()  # it calls the predictor over HTTP



def test_the_registry_is_one_setting_of_an_overlay(manifests_copy):
    """components/image-registry: the registry and tag in an overlay's mkrich-schedule ConfigMap
    (a registry with a port too) become every image it deploys and the pipeline's."""
    import shutil

    overlays = manifests_copy / "overlays"
    for name in ("local-kind", "prod"):
        copy = overlays / f"{name}-registry-test"
        shutil.copytree(overlays / name, copy)
        kustomization = copy / "kustomization.yaml"
        text = kustomization.read_text()
        setting = "      - MKRICH_IMAGE_REGISTRY=ghcr.io/make-us-rich\n      - MKRICH_IMAGE_TAG=0.1.0\n"
        assert text.count(setting) == 1, name  # the overlay shows the setting
        kustomization.write_text(text.replace(setting, setting.replace("ghcr.io/make-us-rich", "registry.example.com:5000/team")
                                              .replace("0.1.0", "1.2.3")))
        documents = docs(run(tool("kubectl"), "kustomize", str(copy)))
        images = set(re.findall(r"[\w.:\-/]+/make-us-rich-[a-z]+:[\w.\-]+", str(documents)))
        roles = {"data", "server", "console"} if name == "local-kind" else {"data"}
        assert images == {f"registry.example.com:5000/team/make-us-rich-{role}:1.2.3" for role in roles}, (name, images)
        assert _config_map(documents)["MKRICH_IMAGE_REGISTRY"] == "registry.example.com:5000/team"
