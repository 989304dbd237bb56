"""A minimal Kubeflow Pipelines v2beta1 REST API on 127.0.0.1, enough for the real
``kfp.Client`` to create experiments, runs and recurring runs, list and delete them.

It keeps state in memory and records every request (method, path, query, JSON body) so tests can
check exactly what the client sent - e.g. the 6-field cron of the hourly recurring run."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from make_us_rich.testing._server import LoopbackServer

PREFIX = "/apis/v2beta1"


class FakeKFP(LoopbackServer):
    def __init__(self, *, token: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.token = token
        self.experiments: dict[str, dict[str, Any]] = {}
        self.recurring_runs: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        super().__init__(type("Handler", (_Handler,), {"fake": self}), host, port)

    def calls(self, method: str, path_suffix: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and r["path"].endswith(path_suffix)]

    # -- routing: returns (status, body)
    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if not path.startswith(PREFIX):
            return 404, {"error": f"unknown path {path}"}
        route = path[len(PREFIX):]
        with self._lock:
            if route == "/healthz":
                return 200, {"commit_sha": "fake", "tag_name": "2.17.3", "multi_user": False}
            if route == "/experiments" and method == "GET":
                items = list(self.experiments.values())
                wanted = _filter_name(query.get("filter"))
                if wanted is not None:
                    items = [e for e in items if e["display_name"] == wanted]
                return 200, {"experiments": items, "total_size": len(items)}
            if route == "/experiments" and method == "POST":
                exp = {**body, "experiment_id": str(uuid.uuid4()), "storage_state": "AVAILABLE"}
                self.experiments[exp["experiment_id"]] = exp
                return 200, exp
            if route == "/recurringruns" and method == "GET":
                items = [r for r in self.recurring_runs.values()
                         if r.get("experiment_id") == query.get("experiment_id", r.get("experiment_id"))]
                return 200, {"recurringRuns": items, "total_size": len(items), "next_page_token": ""}
            if route == "/recurringruns" and method == "POST":
                run = {**body, "recurring_run_id": str(uuid.uuid4()), "status": "ENABLED"}
                self.recurring_runs[run["recurring_run_id"]] = run
                return 200, run
            if route.startswith("/recurringruns/") and method == "DELETE":
                rid = route.split("/")[2]
                if self.recurring_runs.pop(rid, None) is None:
                    return 404, {"error": f"recurring run {rid} not found", "code": 5}
                return 200, {}
            if route == "/runs" and method == "POST":
                run = {**body, "run_id": str(uuid.uuid4()), "state": "PENDING"}
                self.runs[run["run_id"]] = run
                return 200, run
        return 404, {"error": f"not implemented in the fake: {method} {path}"}


def _filter_name(raw: str | None) -> str | None:
    if not raw:
        return None
    for predicate in json.loads(raw).get("predicates", []):
        if predicate.get("key") in ("display_name", "name"):
            return predicate.get("string_value") or predicate.get("stringValue")
    return None


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKFP
    protocol_version = "HTTP/1.1"

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        self.fake.requests.append({"method": method, "path": parts.path, "query": query, "body": body,
                                   "authorization": self.headers.get("Authorization")})
        if self.fake.token and self.headers.get("Authorization") != f"Bearer {self.fake.token}":
            status, payload = 401, {"error": "Unauthorized", "code": 16}
        else:
            status, payload = self.fake.handle(method, parts.path, query, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        pass
