"""One summary per pipeline run (status, and per symbol: data, gate decision and its reasons,
key metrics beside the baselines, published version), printed by ``mkrich run`` and posted to a
webhook when one is given (``--notify-url`` or ``MKRICH_NOTIFY_URL``): Slack-compatible
incoming-webhook JSON (``{"text": ...}``) or the summary itself as generic JSON. A webhook that
fails is logged and never fails the run.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

NOTIFY_ENV = "MKRICH_NOTIFY_URL"
FORMATS = ("slack", "json")


def _scalars(d: dict | None) -> dict[str, Any]:
    return {k: v for k, v in (d or {}).items() if isinstance(v, str | int | float | bool) or v is None}


def symbol_summary(symbol: str, newest: dict[str, Any] | None, artifacts: str | Path | None) -> dict[str, Any]:
    """The store's newest manifest of ``symbol`` after the run, with the data facts of its card."""
    if newest is None:
        return {"symbol": symbol, "status": "not published"}
    test = newest.get("metrics") or {}
    data: dict[str, Any] = {}
    card_file = Path(artifacts) / "model_card.json" if artifacts else None
    if card_file and card_file.is_file():
        card_data = json.loads(card_file.read_text()).get("data") or {}
        data = {**_scalars(card_data), "validation": _scalars(card_data.get("validation"))}
    return {
        "symbol": symbol,
        "status": newest.get("status"),
        "version": newest.get("version"),
        "gate_reasons": (newest.get("gate") or {}).get("reasons", []),
        "ratios": test.get("ratio") or {},
        "model": {"mean_pinball": (test.get("model") or {}).get("mean_pinball"),
                  "coverage90": (((test.get("model") or {}).get("intervals") or {}).get("90") or {}).get("coverage")},
        "baselines": {name: b.get("mean_pinball") for name, b in (test.get("baselines") or {}).items()},
        "data": data,
    }


def run_summary(status: str, symbols: dict[str, dict[str, Any]], *, error: str | None = None,
                run_url: str | None = None) -> dict[str, Any]:
    """``symbols``: per symbol ``{"newest": manifest, "artifacts": folder}`` (run_local's view)."""
    return {
        "pipeline": "hourly-training",
        "status": status,
        "error": error,
        "run_url": run_url,
        "symbols": [symbol_summary(s, v.get("newest"), v.get("artifacts")) for s, v in symbols.items()],
    }


def text(summary: dict[str, Any]) -> str:
    """The summary as lines of text (the terminal, and Slack's ``text``)."""
    lines = [f"hourly-training run {summary['status']}" + (f": {summary['error']}" if summary.get("error") else "")]
    if summary.get("run_url"):
        lines.append(f"run: {summary['run_url']}")
    for s in summary["symbols"]:
        head = f"{s['symbol']}: {s['status']}" + (f" {s['version']}" if s.get("version") else "")
        if s.get("data", {}).get("rows") is not None:
            head += f" ({s['data']['rows']} rows)"
        lines.append(head)
        ratios = s.get("ratios") or {}
        if ratios:
            lines.append("  " + "  ".join(f"{k} {v:.4f}" for k, v in ratios.items() if v is not None))
        lines += [f"  gate: {r}" for r in s.get("gate_reasons", [])]
    return "\n".join(lines)


def body(summary: dict[str, Any], fmt: str = "slack") -> dict[str, Any]:
    if fmt not in FORMATS:
        raise ValueError(f"notification format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return {"text": text(summary)} if fmt == "slack" else summary


def post(url: str, payload: dict[str, Any], timeout: float = 10.0) -> bool:
    """POST ``payload`` as JSON; False (logged, without the URL's path or credentials, which
    hold the webhook's secret) when it fails."""
    parts = urlsplit(url)
    where = f"{parts.scheme}://{parts.hostname}"
    if parts.scheme not in ("http", "https"):
        log.error("notification URL must be http(s)://...; not sent")
        return False
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = exc.code if isinstance(exc, urllib.error.HTTPError) else getattr(exc, "reason", exc)
        log.warning("run summary not delivered to the webhook at %s: %s", where, reason)
        return False
    return True
