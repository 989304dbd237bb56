"""Roll an InferenceService after a new model is published.

Triton (KServe's ONNX runtime) loads its model repository once, when the storage initializer
downloads it at pod start, so a newly published version would only be served after the next
rollout. Changing an annotation of the predictor's pod template
(``spec.predictor.annotations["make-us-rich/model-version"]``) makes KServe create a new revision,
which downloads the repository again and serves the highest Triton version. The Python predictor
does not need this (it hot-reloads).

Glue over the Kubernetes API: in a pipeline pod it uses the pod's ServiceAccount (which needs
``patch`` on ``inferenceservices.serving.kserve.io``; Kubeflow's profile editor role has it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from make_us_rich.errors import MakeUsRichError

ANNOTATION = "make-us-rich/model-version"
_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class RolloutError(MakeUsRichError, RuntimeError):
    """The InferenceService could not be patched."""


def rollout_patch(version: str) -> dict[str, Any]:
    """The JSON merge patch that starts a new predictor revision for ``version``."""
    return {"spec": {"predictor": {"annotations": {ANNOTATION: version}}}}


def current_namespace() -> str | None:
    try:
        return _NAMESPACE_FILE.read_text().strip() or None
    except OSError:
        return None


def rollout_inference_service(name: str, version: str, namespace: str | None = None, api=None) -> str:
    """Patch InferenceService ``name`` so that it rolls to the newly published ``version``.
    Returns the namespace used. ``api``: a ``kubernetes.client.CustomObjectsApi`` (default: from
    the in-cluster config, else the local kubeconfig)."""
    if api is None:
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            try:
                config.load_kube_config()
            except Exception as exc:
                raise RolloutError(f"no Kubernetes configuration to roll {name}: {exc}") from None
        api = client.CustomObjectsApi()
    namespace = namespace or current_namespace()
    if not namespace:
        raise RolloutError(f"no namespace for InferenceService {name}; pass one")
    try:
        api.patch_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", namespace, "inferenceservices", name, rollout_patch(version)
        )
    except Exception as exc:
        status = getattr(exc, "status", 0)
        hint = {403: "the pipeline's ServiceAccount may not patch inferenceservices",
                404: "no such InferenceService"}.get(status, "")
        raise RolloutError(
            f"rolling InferenceService {namespace}/{name} to {version} failed"
            f"{f' (HTTP {status})' if status else ''}{': ' + hint if hint else ''}: "
            f"{getattr(exc, 'reason', exc)}"
        ) from None
    return namespace
