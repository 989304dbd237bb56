"""The one HTTP client of make-us-rich's own calls: the prediction server (``mkrich predict``, the
console), the run summary's webhook, the KFP API's health check and the dev server's readiness.
``requests`` does the work; this module gives every caller the same JSON handling, bearer
token, timeout and one error type that says what failed without leaking the URL's secrets."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests

from make_us_rich.errors import MakeUsRichError


class HTTPCallError(MakeUsRichError, RuntimeError):
    """A call failed: ``status`` is the HTTP status of an answer (None when there was none),
    ``detail`` the start of its body or why nothing came."""

    def __init__(self, where: str, status: int | None, detail: str) -> None:
        self.where, self.status, self.detail = where, status, detail
        super().__init__(f"{where} answered HTTP {status}: {detail}" if status else f"cannot reach {where}: {detail}")


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what may be logged of a URL whose path or query can
    hold a secret (a webhook)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def call(url: str, body: Any = None, *, token: str | None = None, timeout: float = 10.0,
         method: str | None = None, where: str | None = None, parse: bool = True) -> Any:
    """GET ``url`` (POST ``body`` as JSON when given) and return the JSON answer (None for an
    empty one, or with ``parse=False``). Raises :class:`HTTPCallError` for an HTTP error status
    or no answer; ``where`` names the callee in its message (default: the whole URL)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    where = where or url
    try:
        answer = requests.request(method or ("POST" if body is not None else "GET"), url, json=body,
                                  headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise HTTPCallError(where, None, _reason(exc)) from None
    if answer.status_code >= 400:
        raise HTTPCallError(where, answer.status_code, answer.text[:300])
    if not parse or not answer.content:
        return None
    try:
        return answer.json()
    except ValueError:
        raise HTTPCallError(where, answer.status_code, f"not JSON: {answer.text[:120]!r}") from None


def ready(url: str, timeout: float = 2.0) -> bool:
    """Whether GET ``url`` answers 200 now (a readiness probe)."""
    try:
        return requests.get(url, timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def _reason(exc: requests.RequestException) -> str:
    """Why no answer came, without the URL (it can hold a secret; ``where`` names the callee)."""
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        text = str(exc)
        for marker in ("Connection refused", "Name or service not known", "No route to host",
                       "Temporary failure in name resolution", "Connection reset", "certificate verify failed"):
            if marker in text:
                return marker
        return "connection failed"
    if isinstance(exc, requests.exceptions.InvalidSchema | requests.exceptions.MissingSchema):
        return "not an http(s):// URL"
    return type(exc).__name__
