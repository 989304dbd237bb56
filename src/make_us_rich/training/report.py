"""What a run shows in the Kubeflow dashboard: metrics (model vs persistence), an HTML page with
the metrics table and the plots embedded, and a Markdown summary."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

_ROWS = (("RMSE", "rmse", "{:.2f}"), ("MAE", "mae", "{:.2f}"), ("MAPE %", "mape", "{:.4f}"),
         ("direction", "directional_accuracy", "{:.1%}"))


def _fmt(value: Any, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def metric_values(metrics: dict[str, Any]) -> dict[str, float]:
    """Flat numeric metrics for ``Output[Metrics].log_metric`` (None values left out)."""
    test = metrics["test"]
    flat = {}
    for side in ("model", "persistence"):
        for key, value in test[side].items():
            if value is not None:
                flat[f"{side}_{key}"] = float(value)
    for key, value in test["ratio"].items():
        if value is not None:
            flat[f"ratio_{key}"] = float(value)
    flat["gate_passed"] = 1.0 if metrics["gate"]["passed"] else 0.0
    flat["parity_max_rel_error"] = float(metrics["parity"]["max_rel_error"])
    flat["best_epoch"] = float(metrics["training"]["best_epoch"])
    return flat


def log_kfp_metrics(metrics: dict[str, Any], output) -> None:
    for name, value in metric_values(metrics).items():
        output.log_metric(name, value)


def markdown_summary(metrics: dict[str, Any]) -> str:
    test = metrics["test"]
    lines = [
        f"### {metrics['symbol']}: gate {'PASSED' if metrics['gate']['passed'] else 'REJECTED'}",
        "",
        "| metric | model | persistence | ratio |",
        "|---|---|---|---|",
    ]
    for label, key, fmt in _ROWS:
        ratio = test["ratio"].get(key)
        lines.append(
            f"| {label} | {_fmt(test['model'][key], fmt)} | {_fmt(test['persistence'][key], fmt)} "
            f"| {'' if ratio is None else f'{ratio:.4f}'} |"
        )
    lines += ["", *[f"- {r}" for r in metrics["gate"]["reasons"]]]
    return "\n".join(lines) + "\n"


def write_report(artifacts_dir: str | Path, html_path: str | Path, markdown_path: str | Path | None = None) -> None:
    """HTML page (metrics + embedded PNGs) and Markdown summary from an artifact folder."""
    folder = Path(artifacts_dir)
    metrics = json.loads((folder / "metrics.json").read_text())
    md = markdown_summary(metrics)
    images = "".join(
        f'<h3>{html.escape(title)}</h3><img alt="{html.escape(title)}" style="max-width:100%" '
        f'src="data:image/png;base64,{base64.b64encode((folder / name).read_bytes()).decode()}"/>'
        for name, title in (("predictions.png", "Test period: actual vs model vs persistence"),
                            ("training_curves.png", "Training curves"))
        if (folder / name).is_file()
    )
    rows = "".join(
        f"<tr><td>{label}</td><td>{_fmt(metrics['test']['model'][key], fmt)}</td>"
        f"<td>{_fmt(metrics['test']['persistence'][key], fmt)}</td>"
        f"<td>{'' if metrics['test']['ratio'].get(key) is None else format(metrics['test']['ratio'][key], '.4f')}</td></tr>"
        for label, key, fmt in _ROWS
    )
    verdict = "PASSED" if metrics["gate"]["passed"] else "REJECTED"
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>make-us-rich run</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}</style></head><body>"
        f"<h2>{html.escape(metrics['symbol'])}: gate {verdict}</h2>"
        f"<p>{'<br/>'.join(html.escape(r) for r in metrics['gate']['reasons'])}</p>"
        "<table><tr><th>metric</th><th>model</th><th>persistence</th><th>ratio</th></tr>"
        f"{rows}</table>{images}</body></html>"
    )
    Path(html_path).write_text(page)
    if markdown_path:
        Path(markdown_path).write_text(md)
