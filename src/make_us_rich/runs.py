"""The history of local pipeline runs (``runs/pipeline/hourly-training-*``) and of the models
in the store: what the Kubeflow dashboard's run list, MLflow or TensorBoard show, read from the
files kfp.local and the store already write.

Each run folder gets a ``run.json`` from :func:`make_us_rich.pipelines.local.run_local` (when,
parameters, status, duration, every step's result); the per-symbol gate decisions and metrics
are read from the run's ``evaluate-and-gate/artifacts/metrics.json`` and ``publish-model``
outputs, the step logs from its ``kfp-local.log``. A folder of an older run, without
``run.json``, is still listed with what its files tell.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from make_us_rich.errors import ConfigError

RUN_FILE = "run.json"
LOG_FILE = "kfp-local.log"
_PREFIX = "hourly-training-"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def write_record(run_dir: str | Path, record: dict[str, Any]) -> Path:
    """``run.json`` of a run folder (written by the local runner at the end of a run)."""
    path = Path(run_dir) / RUN_FILE
    path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return path


def _started_from_name(name: str) -> str | None:
    """kfp.local names a run ``hourly-training-YYYY-MM-DD-HH-MM-SS-ffffff`` (local time)."""
    found = re.fullmatch(rf"{_PREFIX}(\d{{4}})-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-\d+", name)
    if not found:
        return None
    y, mo, d, h, mi, s = (int(x) for x in found.groups())
    return datetime(y, mo, d, h, mi, s).astimezone(UTC).isoformat(timespec="seconds")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _symbol_results(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Per symbol: the gate's decision and key test metrics, and what publishing did."""
    results: dict[str, dict[str, Any]] = {}
    for iteration in sorted(run_dir.glob("for-loop-*-iteration-*")):
        metrics = _read_json(iteration / "evaluate-and-gate" / "artifacts" / "metrics.json")
        fetched = _read_json(iteration / "fetch-klines" / "executor_output.json") or {}
        symbol = (metrics or {}).get("symbol") or _artifact_meta(fetched, "klines").get("symbol")
        if not symbol:
            continue
        entry: dict[str, Any] = {"symbol": symbol}
        if metrics:
            test = metrics.get("test") or {}
            ratio = test.get("ratio") or {}
            intervals = (test.get("model") or {}).get("intervals") or {}
            entry.update({
                "gate": "passed" if (metrics.get("gate") or {}).get("passed") else "rejected",
                "gate_reasons": (metrics.get("gate") or {}).get("reasons", []),
                "pinball_vs_empirical": ratio.get("pinball_vs_empirical"),
                "pinball_vs_garch_t": ratio.get("pinball_vs_garch_t"),
                "rmse_vs_persistence": ratio.get("median_rmse_vs_persistence"),
                "coverage90": (intervals.get("90") or {}).get("coverage"),
                "coverage50": (intervals.get("50") or {}).get("coverage"),
                "test_hours": test.get("n"),
                "artifacts": str(iteration / "evaluate-and-gate" / "artifacts"),
            })
        published = _read_json(iteration / "publish-model" / "executor_output.json") or {}
        outcome = (published.get("parameterValues") or {}).get("Output")
        if isinstance(outcome, str) and ":" in outcome:
            entry["published"], entry["version"] = outcome.split(":", 1)
        results[symbol] = entry
    return results


def _artifact_meta(executor_output: dict, name: str) -> dict[str, Any]:
    found = ((executor_output.get("artifacts") or {}).get(name) or {}).get("artifacts") or [{}]
    return found[0].get("metadata") or {}


