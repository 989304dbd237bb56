"""Rolling the Triton InferenceService after a publish, through the real Kubernetes client
against a loopback HTTP server that records the PATCH."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest
from kubernetes import client

from make_us_rich.rollout import ANNOTATION, RolloutError, rollout_inference_service
from make_us_rich.testing._server import LoopbackServer


class FakeKube(LoopbackServer):
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.patches: list[tuple[str, str, dict]] = []
        super().__init__(type("H", (_Handler,), {"fake": self}))


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKube

    def do_PATCH(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.fake.patches.append((self.path, self.headers.get("Content-Type"), body))
        data = json.dumps({"kind": "InferenceService"} if self.fake.status == 200
                          else {"kind": "Status", "code": self.fake.status}).encode()
        self.send_response(self.fake.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def api_for(fake: FakeKube) -> client.CustomObjectsApi:
    cfg = client.Configuration()
    cfg.host = fake.url
    return client.CustomObjectsApi(client.ApiClient(cfg))


def test_an_accepted_model_rolls_the_inference_service():
    with FakeKube() as fake:
        ns = rollout_inference_service("mkrich-onnx", "20240101T000000.000000Z-abcdef12", "team", api=api_for(fake))
    assert ns == "team"
    ((path, content_type, body),) = fake.patches
    assert path == "/apis/serving.kserve.io/v1beta1/namespaces/team/inferenceservices/mkrich-onnx"
    assert content_type == "application/merge-patch+json"
    assert body == {"spec": {"predictor": {"annotations": {ANNOTATION: "20240101T000000.000000Z-abcdef12"}}}}


@pytest.mark.parametrize("status, message", [(403, "may not patch"), (404, "no such InferenceService")])
def test_rollout_errors_are_clear(status, message):
    with FakeKube(status) as fake, pytest.raises(RolloutError, match=message):
        rollout_inference_service("mkrich-onnx", "v", "team", api=api_for(fake))


def test_no_namespace_is_an_error(monkeypatch):
    import make_us_rich.rollout as rollout

    monkeypatch.setattr(rollout, "_NAMESPACE_FILE", rollout.Path("/nonexistent/namespace"))
    with FakeKube() as fake, pytest.raises(RolloutError, match="no namespace"):
        rollout_inference_service("mkrich-onnx", "v", api=api_for(fake))
