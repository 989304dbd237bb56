"""Run the pipeline on this machine through ``kfp.local``: the SAME pipeline as on a cluster,
each component in a subprocess of the current environment. kfp.local's own output goes to the
run's log file; the terminal gets one line per finished step (and, on a terminal, the live
status line of :mod:`make_us_rich.pipelines.terminal`); the run's record feeds ``mkrich runs``."""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import re
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from make_us_rich.errors import ConfigError, MakeUsRichError
from make_us_rich.pipelines.hourly_training import (
    PIPELINE_NAME,
    UNIVERSAL_PIPELINE_NAME,
    hourly_training,
    universal_training,
)
from make_us_rich.pipelines.kfp_compat import on_task_finished
from make_us_rich.pipelines.kfp_compat import (
    resolve_time_placeholders as _resolve_time_placeholders,
)
from make_us_rich.pipelines.terminal import LiveStatus, LogTee


class PipelineRunError(MakeUsRichError, RuntimeError):
    """A step of a local run failed; the message names it and the log file. ``summary`` is the
    run summary the exit task built (None if it did not run)."""

    summary: dict[str, Any] | None = None


def _step_numbers(outputs: dict[str, Any], limit: int = 6) -> str:
    """The key numbers of a finished step, from its outputs: scalar artifact metadata (of a
    Metrics artifact only the ratios), prefixed by the artifact's name when there are several,
    and string parameter outputs (e.g. publish's ``accepted:<version>``)."""
    artifacts = {n: v for n, v in outputs.items() if getattr(v, "metadata", None)}
    several = sum(type(v).__name__ != "Metrics" for v in artifacts.values()) > 1
    items: dict[str, str] = {}
    for name, value in sorted(outputs.items()):  # metadata come as a map: sorted, a stable line
        if name not in artifacts:
            if isinstance(value, str) and len(value) <= 80:  # not the exit task's summary
                items.setdefault(name, value)
            continue
        is_metrics = type(value).__name__ == "Metrics"
        for key, v in sorted(value.metadata.items()):
            if not isinstance(v, bool | int | float) or (is_metrics and not key.startswith("ratio_")):
                continue
            label = f"{name}.{key}" if several and not is_metrics else key
            items.setdefault(key if is_metrics else label, f"{label}={v:.4g}" if type(v) is float else f"{label}={v}")
    return " ".join(list(items.values())[:limit])


def _iteration(*values: Any) -> int | None:
    """Which ParallelFor iteration (= which symbol) a task belongs to, from its artifact URIs."""
    for value in values:
        for item in (value.values() if isinstance(value, dict) else [value]):
            found = re.search(r"iteration-(\d+)", str(getattr(item, "uri", "")))
            if found:
                return int(found.group(1))
    return None


def _step_symbol(kwargs: dict, outputs, symbols: list[str]) -> tuple[str, str]:
    """The step and whom it works for: the symbols it was given (a universal run's evaluation
    batch), else the symbol of its ParallelFor iteration, else every symbol of the run."""
    step = kwargs.get("component_name", "?").removeprefix("comp-")
    arguments = kwargs.get("arguments", {})
    given = arguments.get("symbols") if isinstance(arguments, dict) else None
    if isinstance(given, list) and given and all(isinstance(s, str) for s in given):
        return step, ",".join(given)
    index = _iteration(arguments, outputs)
    return step, symbols[index] if index is not None and index < len(symbols) else ",".join(symbols)


@contextlib.contextmanager
def _report_steps(symbols: list[str], report, tee: LogTee, live: LiveStatus,
                  steps: list[dict[str, Any]] | None = None):
    """Call ``report(line)`` as each step finishes: step, symbol, seconds, key numbers; a failed
    step is recorded with its error (read from its own output, before later logs follow).
    ``live`` shows the running step meanwhile."""
    failed: list[str] = []

    def started(kwargs: dict) -> None:
        live.start(*_step_symbol(kwargs, None, symbols))

    def finished(kwargs: dict, outputs, status, seconds: float) -> None:
        step, symbol = _step_symbol(kwargs, outputs, symbols)
        ok = getattr(status, "name", str(status)) == "SUCCESS"
        numbers = _step_numbers(outputs) if ok else ""
        if not ok:
            failed.append(f"{step} ({symbol}) failed: {tee.last_error() or 'see the log'}")
        if steps is not None:
            steps.append({"step": step, "symbol": symbol, "status": "ok" if ok else "FAILED",
                          "seconds": round(seconds, 1), "numbers": numbers})
        live.print(f"  {'ok ' if ok else 'FAILED'} {step:<18} {symbol:<8} {seconds:5.1f} s  "
                   f"{numbers}".rstrip(), report)

    try:
        with on_task_finished(finished, started):
            yield failed
    finally:
        live.close()