def _summary(run_dir: Path) -> dict[str, Any] | None:
    output = _read_json(run_dir / "notify-run" / "executor_output.json") or {}
    value = (output.get("parameterValues") or {}).get("Output")
    try:
        return json.loads(value) if value else None
    except ValueError:
        return None


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """One run: its record (or what the folder tells, for a run without ``run.json``) and each
    symbol's gate decision, metrics and publish outcome."""
    path = Path(run_dir)
    record = _read_json(path / RUN_FILE) or {}
    summary = _summary(path)
    run = {
        "id": path.name,
        "dir": str(path),
        "started": record.get("started") or _started_from_name(path.name),
        "seconds": record.get("seconds"),
        "status": record.get("status") or (summary or {}).get("status") or "unknown",
        "error": record.get("error") or ((summary or {}).get("error") if summary else None),
        "source": record.get("source"),
        "store": record.get("store"),
        "parameters": record.get("parameters", {}),
        "steps": record.get("steps", []),
        "symbols": _symbol_results(path),
        "log": str(path / LOG_FILE) if (path / LOG_FILE).exists() else None,
    }
    for symbol in record.get("symbols", []):
        run["symbols"].setdefault(symbol, {"symbol": symbol})
    return run


def list_runs(root: str | Path = "runs/pipeline") -> list[dict[str, Any]]:
    """Every run under ``root``, newest first."""
    base = Path(root)
    if not base.is_dir():
        return []
    runs = [load_run(p) for p in base.glob(f"{_PREFIX}*") if p.is_dir()]
    return sorted(runs, key=lambda r: (r["started"] or "", r["id"]), reverse=True)


def find_run(root: str | Path, run_id: str) -> dict[str, Any]:
    """A run by its folder name, a unique prefix or suffix of it, or ``latest``."""
    runs = list_runs(root)
    if not runs:
        raise ConfigError(f"no pipeline runs under {root}; `mkrich run` makes one")
    if run_id == "latest":
        return runs[0]
    matches = [r for r in runs if r["id"] == run_id] or [
        r for r in runs if r["id"].startswith(run_id) or r["id"].endswith(run_id)
        or r["id"].removeprefix(_PREFIX).startswith(run_id)]
    if len(matches) != 1:
        what = "no run" if not matches else f"{len(matches)} runs"
        raise ConfigError(f"{what} under {root} match {run_id!r}; `mkrich runs` lists their ids")
    return matches[0]


def step_logs(log_file: str | Path) -> list[dict[str, Any]]:
    """The kfp.local log cut into steps, in order: ``{"step", "status", "lines"}``; each step's
    lines run from ``Executing task`` to its ``finished with status`` line."""
    steps: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for raw in Path(log_file).read_text(errors="replace").splitlines():
        line = _ANSI.sub("", raw)
        started = re.search(r"Executing task '([^']+)'", line)
        if started:
            current = {"step": started.group(1), "status": "RUNNING", "lines": [line]}
            steps.append(current)
            continue
        if current is None:
            continue
        current["lines"].append(line)
        finished = re.search(r"Task '([^']+)' finished with status (\w+)", line)
        if finished and finished.group(1) == current["step"]:
            current["status"] = finished.group(2)
            current = None
    return steps


def model_history(store_uri: str, symbol: str) -> list[dict[str, Any]]:
    """Successive model versions of ``symbol`` in the store, oldest first: when published, the
    gate's decision, pinball ratio against the empirical quantiles and GARCH-t, interval
    coverage, median RMSE against persistence."""
    from make_us_rich.store import ModelStore

    store = ModelStore(store_uri)
    latest = (store.latest(symbol) or {}).get("version")
    history = []
    for manifest in store.versions(symbol):
        test = manifest.get("metrics") or {}
        ratio = test.get("ratio") or {}
        intervals = (test.get("model") or {}).get("intervals") or {}
        history.append({
            "version": manifest["version"],
            "published": manifest.get("published"),
            "status": manifest.get("status"),
            "latest": manifest["version"] == latest,
            "pinball_vs_empirical": ratio.get("pinball_vs_empirical"),
            "pinball_vs_garch_t": ratio.get("pinball_vs_garch_t"),
            "coverage90": (intervals.get("90") or {}).get("coverage"),
            "coverage50": (intervals.get("50") or {}).get("coverage"),
            "rmse_vs_persistence": ratio.get("median_rmse_vs_persistence"),
            "test_period": test.get("period"),
        })
    return history
