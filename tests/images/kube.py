"""From rendered manifests to what `podman kube play` runs: the Pod a controller would make of a
Deployment, a Job or KServe's InferenceService, changed only where a kubelet or the cluster does
something podman 4.3 does not (each change below says which). Everything else - image, command,
args, environment, volumes, security context, ports - is the manifest's, so a manifest change
is what the image tests run."""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import subprocess
from pathlib import Path

import yaml

from .image_helpers import REPO

# the host's loopback as a pod on slirp4netns (allow_host_loopback) reaches it: the test's servers
# (S3, KFP, PostgreSQL) listen on 127.0.0.1 only
HOST_FROM_POD = "10.0.2.2"
NETWORK = "slirp4netns:allow_host_loopback=true"


def tool(name: str) -> str:
    """kubectl or helm of `make tools`."""
    base = Path(os.environ.get("MKRICH_TOOLS", REPO / ".cache" / "tools"))
    found = base / "bin" / name
    if not found.is_file():
        from make_us_rich.testing import missing_tool

        missing_tool(f"{name} not found; run `make tools` (fetches kubectl and helm into .cache/tools)")
    return str(found)


def render(overlay: Path) -> list[dict]:
    out = subprocess.run([tool("kubectl"), "kustomize", str(overlay)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def render_chart(*args: str) -> list[dict]:
    out = subprocess.run([tool("helm"), "template", "mkrich", str(REPO / "charts" / "make-us-rich"),
                          "--namespace", "make-us-rich", *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def one(documents: list[dict], kind: str, name: str) -> dict:
    (found,) = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def pod_spec(workload: dict) -> dict:
    """The pod spec a controller makes: a Deployment's or Job's template; for an
    InferenceService with `predictor.containers`, KServe's predictor pod (the predictor's
    PodSpec fields; Knative's queue-proxy sidecar is left out)."""
    if workload["kind"] in ("Deployment", "Job"):
        return copy.deepcopy(workload["spec"]["template"]["spec"])
    if workload["kind"] == "InferenceService":
        predictor = copy.deepcopy(workload["spec"]["predictor"])
        for key in ("minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "canaryTrafficPercent"):
            predictor.pop(key, None)
        return predictor
    raise ValueError(f"no pod from a {workload['kind']}")


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) in command/args (podman 4.3 passes them through verbatim)."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def play_document(name: str, spec: dict, documents: list[dict], *, endpoints: dict[str, str],
                  publish: dict[int, int], token_dir: Path | None = None) -> list[dict]:
    """The ConfigMaps the pod reads and the Pod, for `podman kube play`.

    Changes: cluster addresses in ConfigMaps, env values and args become the test's servers
    (``endpoints``); $(VAR) is expanded; probes are left to the test, which runs the manifest's
    probes from outside (podman 4.3 turns a liveness probe into a healthcheck that curls inside
    the image - there is no curl - on systemd timers, which do not run here); the ports in
    ``publish`` are published on 127.0.0.1; the projected ServiceAccount token, which only a
    kubelet can mint, is a file in ``token_dir``; init containers are kept after they ran."""

    def swap(value: str) -> str:
        for cluster, local in endpoints.items():
            value = value.replace(cluster, local)
        return value

    spec = copy.deepcopy(spec)
    configmaps = {}
    for container in spec.get("initContainers", []) + spec["containers"]:
        for ref in container.get("envFrom", []):
            cm = copy.deepcopy(one(documents, "ConfigMap", ref["configMapRef"]["name"]))
            cm["data"] = {k: swap(v) for k, v in cm["data"].items()}
            configmaps[cm["metadata"]["name"]] = cm
    for container in spec.get("initContainers", []) + spec["containers"]:
        env = {}
        for ref in container.get("envFrom", []):
            env.update(configmaps[ref["configMapRef"]["name"]]["data"])
        for item in container.get("env", []):
            if "value" in item:
                item["value"] = swap(item["value"])
                env[item["name"]] = item["value"]
        for key in ("command", "args"):
            if key in container:
                container[key] = [swap(_expand(a, env)) for a in container[key]]
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            container.pop(probe, None)
        for port in container.get("ports", []):
            if port["containerPort"] in publish:
                port.update(hostPort=publish[port["containerPort"]], hostIP="127.0.0.1")
    for volume in spec.get("volumes", []):
        if "projected" in volume:
            assert token_dir is not None, f"{name}: a projected volume needs token_dir"
            volume.pop("projected")
            volume["hostPath"] = {"path": str(token_dir), "type": "Directory"}
    # podman 4.3 removes a run-once init container right after it exits and races with its own
    # state update ("cannot remove ... as it is running"); "always" keeps it, the same for one start
    annotations = {"io.podman.annotations.init.container.type": "always"} if spec.get("initContainers") else {}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "annotations": annotations}, "spec": spec}
    return [*configmaps.values(), pod]


def podman_secret(engine: str, name: str, data: dict[str, str]) -> None:
    """A podman secret in the form kube play reads for secretKeyRef: the Secret's `data`
    (key -> base64) as JSON."""
    subprocess.run([engine, "secret", "rm", name], capture_output=True)
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    out = subprocess.run([engine, "secret", "create", name, "-"], input=json.dumps(encoded),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def secret_data(secret: dict) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
    return {**data, **secret.get("stringData", {})}


def play(engine: str, name: str, documents: list[dict], folder: Path) -> None:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    subprocess.run([engine, "pod", "rm", "--force", name], capture_output=True)
    out = subprocess.run([engine, "kube", "play", "--network", NETWORK, str(path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"podman kube play {name}:\n{out.stdout}\n{out.stderr}"


def logs(engine: str, container: str) -> str:
    out = subprocess.run([engine, "logs", container], capture_output=True, text=True)
    return out.stdout + out.stderr


def state(engine: str, container: str) -> dict:
    out = subprocess.run([engine, "inspect", container], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)[0]
