"""The history of local pipeline runs (``runs/pipeline/hourly-training-*`` and
``universal-training-*``) and of the models in the store: what the Kubeflow dashboard's run
list, MLflow or TensorBoard show, read from the files kfp.local and the store already write.

Each run folder gets a ``run.json`` from :func:`make_us_rich.pipelines.local.run_local` (when,
parameters, status, duration, every step's result); the step logs come from its
``kfp-local.log``. The per-symbol gate decisions and metrics of a per-symbol run are read from
each symbol's ``evaluate-and-gate/artifacts/metrics.json`` and ``publish-model`` output; those
of a universal run from its batches' ``evaluate-and-publish/artifacts/<SYMBOL>/metrics.json``
and outputs, its training (warm start, time budget) from ``train-universal``. A folder of an
older run, without ``run.json``, is still listed with what its files tell.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from make_us_rich.contract import ModelCard, ModelScores
from make_us_rich.errors import ConfigError

RUN_FILE = "run.json"
LOG_FILE = "kfp-local.log"
#: pipeline name (the run folder's prefix) -> kind of run
PIPELINES = {"hourly-training": "per-symbol", "universal-training": "universal"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def write_record(run_dir: str | Path, record: dict[str, Any]) -> Path:
    """``run.json`` of a run folder (written by the local runner at the end of a run)."""
    path = Path(run_dir) / RUN_FILE
    path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return path


def _pipeline_of(name: str) -> str | None:
    return next((p for p in PIPELINES if name.startswith(f"{p}-")), None)


def _started_from_name(name: str) -> str | None:
    """kfp.local names a run ``<pipeline>-YYYY-MM-DD-HH-MM-SS-ffffff`` (local time)."""
    found = re.fullmatch(r"[a-z-]+?-(\d{4})-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-\d+", name)
    if not found:
        return None
    y, mo, d, h, mi, s = (int(x) for x in found.groups())
    return datetime(y, mo, d, h, mi, s).astimezone(UTC).isoformat(timespec="seconds")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _score_fields(scores: ModelScores) -> dict[str, Any]:
    """The scores a run or a model version lists, by the names the CLI, the console and JSON use."""
    return {"pinball_vs_empirical": scores.pinball_vs_empirical, "pinball_vs_garch_t": scores.pinball_vs_garch_t,
            "pinball_vs_har": scores.pinball_vs_har, "rmse_vs_persistence": scores.rmse_vs_persistence,
            "coverage90": scores.coverage90, "coverage50": scores.coverage50}


def _metrics_entry(metrics: dict[str, Any], artifacts: Path) -> dict[str, Any]:
    """A symbol's gate decision and key test scores, from its ``metrics.json``."""
    scores = ModelScores.of(metrics.get("test"))
    return {
        "gate": "passed" if (metrics.get("gate") or {}).get("passed") else "rejected",
        "gate_reasons": (metrics.get("gate") or {}).get("reasons", []),
        **_score_fields(scores),
        "test_hours": scores.n,
        "artifacts": str(artifacts),
    }


