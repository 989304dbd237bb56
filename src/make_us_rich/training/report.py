"""How a run's results read, in one place: the table of the model beside the baselines (for
``mkrich train``/``evaluate``, the Kubeflow dashboard's Markdown and HTML, and the KFP metrics)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

#: (column title, key in metrics["test"]): the model, then the baselines
COLUMNS = (("model", "model"), ("empirical (A)", "empirical"), ("GARCH-t", "garch_t"),
           ("HAR", "har"), ("persistence", "persistence"))
#: (row label, how to read one score dict, format); returns in basis points (1e-4)
ROWS = (
    ("mean pinball (bp)", lambda s: s["mean_pinball"] * 1e4, "{:.3f}"),
    ("CRPS (bp)", lambda s: s["crps"] * 1e4, "{:.3f}"),
    ("90 % coverage", lambda s: s["intervals"]["90"]["coverage"], "{:.3f}"),
    ("50 % coverage", lambda s: s["intervals"]["50"]["coverage"], "{:.3f}"),
    ("90 % width (bp)", lambda s: s["intervals"]["90"]["width"] * 1e4, "{:.1f}"),
    ("median RMSE (bp)", lambda s: s["median"]["rmse"] * 1e4, "{:.2f}"),
)
#: files of the artifact folder shown as pictures, with their titles
PICTURES = (("fan_chart.png", "Test period: the forecast's 50 % and 90 % intervals and the actual close"),
            ("calibration.png", "Calibration: observed share below each quantile"),
            ("training_curves.png", "Training curves"))


def table(test: dict[str, Any]) -> list[list[str]]:
    """Header and rows of the results table (strings), model beside every baseline scored."""
    columns = [(title, key) for title, key in COLUMNS if key == "model" or key in test["baselines"]]
    scores = {key: test["model"] if key == "model" else test["baselines"][key] for _, key in columns}
    rows = [["metric", *[title for title, _ in columns]]]
    for label, read, fmt in ROWS:
        row = [label]
        for _, key in columns:
            try:
                row.append(fmt.format(read(scores[key])))
            except (KeyError, TypeError):
                row.append("n/a")
        rows.append(row)
    ratio = test["ratio"]
    rows.append(["pinball ratio", "", *[
        f"{ratio[f'pinball_vs_{key}']:.4f}" if ratio.get(f"pinball_vs_{key}") is not None else ""
        for _, key in columns[1:]
    ]])
    return rows


def text_table(test: dict[str, Any]) -> str:
    rows = table(test)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    )


def metric_values(metrics: dict[str, Any]) -> dict[str, float]:
    """Flat numeric metrics for ``Output[Metrics].log_metric`` (None values left out)."""
    test = metrics["test"]
    flat: dict[str, float] = {}
    for name, score in (("model", test["model"]), *test["baselines"].items()):
        flat[f"{name}_mean_pinball"] = score["mean_pinball"]
        flat[f"{name}_coverage90"] = score["intervals"]["90"]["coverage"]
        flat[f"{name}_coverage50"] = score["intervals"]["50"]["coverage"]
    for key, value in test["ratio"].items():
        if value is not None:
            flat[f"ratio_{key}"] = float(value)
    flat["price_ratio_rmse"] = float(test["price"]["ratio_rmse"] or 0.0)
    flat["gate_passed"] = 1.0 if metrics["gate"]["passed"] else 0.0
    flat["parity_max_rel_error"] = float(metrics["parity"]["max_rel_error"])
    flat["best_epoch"] = float(metrics["training"]["best_epoch"])
    return {k: float(v) for k, v in flat.items()}


def log_kfp_metrics(metrics: dict[str, Any], output) -> None:
    for name, value in metric_values(metrics).items():
        output.log_metric(name, value)


def markdown_summary(metrics: dict[str, Any]) -> str:
    rows = table(metrics["test"])
    lines = [
        f"### {metrics['symbol']}: gate {'PASSED' if metrics['gate']['passed'] else 'REJECTED'}",
        "",
        f"Test period {metrics['test']['period'][0]} .. {metrics['test']['period'][1]}, "
        f"{metrics['test']['n']} hours; {metrics['test']['units']}.",
        "",
        "| " + " | ".join(rows[0]) + " |",
        "|" + "---|" * len(rows[0]),
        *["| " + " | ".join(r) + " |" for r in rows[1:]],
        "",
        *[f"- {r}" for r in metrics["gate"]["reasons"]],
    ]
    return "\n".join(lines) + "\n"


def write_report(artifacts_dir: str | Path, html_path: str | Path, markdown_path: str | Path | None = None) -> None:
    """HTML page (table + embedded PNGs) and Markdown summary from an artifact folder."""
    folder = Path(artifacts_dir)
    metrics = json.loads((folder / "metrics.json").read_text())
    images = "".join(
        f'<h3>{html.escape(title)}</h3><img alt="{html.escape(title)}" style="max-width:100%" '
        f'src="data:image/png;base64,{base64.b64encode((folder / name).read_bytes()).decode()}"/>'
        for name, title in PICTURES if (folder / name).is_file()
    )
    rows = table(metrics["test"])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    head = "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in rows[0]) + "</tr>"
    verdict = "PASSED" if metrics["gate"]["passed"] else "REJECTED"
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>make-us-rich run</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}</style></head><body>"
        f"<h2>{html.escape(metrics['symbol'])}: gate {verdict}</h2>"
        f"<p>{'<br/>'.join(html.escape(r) for r in metrics['gate']['reasons'])}</p>"
        f"<p>Test period {html.escape(' .. '.join(metrics['test']['period']))}, {metrics['test']['n']} hours; "
        f"{html.escape(metrics['test']['units'])} (bp = 1e-4).</p>"
        f"<table>{head}{body}</table>{images}</body></html>"
    )
    Path(html_path).write_text(page)
    if markdown_path:
        Path(markdown_path).write_text(markdown_summary(metrics))


SYMBOL_COLUMNS = (("pinball_vs_empirical", "pinball / A"), ("pinball_vs_garch_t", "pinball / GARCH-t"),
                  ("pinball_vs_har", "pinball / HAR"), ("coverage_90", "cov 90 %"), ("coverage_50", "cov 50 %"),
                  ("median_rmse_vs_persistence", "RMSE / persistence"))


def _symbol_cells(sym: str, row: dict[str, Any]) -> list[str]:
    if "error" in row:
        return [sym, *[""] * len(SYMBOL_COLUMNS), "not evaluated", row["error"]]
    status = (row.get("published") or {}).get("status") or ("passed" if row["gate"] else "rejected")
    lacking = ", ".join((row.get("inputs") or {}).get("unavailable") or []) or "-"
    return [sym, *[("n/a" if row.get(k) is None else f"{row[k]:.4f}") for k, _ in SYMBOL_COLUMNS], status,
            f"inputs lacking: {lacking}"]


def symbols_markdown(rows: dict[str, dict[str, Any]]) -> str:
    """The per-symbol table of a universal run (each symbol's test period vs its own baselines)."""
    head = ["symbol", *[t for _, t in SYMBOL_COLUMNS], "gate / store", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_symbol_cells(s, r)) + " |" for s, r in rows.items()]
    return "\n".join(lines) + "\n"


def symbols_html(rows: dict[str, dict[str, Any]]) -> str:
    head = ["symbol", *[t for _, t in SYMBOL_COLUMNS], "gate / store", "note"]
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _symbol_cells(s, r)) + "</tr>"
                   for s, r in rows.items())
    return ("<!doctype html><html><head><meta charset='utf-8'><title>make-us-rich universal run</title>"
            "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}</style></head><body>"
            "<h2>Universal model: each symbol on its own test period</h2><table><tr>"
            + "".join(f"<th>{html.escape(c)}</th>" for c in head) + f"</tr>{body}</table></body></html>")
