"""The history pages: the kfp.local runs (read by :mod:`make_us_rich.runs`, as ``mkrich runs``
does) and a symbol's successive model versions (:func:`make_us_rich.runs.model_history`, as
``mkrich runs models``), with their charts drawn on the server as SVG (no script needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup, escape

from make_us_rich import runs
from make_us_rich.console.web import App, HTTPProblem, Member
from make_us_rich.errors import ConfigError
from make_us_rich.store import StoreError

router = APIRouter(include_in_schema=False)

#: the setting's value that turns the runs pages off (a cluster: the KFP dashboard lists runs)
OFF = ("", "off", "none")
#: symbols of a run named one by one in the runs list; beyond, their counts
LISTED_SYMBOLS = 6


def runs_root(app: App) -> Path | None:
    value = app.settings.runs_dir.strip()
    return None if value.lower() in OFF else Path(value)


@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request, app: App, who: Member):
    root = runs_root(app)
    found = runs.list_runs(root) if root else []
    for run in found:
        run["counts"] = runs.gate_counts(run)
    return app.render(request, "runs.html", {"root": root, "runs": found, "listed": LISTED_SYMBOLS},
                      user=who.user, seed=who.session)


def _artifacts(folder: str | None) -> list[str]:
    """The names of the files in an artifacts folder (names only: the files stay on disk)."""
    if not folder or not Path(folder).is_dir():
        return []
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, app: App, who: Member, run_id: str):
    root = runs_root(app)
    if root is None:
        raise HTTPProblem(404, "no runs folder is configured (MKRICH_CONSOLE_RUNS_DIR)")
    matches = [r for r in runs.list_runs(root) if r["id"] == run_id]
    if not matches:
        raise HTTPProblem(404, f"no run {run_id} under {root}; /runs lists them")
    run = matches[0]
    run["counts"] = runs.gate_counts(run)
    if run["kind"] == "universal":  # every symbol's folder holds the same names: listed once
        first = next((i["artifacts"] for i in run["symbols"].values() if i.get("artifacts")), None)
        run["artifact_names"] = _artifacts(first)
        run["artifacts_folder"] = str(Path(first).parent) if first else None
        run["rejected"] = [i for i in run["symbols"].values() if "rejected" in (i.get("gate"), i.get("published"))]
    else:
        for info in run["symbols"].values():
            info["artifact_names"] = _artifacts(info.get("artifacts"))
    # the step logs hold each step's inputs and whatever a library printed: administrators only
    logs = runs.step_logs(run["log"]) if run["log"] and who.user.role == "admin" else []
    return app.render(request, "run.html", {"run": run, "logs": logs}, user=who.user, seed=who.session)


def svg_chart(points: list[tuple[str, float | None]], label: str, reference: float, fmt: str = "{:.3f}") -> Markup:
    """A small line chart of one value per model version (oldest left), with a dashed line at
    ``reference`` (1 for a ratio: the baseline; 0.9 for the 90 % coverage)."""
    width, height, left, right, top, bottom = 640, 220, 56, 16, 16, 40
    known = [v for _, v in points if v is not None]
    if not known:
        return Markup(f'<p class="note">No {escape(label)} recorded.</p>')
    lo, hi = min(known + [reference]), max(known + [reference])
    pad = (hi - lo) * 0.1 or abs(hi) * 0.05 or 0.05
    lo, hi = lo - pad, hi + pad
    n = len(points)

    def x(i: int) -> float:
        return left + (width - left - right) * (i / (n - 1) if n > 1 else 0.5)

    def y(v: float) -> float:
        return top + (height - top - bottom) * (hi - v) / (hi - lo)

    parts = [f'<svg class="history-chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(label)} per model version">']
    for tick in (lo + pad, (lo + hi) / 2, hi - pad):
        parts.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="11" '
                     f'fill="#57606a">{escape(fmt.format(tick))}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(reference):.1f}" y2="{y(reference):.1f}" '
                 f'stroke="#b71c1c" stroke-dasharray="6 4"/>')
    parts.append(f'<text x="{width - right}" y="{y(reference) - 4:.1f}" text-anchor="end" font-size="11" '
                 f'fill="#b71c1c">{escape(fmt.format(reference))}</text>')
    path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, (_, v) in enumerate(points) if v is not None)
    parts.append(f'<polyline points="{path}" fill="none" stroke="#0d47a1" stroke-width="2"/>')
    for i, (when, v) in enumerate(points):
        if v is not None:
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="4" fill="#0d47a1" data-value="{v}">'
                         f'<title>{escape(when)}: {escape(fmt.format(v))}</title></circle>')
    for i in sorted({0, n - 1}):
        parts.append(f'<text x="{x(i):.1f}" y="{height - 14}" text-anchor="middle" font-size="11" '
                     f'fill="#57606a">{escape(points[i][0][:16])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


@router.get("/models/{symbol}/history", response_class=HTMLResponse)
def model_history_page(request: Request, app: App, who: Member, symbol: str):
    sym = app.symbol(symbol, served=False)
    try:
        history: list[dict[str, Any]] = runs.model_history(app.settings.store, sym)
    except (StoreError, ConfigError) as exc:
        raise HTTPProblem(503, f"the model store cannot be read: {exc}") from None
    if not history:
        raise HTTPProblem(404, f"no model versions of {sym} in the store; /models lists the symbols")
    when = [(m.get("published") or "?").replace("T", " ") for m in history]
    charts = {
        "pinball": svg_chart(list(zip(when, (m["pinball_vs_empirical"] for m in history), strict=True)),
                             "pinball ratio vs empirical quantiles", 1.0),
        "coverage": svg_chart(list(zip(when, (m["coverage90"] for m in history), strict=True)),
                              "90 % interval coverage", 0.9),
    }
    return app.render(request, "model_history.html", {
        "symbol": sym, "history": list(reversed(history)), "charts": charts,
        "model": app.serving_model(sym),
    }, user=who.user, seed=who.session)
