"""One summary per pipeline run (which pipeline, status, and per symbol: data, gate decision and
its reasons, key metrics beside the baselines, published version, link to the run; for a
universal run the model all symbols share and a table of one line per symbol), built by the pipeline's
exit task (``notify_run``, :func:`notify_pipeline_run`) from the model store and posted to a
webhook when one is configured (``MKRICH_NOTIFY_URL``; on a cluster from the Secret
``mkrich-notify``): Slack-compatible incoming-webhook JSON (``{"text": ...}``) or the summary
itself as generic JSON. ``mkrich run`` prints the summary the exit task built. A webhook that
fails is logged and never fails the run.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from make_us_rich.contract import Manifest, ModelCard

log = logging.getLogger(__name__)

NOTIFY_ENV = "MKRICH_NOTIFY_URL"
FORMAT_ENV = "MKRICH_NOTIFY_FORMAT"
DASHBOARD_ENV = "MKRICH_DASHBOARD_URL"
FORMATS = ("slack", "json")
#: PipelineTaskFinalStatus.state -> the summary's status
STATES = {"SUCCEEDED": "succeeded", "FAILED": "failed", "CANCELED": "cancelled", "CANCELLED": "cancelled"}


def _scalars(d: dict | None) -> dict[str, Any]:
    return {k: v for k, v in (d or {}).items() if isinstance(v, str | int | float | bool) or v is None}


def symbol_summary(symbol: str, newest: dict[str, Any] | None, artifacts: str | Path | None = None,
                   card: dict[str, Any] | None = None) -> dict[str, Any]:
    """The store's newest manifest of ``symbol`` after the run, with the data facts of its card
    (``card``, or ``model_card.json`` in the ``artifacts`` folder)."""
    if newest is None:
        return {"symbol": symbol, "status": "not published"}
    manifest = Manifest.of(newest)
    data: dict[str, Any] = {}
    card_file = Path(artifacts) / "model_card.json" if artifacts else None
    if card is None and card_file and card_file.is_file():
        card = json.loads(card_file.read_text())
    model_card = ModelCard.of(card) if card else None
    if model_card is not None:
        card_data = model_card.data or {}
        data = {**_scalars(card_data), "validation": _scalars(card_data.get("validation"))}
    scores = manifest.scores
    universal = (model_card.universal if model_card else None) or {}
    kind = None if model_card is None else "universal" if (
        universal.get("kind") == "universal" or model_card.kind == "universal") else "per-symbol"
    return {
        "symbol": symbol,
        "status": manifest.status,
        "version": manifest.version,
        "kind": kind,
        "gate_reasons": list(manifest.gate.reasons),
        "ratios": (manifest.metrics or {}).get("ratio") or {},
        "model": {"mean_pinball": scores.mean_pinball, "coverage90": scores.coverage90,
                  "coverage50": scores.coverage50},
        "baselines": dict(scores.baselines),
        "data": data,
        **({"universal": {k: universal.get(k) for k in ("trained_on", "model_sha256")}} if universal else {}),
    }


#: the pipelines whose runs are summarized
PIPELINES = ("hourly-training", "universal-training")


def run_summary(status: str, symbols: dict[str, dict[str, Any]], *, error: str | None = None,
                run_url: str | None = None, pipeline: str | None = None) -> dict[str, Any]:
    """``symbols``: per symbol ``{"newest": manifest, "artifacts": folder}`` (run_local's view)
    or ``{"newest": manifest, "card": model card}`` (:func:`store_results`). ``pipeline``: the
    pipeline that ran; when not given, ``universal-training`` if a model the run published is
    universal (its card says so), else ``hourly-training``."""
    rows = [symbol_summary(s, v.get("newest"), v.get("artifacts"), v.get("card")) for s, v in symbols.items()]
    if pipeline is None:
        pipeline = "universal-training" if any(r.get("kind") == "universal" for r in rows) else "hourly-training"
    if pipeline not in PIPELINES:
        raise ValueError(f"pipeline must be one of {', '.join(PIPELINES)}, got {pipeline!r}")
    summary = {
        "pipeline": pipeline,
        "status": status,
        "error": error,
        "run_url": run_url,
        "symbols": rows,
    }
    if pipeline == "universal-training":
        shared = {(r.get("universal") or {}).get("model_sha256"): r["universal"] for r in rows if r.get("universal")}
        summary["models"] = [{"model_sha256": sha, "trained_on": info.get("trained_on") or [],
                              "symbols": [r["symbol"] for r in rows if (r.get("universal") or {}).get("model_sha256") == sha]}
                             for sha, info in shared.items()]
    return summary


def store_results(store_uri: str, symbols: list[str], since: str | None = None) -> dict[str, dict[str, Any]]:
    """Per symbol, the version this run published (the newest one published at or after
    ``since``, the run's creation time) and its model card, read back from the store: the
    exit task cannot take the ParallelFor's outputs (see docs/operations.md)."""
    from make_us_rich.store import ModelStore

    try:
        start = _utc(since) if since else None
    except ValueError:
        raise ValueError(f"the run's creation time {since!r} is not an ISO 8601 time") from None
    store = ModelStore(store_uri)
    results: dict[str, dict[str, Any]] = {}
    for symbol in symbols:
        versions = [m for m in store.versions(symbol)
                    if start is None or (m.get("published") and _utc(m["published"]) >= start)]
        newest = versions[-1] if versions else None
        card = None
        if newest and "model_card.json" in newest.get("files", {}):
            card = json.loads(store.read(symbol, newest["version"], "model_card.json"))
        results[symbol] = {"newest": newest, "card": card}
    return results


def _utc(text: str) -> datetime:
    """An ISO time (``...Z`` or ``+00:00``), truncated to seconds as the manifests keep it."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(microsecond=0)


def run_link(dashboard_url: str | None, run_id: str | None) -> str | None:
    """The run's page in the Kubeflow Pipelines UI (``dashboard_url``: the UI's base, e.g.
    ``https://kubeflow.example.com/_/pipeline``), when both are known."""
    if not dashboard_url or not run_id:
        return None
    return f"{dashboard_url.rstrip('/')}/#/runs/details/{run_id}"


def notify_pipeline_run(state: str, symbols: list[str], store_uri: str, *, since: str | None = None,
                        run_id: str | None = None, dashboard_url: str | None = None,
                        error: str | None = None, pipeline: str | None = None) -> tuple[dict[str, Any], str]:
    """The exit task's work: build the run's summary from the store and post it to
    ``MKRICH_NOTIFY_URL`` (format ``MKRICH_NOTIFY_FORMAT``, default slack) when set. Returns the
    summary and what became of it (for the task's log). Nothing here raises: a summary that
    cannot read the store says so, a webhook that fails is logged. ``pipeline``: see
    :func:`run_summary` (the exit task does not know its pipeline's name: a universal run that
    published nothing is then titled hourly-training)."""
    status = STATES.get(state.upper(), state.lower())
    link = run_link(dashboard_url or os.environ.get(DASHBOARD_ENV), run_id)
    try:
        results = store_results(store_uri, symbols, since)
    except Exception as exc:  # the summary must still go out
        log.error("could not read the run's results from the store %s: %s", store_uri, exc)
        results = {s: {} for s in symbols}
        error = "; ".join(x for x in (error, f"results not read from the store: {type(exc).__name__}: {exc}") if x)
    if pipeline not in (None, *PIPELINES):
        log.error("unknown pipeline %r: the summary names the one its models tell", pipeline)
        pipeline = None
    summary = run_summary(status, results, error=error or None, run_url=link, pipeline=pipeline)
    url = os.environ.get(NOTIFY_ENV, "").strip()
    if not url:
        return summary, f"no webhook configured ({NOTIFY_ENV} unset): summary logged only"
    fmt = os.environ.get(FORMAT_ENV, "").strip().lower() or "slack"
    if fmt not in FORMATS:
        log.error("%s must be one of %s, got %r; sending the slack format", FORMAT_ENV, ", ".join(FORMATS), fmt)
        fmt = "slack"
    if post(url, body(summary, fmt)):
        return summary, f"run summary sent to the webhook ({fmt})"
    return summary, "run summary NOT delivered to the webhook (see the warning above); the run is unaffected"


def _f(value: Any, fmt: str = "{:.4f}") -> str:
    return "-" if value is None else fmt.format(value)


def _universal_lines(summary: dict[str, Any]) -> list[str]:
    """A universal run: the model(s) the symbols share, one table line per symbol, and the gate's
    reasons of the symbols it rejected only (a run of 100 symbols stays readable)."""
    lines = []
    for model in summary.get("models") or []:
        sha = (model.get("model_sha256") or "?")[:8]
        lines.append(f"universal model {sha} (trained on {', '.join(model['trained_on'])}) "
                     f"published for {len(model['symbols'])} symbol(s)")
    lines.append(f"{'symbol':<12} {'status':<13} {'pinball/A':>9} {'pinball/HAR':>11} {'cov90':>6} {'cov50':>6}  version")
    for s in summary["symbols"]:
        if not s.get("version"):
            lines.append(f"{s['symbol']:<12} {s['status']}")
            continue
        ratios, model = s.get("ratios") or {}, s.get("model") or {}
        lines.append(f"{s['symbol']:<12} {s['status']:<13} {_f(ratios.get('pinball_vs_empirical')):>9} "
                     f"{_f(ratios.get('pinball_vs_har')):>11} {_f(model.get('coverage90'), '{:.3f}'):>6} "
                     f"{_f(model.get('coverage50'), '{:.3f}'):>6}  {s['version']}")
    for s in summary["symbols"]:
        if s.get("status") == "rejected":
            lines.append(f"{s['symbol']} rejected (keeps its previous model):")
            lines += [f"  gate: {r}" for r in s.get("gate_reasons", [])]
    return lines


def text(summary: dict[str, Any]) -> str:
    """The summary as lines of text (the terminal, and Slack's ``text``)."""
    pipeline = summary.get("pipeline") or "hourly-training"
    lines = [f"{pipeline} run {summary['status']}" + (f": {summary['error']}" if summary.get("error") else "")]
    if summary.get("run_url"):
        lines.append(f"run: {summary['run_url']}")
    if pipeline == "universal-training":
        return "\n".join(lines + _universal_lines(summary))
    for s in summary["symbols"]:
        head = f"{s['symbol']}: {s['status']}" + (f" {s['version']}" if s.get("version") else "")
        data = s.get("data") or {}
        if data.get("rows") is not None:
            gaps = (data.get("validation") or {}).get("gaps")
            head += f" ({data['rows']} rows" + (f", {gaps} gaps" if gaps is not None else "") + ")"
        lines.append(head)
        pinball = (s.get("model") or {}).get("mean_pinball")
        if pinball is not None:
            baselines = "  ".join(f"{k} {v:.4g}" for k, v in (s.get("baselines") or {}).items() if v is not None)
            lines.append(f"  mean pinball {pinball:.4g}" + (f" (baselines: {baselines})" if baselines else ""))
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
    from make_us_rich.http import HTTPCallError, call, origin

    if urlsplit(url).scheme not in ("http", "https"):
        log.error("notification URL must be http(s)://...; not sent")
        return False
    try:
        call(url, payload, timeout=timeout, where=origin(url))
    except HTTPCallError as exc:
        log.warning("run summary not delivered to the webhook at %s: %s", exc.where, exc.status or exc.detail)
        return False
    return True
