"""make_us_rich.http, the one client of the project's own HTTP calls, against real loopback
servers: JSON both ways, the bearer token, an error status, no server at all, and a webhook's
secret path that never reaches a message."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest

from make_us_rich.http import HTTPCallError, call, origin, ready
from make_us_rich.ports import free_port
from make_us_rich.testing._server import LoopbackServer
from make_us_rich.testing.webhook import WebhookReceiver


class Echo(LoopbackServer):
    """GET /json: the request's Authorization header as JSON; /empty: 204; /text: not JSON;
    /secret: 403."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                answers = {"/json": (200, json.dumps({"auth": self.headers.get("Authorization")}).encode()),
                           "/empty": (204, b""), "/text": (200, b"<html>"), "/secret": (403, b"forbidden here")}
                status, body = answers.get(self.path, (404, b"no such route"))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(Handler)


def test_json_answers_token_and_errors():
    with Echo() as server:
        assert call(f"{server.url}/json", token="t0k") == {"auth": "Bearer t0k"}
        assert call(f"{server.url}/json") == {"auth": None}
        assert call(f"{server.url}/empty") is None and ready(f"{server.url}/json")
        assert call(f"{server.url}/text", parse=False) is None
        with pytest.raises(HTTPCallError, match="not JSON"):
            call(f"{server.url}/text")
        with pytest.raises(HTTPCallError) as failed:
            call(f"{server.url}/secret", where="the API")
        assert (failed.value.status, failed.value.detail) == (403, "forbidden here")
        assert str(failed.value) == "the API answered HTTP 403: forbidden here"
        assert not ready(f"{server.url}/secret")


def test_no_server_is_a_reason_without_the_url():
    url = f"http://127.0.0.1:{free_port()}/hooks/s3cr3t-token"
    with pytest.raises(HTTPCallError) as failed:
        call(url, {"x": 1}, where=origin(url), timeout=5)
    assert failed.value.status is None and failed.value.detail == "Connection refused"
    assert "s3cr3t" not in str(failed.value) and str(failed.value).startswith("cannot reach http://127.0.0.1:")
    assert not ready(url)
    with pytest.raises(HTTPCallError, match="not an http"):
        call("ftp://example.invalid/x")


def test_a_post_reaches_the_webhook_as_json():
    with WebhookReceiver(status=200) as hook:
        assert call(hook.hook_url, {"status": "succeeded", "n": 2}) is None
        assert hook.notifications == [{"status": "succeeded", "n": 2}]