def _symbol_results(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Per symbol of a per-symbol run: the gate's decision and key test metrics, and what
    publishing did."""
    results: dict[str, dict[str, Any]] = {}
    for iteration in sorted(run_dir.glob("for-loop-*-iteration-*")):
        metrics = _read_json(iteration / "evaluate-and-gate" / "artifacts" / "metrics.json")
        fetched = _read_json(iteration / "fetch-klines" / "executor_output.json") or {}
        symbol = (metrics or {}).get("symbol") or _artifact_meta(fetched, "klines").get("symbol")
        if not symbol:
            continue
        entry: dict[str, Any] = {"symbol": symbol}
        if metrics:
            entry.update(_metrics_entry(metrics, iteration / "evaluate-and-gate" / "artifacts"))
        published = _read_json(iteration / "publish-model" / "executor_output.json") or {}
        outcome = (published.get("parameterValues") or {}).get("Output")
        if isinstance(outcome, str) and ":" in outcome:
            entry["published"], entry["version"] = outcome.split(":", 1)
        results[symbol] = entry
    return results


def _universal_results(run_dir: Path, summary: dict[str, Any] | None, log: Path | None) -> dict[str, dict[str, Any]]:
    """Per symbol of a universal run: its row of the evaluation batches (gate decision, scores,
    store outcome), the version it published (from the exit task's summary, or the batch's log
    line ``SYMBOL VERSION: status``), or why it was not evaluated (the fetch task's
    ``failed``, or the batch's ``error``)."""
    fetched = _read_json(run_dir / "fetch-market" / "executor_output.json") or {}
    failed = _artifact_meta(fetched, "market").get("failed") or {}
    versions = {s["symbol"]: s["version"] for s in (summary or {}).get("symbols", []) if s.get("version")}
    if log is not None and not versions:
        text = log.read_text(errors="replace")
        versions = dict(re.findall(r"^\s*([A-Z0-9]{5,20}) (\d{8}T\d{6}\.\d+Z-[0-9a-f]+): (?:accepted|rejected)",
                                   _ANSI.sub("", text), re.M))
    results: dict[str, dict[str, Any]] = {}
    for batch in sorted(run_dir.glob("for-loop-*-iteration-*/evaluate-and-publish")):
        output = _read_json(batch / "executor_output.json") or {}
        try:
            outcomes = json.loads((output.get("parameterValues") or {}).get("Output") or "{}")
        except ValueError:
            outcomes = {}
        for metrics_file in sorted((batch / "artifacts").glob("*/metrics.json")):
            metrics = _read_json(metrics_file) or {}
            if metrics.get("symbol"):
                results[metrics["symbol"]] = {"symbol": metrics["symbol"], **_metrics_entry(metrics, metrics_file.parent)}
        for symbol, outcome in outcomes.items():
            entry = results.setdefault(symbol, {"symbol": symbol})
            if outcome in ("accepted", "rejected"):
                entry["published"] = outcome
                if symbol in versions:
                    entry["version"] = versions[symbol]
            else:
                entry["error"] = failed.get(symbol) or "not evaluated or not published (see the batch's log)"
    for symbol, reason in failed.items():
        results.setdefault(symbol, {"symbol": symbol, "error": reason})
    return results


def _universal_training(run_dir: Path, log: Path | None) -> dict[str, Any] | None:
    """The training task of a universal run: what ``training.json`` and ``universal.json``
    record (epochs, validation loss, warm start, time budget, the symbols trained on), and the
    task's own line on the warm start (``warm start from ...`` / ``trained in full (why)``)."""
    output = _read_json(run_dir / "train-universal" / "executor_output.json") or {}
    model = ((output.get("artifacts") or {}).get("model") or {}).get("artifacts") or [{}]
    folder = Path(model[0].get("uri") or run_dir / "train-universal" / "model")
    training = _read_json(folder / "training.json")
    if training is None:
        return None
    info = _read_json(folder / "universal.json") or {}
    note = None
    if log is not None:
        stat = log.stat()
        note = _warm_start_note(str(log), (stat.st_mtime_ns, stat.st_size))
    return {
        **{k: training.get(k) for k in ("epochs_run", "best_epoch", "seconds", "initial_val_loss", "best_val_loss",
                                        "train_windows", "val_windows", "test_windows", "warm_start",
                                        "time_budget", "budget_exhausted")},
        "warm_start_note": note,
        "trained_on": info.get("symbols", []),
        "inputs": info.get("inputs", []),
        "unavailable": {s: v for s, v in (info.get("unavailable") or {}).items() if v},
        "folder": str(folder),
    }


@functools.lru_cache(maxsize=256)
def _warm_start_note(log: str, stamp: tuple[int, int]) -> str | None:
    """The training task's line on its warm start, from the run's log (read once per version
    of the file, ``stamp``: the runs pages list every run on each view)."""
    for step in step_logs(log):
        if step["step"] == "train-universal":
            return next((line.strip() for line in step["lines"]
                         if re.match(r"\s*(warm start from |trained in full \()", line)), None)
    return None


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
    """One run: its record (or what the folder tells, for a run without ``run.json``), its
    pipeline and kind (``per-symbol`` or ``universal``), each symbol's gate decision, metrics
    and publish outcome, and for a universal run its training (``training``)."""
    path = Path(run_dir)
    record = _read_json(path / RUN_FILE) or {}
    summary = _summary(path)
    pipeline = _pipeline_of(path.name) or "hourly-training"
    log = path / LOG_FILE if (path / LOG_FILE).exists() else None
    universal = PIPELINES[pipeline] == "universal"
    run = {
        "id": path.name,
        "dir": str(path),
        "pipeline": pipeline,
        "kind": PIPELINES[pipeline],
        "started": record.get("started") or _started_from_name(path.name),
        "seconds": record.get("seconds"),
        "status": record.get("status") or (summary or {}).get("status") or "unknown",
        "error": record.get("error") or ((summary or {}).get("error") if summary else None),
        "source": record.get("source"),
        "store": record.get("store"),
        "parameters": record.get("parameters", {}),
        "steps": record.get("steps", []),
        "symbols": _universal_results(path, summary, log) if universal else _symbol_results(path),
        "training": _universal_training(path, log) if universal else None,
        "log": str(log) if log else None,
    }
    if universal:
        run["steps"] = [_batch_step(step, record.get("symbols", []), run["parameters"]) for step in run["steps"]]
    for symbol in record.get("symbols", []):
        run["symbols"].setdefault(symbol, {"symbol": symbol})
    if record.get("symbols"):  # the run's order
        order = {s: i for i, s in enumerate(record["symbols"])}
        run["symbols"] = dict(sorted(run["symbols"].items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
    return run


def _batch_step(step: dict[str, Any], symbols: list[str], parameters: dict[str, Any]) -> dict[str, Any]:
    """An evaluation batch's step names the batch's symbols: the runner's record names the run's
    symbol at the batch's index (its rule for a per-symbol run's loop). A batch that finished
    gave one outcome per symbol; for one that failed, the batch is found from that index and
    ``eval_batch`` when the run's parameters give it."""
    if step.get("step") != "evaluate-and-publish":
        return step
    try:
        outcomes = json.loads(step.get("numbers") or "")
    except ValueError:
        outcomes = None
    if isinstance(outcomes, dict) and outcomes:
        return {**step, "symbol": ",".join(outcomes)}
    size = parameters.get("eval_batch")
    if isinstance(size, int) and size > 0 and step.get("symbol") in symbols:
        index = symbols.index(step["symbol"])
        return {**step, "symbol": ",".join(symbols[index * size:(index + 1) * size])}
    return step


def gate_counts(run: dict[str, Any]) -> dict[str, int]:
    """How many of a run's symbols were accepted, rejected, and not evaluated."""
    counts = {"accepted": 0, "rejected": 0, "not evaluated": 0}
    for info in run["symbols"].values():
        outcome = info.get("published") or ("accepted" if info.get("gate") == "passed" else info.get("gate"))
        counts[outcome if outcome in counts else "not evaluated"] += 1
    return counts


def list_runs(root: str | Path = "runs/pipeline") -> list[dict[str, Any]]:
    """Every run under ``root`` (of both pipelines), newest first."""
    base = Path(root)
    if not base.is_dir():
        return []
    runs = [load_run(p) for p in base.iterdir() if p.is_dir() and _pipeline_of(p.name)]
    return sorted(runs, key=lambda r: (r["started"] or "", r["id"]), reverse=True)


def find_run(root: str | Path, run_id: str) -> dict[str, Any]:
    """A run by its folder name, a unique prefix or suffix of it (with or without the pipeline's
    name), or ``latest``."""
    runs = list_runs(root)
    if not runs:
        raise ConfigError(f"no pipeline runs under {root}; `mkrich run` makes one")
    if run_id == "latest":
        return runs[0]
    matches = [r for r in runs if r["id"] == run_id] or [
        r for r in runs if r["id"].startswith(run_id) or r["id"].endswith(run_id)
        or r["id"].removeprefix(f"{r['pipeline']}-").startswith(run_id)]
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


def model_kind(store: Any, symbol: str, version: str) -> dict[str, Any]:
    """What the model card of ``symbol``'s ``version`` (in the :class:`ModelStore` ``store``)
    says of the model: ``kind`` (``universal`` or ``per-symbol``; ``None`` without a readable
    card), the symbols a universal model was trained on and its ONNX file's SHA-256."""
    from make_us_rich.store import StoreError

    try:
        card = ModelCard.of(json.loads(store.read(symbol, version, "model_card.json")))
    except (StoreError, ValueError):
        return {"kind": None, "trained_on": [], "model_sha256": None}
    universal = card.universal or {}
    kind = "universal" if "universal" in (card.kind, universal.get("kind")) else "per-symbol"
    return {"kind": kind, "trained_on": list(universal.get("trained_on") or card.symbols),
            "model_sha256": universal.get("model_sha256")}


def model_history(store_uri: str, symbol: str) -> list[dict[str, Any]]:
    """Successive model versions of ``symbol`` in the store, oldest first: when published, the
    model's kind (universal or per-symbol), the gate's decision, pinball ratio against the
    empirical quantiles, GARCH-t and HAR, interval coverage, median RMSE against persistence."""
    from make_us_rich.store import ModelStore

    store = ModelStore(store_uri)
    pointer = store.pointer(symbol)
    latest = pointer.version if pointer else None
    history = []
    for manifest in store.manifests(symbol):
        scores = manifest.scores
        history.append({
            "version": manifest.version,
            "published": manifest.published,
            "status": manifest.status,
            "latest": manifest.version == latest,
            **model_kind(store, symbol, manifest.version),
            **_score_fields(scores),
            "test_period": list(scores.period) if scores.period else None,
        })
    return history
