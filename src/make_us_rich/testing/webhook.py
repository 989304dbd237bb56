"""A webhook receiver on loopback for tests and demos: the HTTP endpoint Alertmanager and the run
summary (make_us_rich.notify) post JSON to. Keeps every body and answers ``status`` (200; a
broken webhook: 500)."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler

from make_us_rich.testing._server import LoopbackServer


class WebhookReceiver(LoopbackServer):
    def __init__(self, status: int = 200) -> None:
        self.notifications: list[dict] = []
        received = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(Handler)

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hook"

    def wait(self, count: int = 1, timeout: float = 60.0) -> list[dict]:
        """The bodies, once ``count`` have arrived (or the timeout passed)."""
        deadline = time.time() + timeout
        while len(self.notifications) < count and time.time() < deadline:
            time.sleep(0.1)
        return list(self.notifications)

    def wait_for(self, status: str, alertname: str, timeout: float = 120.0) -> dict:
        """The first Alertmanager alert of ``alertname`` with ``status`` (firing, resolved)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for note in list(self.notifications):
                for alert in note.get("alerts", []):
                    if alert["status"] == status and alert["labels"]["alertname"] == alertname:
                        return alert
            time.sleep(0.5)
        raise AssertionError(f"no {status} {alertname} at the receiver; got {self.notifications}")