def run_local(
    symbols: list[str],
    *,
    source: str = "sample",
    store_uri: str = "runs/store",
    pipeline_root: str | Path = "runs/pipeline",
    verbose: bool = False,
    report=None,
    live: bool | None = None,
    notify_url: str | None = None,
    notify_format: str = "slack",
    universal: bool = False,
    **params: Any,
) -> dict[str, Any]:
    """Execute the pipeline here with ``kfp.local`` (``SubprocessRunner``, current environment)
    and return, per symbol, the store's view after the run, and the run summary its exit task
    built (and posted to ``notify_url`` when given). kfp.local's own output goes to
    ``kfp-local.log`` in the run's folder (and to the terminal with ``verbose``); ``report``
    gets one line per finished step; ``live`` (default: on a terminal, without ``verbose``)
    redraws a status line with the running step and its epoch bar.

    The webhook reaches the exit task as on a cluster, through its environment (there from the
    Secret ``mkrich-notify``), never as a pipeline parameter: those are logged. ``universal``
    runs ``universal-training`` (one model for every symbol) instead of ``hourly-training``."""
    from kfp import local

    from make_us_rich.store import ModelStore

    terminal = sys.stdout  # kfp.local's output is redirected below; progress lines are not
    report = report or (lambda line: (terminal.write(line + "\n"), terminal.flush()))
    root = Path(pipeline_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    store_abs = store_uri if "://" in store_uri else str(Path(store_uri).resolve())
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root),
               raise_on_error=True)
    started = time.time()
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    log_path = root / f".kfp-local-{started:.0f}.log"
    error, cause = None, None
    if live is None:
        live = not verbose and getattr(terminal, "isatty", lambda: False)()
    status = LiveStatus(terminal, enabled=bool(live))
    steps: list[dict[str, Any]] = []
    with log_path.open("w") as log:
        tee = LogTee(log, echo=terminal if verbose else None, watch=status.watch)
        with (
            _notify_env(notify_url, notify_format),
            _resolve_time_placeholders(now),
            _report_steps(list(symbols), report, tee, status, steps) as failed,
            contextlib.redirect_stdout(tee),
            contextlib.redirect_stderr(tee),
            warnings.catch_warnings(),
        ):
            warnings.showwarning = lambda msg, cat, fn, ln, *a, **k: tee.write(
                warnings.formatwarning(msg, cat, fn, ln))
            handlers = logging.getLogger().handlers[:]
            # kfp.local indents a task's prints by swapping builtins.print; parallel tasks
            # (ParallelFor) can restore each other's swap and leave print indented for good
            original_print = builtins.print
            try:
                pipeline = universal_training if universal else hourly_training
                pipeline(symbols=list(symbols), source=source, store_uri=store_abs, **params)
            except Exception as exc:  # kfp.local raises RuntimeError for a failed task
                error, cause = "; ".join(failed) or f"the pipeline failed: {tee.last_error() or exc}", exc
            finally:
                # kfp.local swaps the root logger's handlers per task; with parallel tasks it can
                # leave one behind that writes to this (soon closed) log
                logging.getLogger().handlers[:] = handlers
                builtins.print = original_print
    seconds = time.time() - started
    name = UNIVERSAL_PIPELINE_NAME if universal else PIPELINE_NAME
    run_dirs = sorted((p for p in root.glob(f"{name}-*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    log_file = log_path.rename((run_dirs[-1] if run_dirs else root) / "kfp-local.log")
    summary = _exit_summary(run_dirs[-1]) if run_dirs else None
    if run_dirs:  # the run history's record (mkrich runs)
        from make_us_rich.runs import write_record

        write_record(run_dirs[-1], {
            "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
            "seconds": round(seconds, 1), "status": "failed" if error else "succeeded",
            "error": error, "symbols": list(symbols), "source": source, "store": store_abs,
            "parameters": params, "steps": steps,
        })
    if error:
        failure = PipelineRunError(f"{error} (full log: {log_file})")
        failure.summary = summary
        raise failure from cause
    store = ModelStore(store_abs)
    artifacts = {}
    if run_dirs:
        found = (run_dirs[-1].glob("**/evaluate-and-publish/artifacts/*/metrics.json") if universal
                 else run_dirs[-1].glob("**/evaluate-and-gate/artifacts/metrics.json"))
        for metrics_file in found:
            artifacts[json.loads(metrics_file.read_text())["symbol"]] = metrics_file.parent
    results = {}
    since = datetime.fromtimestamp(int(started), UTC).isoformat(timespec="seconds")
    for symbol in symbols:
        versions = [v for v in store.versions(symbol) if (v.get("published") or "") >= since]
        results[symbol] = {
            "newest": versions[-1] if versions else None,  # published by this run
            "latest": store.latest(symbol),
            "artifacts": str(artifacts.get(symbol, "")),
        }
    return {"seconds": seconds, "store": store.uri, "pipeline_root": str(root),
            "run_dir": str(run_dirs[-1]) if run_dirs else None, "log": str(log_file),
            "symbols": results, "summary": summary}


@contextlib.contextmanager
def _notify_env(url: str | None, fmt: str) -> Iterator[None]:
    """The exit task's webhook settings for the duration of a local run (kfp.local's
    subprocesses inherit this environment)."""
    import os

    from make_us_rich.notify import FORMAT_ENV, FORMATS, NOTIFY_ENV

    if fmt not in FORMATS:
        raise ConfigError(f"notification format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    saved = {k: os.environ.get(k) for k in (NOTIFY_ENV, FORMAT_ENV)}
    os.environ.pop(NOTIFY_ENV, None)
    if url:
        os.environ[NOTIFY_ENV] = url
    os.environ[FORMAT_ENV] = fmt
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _exit_summary(run_dir: Path) -> dict[str, Any] | None:
    """The run summary the exit task (``notify-run``) returned, from its executor output, with
    what became of it (``delivery``)."""
    for output in run_dir.glob("**/notify-run/executor_output.json"):
        value = json.loads(output.read_text()).get("parameterValues", {}).get("Output")
        if value:
            return json.loads(value)
    return None
