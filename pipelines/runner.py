"""Run the pipeline: on this machine through ``kfp.local`` (the SAME pipeline, each component in
a subprocess of the current environment), or on a Kubeflow cluster through the KFP API (one run,
or the hourly recurring run), and compile it (IR YAML and Kubernetes manifests)."""

from __future__ import annotations

import builtins
import collections
import contextlib
import io
import json
import logging
import re
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from make_us_rich.errors import ConfigError, MakeUsRichError
from make_us_rich.pipelines.hourly_training import (
    HOURLY_CRON,
    PIPELINE_NAME,
    UNIVERSAL_PIPELINE_NAME,
    hourly_training,
    universal_training,
)
from make_us_rich.pipelines.kfp_compat import mark_secret_key_names, on_task_finished
from make_us_rich.pipelines.kfp_compat import (
    resolve_time_placeholders as _resolve_time_placeholders,
)
from make_us_rich.progress import bar as progress_bar
from make_us_rich.progress import parse_epoch

RECURRING_RUN_NAME = f"{PIPELINE_NAME}-hourly"
DEFAULT_EXPERIMENT = "make-us-rich"


class ClusterError(MakeUsRichError, RuntimeError):
    """The Kubeflow Pipelines API could not be reached or refused the request."""


class PipelineRunError(MakeUsRichError, RuntimeError):
    """A step of a local run failed; the message names it and the log file. ``summary`` is the
    run summary the exit task built (None if it did not run)."""

    summary: dict[str, Any] | None = None


# ------------------------------------------------------------------------------- compile
def compile_pipeline(out_dir: str | Path = "pipelines/compiled", version: str | None = None) -> list[Path]:
    """Write ``hourly-training.yaml`` (IR, for the UI/API) and ``hourly-training.k8s.yaml``
    (``Pipeline`` + ``PipelineVersion`` manifests for ``kubectl apply``)."""
    from kfp import compiler
    from kfp.compiler.compiler_utils import KubernetesManifestOptions

    from make_us_rich import __version__

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ir = out / f"{PIPELINE_NAME}.yaml"
    compiler.Compiler().compile(hourly_training, str(ir))
    k8s = out / f"{PIPELINE_NAME}.k8s.yaml"
    options = KubernetesManifestOptions(
        pipeline_name=PIPELINE_NAME,
        pipeline_display_name="make-us-rich hourly training",
        pipeline_version_name=f"{PIPELINE_NAME}-v{(version or __version__).replace('.', '-')}",
        pipeline_version_display_name=f"make-us-rich {version or __version__}",
        include_pipeline_manifest=True,
    )
    compiler.Compiler().compile(
        hourly_training, str(k8s), kubernetes_manifest_format=True,
        kubernetes_manifest_options=options,
    )
    k8s.write_text(mark_secret_key_names(k8s.read_text()))
    return [ir, k8s]


# ------------------------------------------------------------------------------- local
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


class _LogTee(io.TextIOBase):
    """kfp.local's output (executor inputs, streamed component logs) goes to the log file; with
    ``echo`` also to the terminal. The last lines are kept to name the error of a failed step,
    and each line is shown to ``watch`` (the live progress line reads the epochs from it)."""

    def __init__(self, log, echo=None, watch=None):
        self.log, self.echo, self.watch = log, echo, watch
        self.tail = collections.deque(maxlen=200)
        self.partial = ""  # the start of a line whose end is still to come (for ``watch``)

    def write(self, text: str) -> int:
        self.log.write(text)
        if self.echo is not None:
            self.echo.write(text)
        self.tail.extend(text.splitlines())
        if self.watch is not None:
            *complete, self.partial = (self.partial + text).split("\n")
            for line in complete:
                self.watch(line)
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        if self.echo is not None:
            self.echo.flush()

    def last_error(self) -> str:
        """The last exception line (``pkg.SomeError: message``) written so far."""
        for line in reversed(self.tail):
            if re.match(r"\s*([\w.]+\.)?[A-Z]\w*(Error|Exception): ", line):
                return line.strip()
        return ""


class _LiveStatus:
    """While a step runs, one status line redrawn in place on a terminal: the step, its symbol,
    the seconds so far and, while a model trains, an epoch bar read from the step's epoch lines
    (:mod:`make_us_rich.progress`). Off when the output is not a terminal: logs and CI keep only
    the finished-step lines."""

    def __init__(self, out, enabled: bool, interval: float = 0.25):
        self.out, self.enabled, self.interval = out, enabled, interval
        self.lock = threading.Lock()
        self.step: tuple[str, str, float] | None = None
        self.epoch: tuple[int, int] | None = None
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def render(self, now: float | None = None) -> str:
        if self.step is None:
            return ""
        step, symbol, t0 = self.step
        line = f"  ..     {step:<18} {symbol:<8} {(now or time.time()) - t0:5.1f} s"
        if self.epoch is not None:
            done, total = self.epoch
            line += f"  {progress_bar(done, total)} epoch {done}/{total}"
        return line

    def _draw(self) -> None:
        with self.lock:
            if self.step is not None:
                # one terminal row at most: a wrapped line could not be redrawn in place
                width = shutil.get_terminal_size((80, 24)).columns
                self.out.write("\r\x1b[2K" + self.render()[: max(width - 1, 20)])
                self.out.flush()

    def _loop(self) -> None:
        while not self.stopped.wait(self.interval):
            self._draw()

    def start(self, step: str, symbol: str) -> None:
        if not self.enabled:
            return
        with self.lock:
            self.step, self.epoch = (step, symbol, time.time()), None
        if self.thread is None:
            self.thread = threading.Thread(target=self._loop, name="mkrich-progress", daemon=True)
            self.thread.start()
        self._draw()

    def watch(self, line: str) -> None:
        if self.enabled and self.step is not None and (epoch := parse_epoch(line)):
            self.epoch = epoch

    def print(self, line: str, report) -> None:
        """``report(line)`` with the status line cleared first (and the step over)."""
        with self.lock:
            if self.enabled and self.step is not None:
                self.out.write("\r\x1b[2K")
            self.step = self.epoch = None
            report(line)

    def close(self) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()
        self.print("", lambda line: None)


def _step_symbol(kwargs: dict, outputs, symbols: list[str]) -> tuple[str, str]:
    step = kwargs.get("component_name", "?").removeprefix("comp-")
    index = _iteration(kwargs.get("arguments", {}), outputs)
    return step, symbols[index] if index is not None and index < len(symbols) else ",".join(symbols)


@contextlib.contextmanager
def _report_steps(symbols: list[str], report, tee: _LogTee, live: _LiveStatus,
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
    status = _LiveStatus(terminal, enabled=bool(live))
    steps: list[dict[str, Any]] = []
    with log_path.open("w") as log:
        tee = _LogTee(log, echo=terminal if verbose else None, watch=status.watch)
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
    for symbol in symbols:
        versions = store.versions(symbol)
        results[symbol] = {
            "newest": versions[-1] if versions else None,
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


# ------------------------------------------------------------------------------- cluster
def _projected_token() -> str | None:
    """In a cluster pod: the ServiceAccount token projected for the KFP API (audience
    pipelines.kubeflow.org), where kfp.Client also looks for it."""
    import os

    path = Path(os.environ.get("KF_PIPELINES_SA_TOKEN_PATH", "/var/run/secrets/kubeflow/pipelines/token"))
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _preflight(host: str, token: str | None, timeout: float = 10.0) -> None:
    """One quick GET of the API's healthz, so that a wrong host or token fails at once with a
    clear message (kfp.Client itself retries healthz 5 times, then reports only that)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{host.rstrip('/')}/apis/v2beta1/healthz")
    token = token or _projected_token()
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        urllib.request.urlopen(request, timeout=timeout).close()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise ClusterError(
                f"Kubeflow Pipelines at {host}: not authorized (HTTP {exc.code}); pass --token "
                "(or $KFP_TOKEN) and check the namespace"
            ) from None
        raise ClusterError(f"Kubeflow Pipelines at {host} answered HTTP {exc.code} on healthz; is --host the KFP API (e.g. http://HOST/pipeline)?") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, ValueError) as exc:
        raise ClusterError(f"cannot reach Kubeflow Pipelines at {host}: {getattr(exc, 'reason', exc)}") from None


def client(host: str, *, namespace: str = "kubeflow", token: str | None = None,
           verify_ssl: bool | None = None, ssl_ca_cert: str | None = None):
    import kfp

    # kfp.Client reads the projected token only when it finds the host itself
    token = token or _projected_token()
    if verify_ssl is not False and not ssl_ca_cert:
        _preflight(host, token)
    try:
        c = kfp.Client(host=host, namespace=namespace, existing_token=token,
                       verify_ssl=verify_ssl, ssl_ca_cert=ssl_ca_cert)
    except Exception as exc:
        raise ClusterError(f"cannot connect to Kubeflow Pipelines at {host}: {exc}") from exc
    return c


def _call(what: str, host: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except MakeUsRichError:
        raise
    except Exception as exc:
        status = getattr(exc, "status", None)
        if status in (401, 403):
            raise ClusterError(
                f"{what} at {host}: not authorized (HTTP {status}); pass --token (or set "
                "KF_PIPELINES_SA_TOKEN_PATH) and check the namespace"
            ) from None
        reason = getattr(exc, "reason", None) or str(exc).splitlines()[0]
        raise ClusterError(f"{what} at {host} failed: {reason}") from None


def _experiment_id(c, host: str, name: str, namespace: str) -> str:
    experiment = _call("creating the experiment", host, c.create_experiment, name, namespace=namespace)
    return experiment.experiment_id


def _package(tmp: Path) -> str:
    from kfp import compiler

    path = tmp / f"{PIPELINE_NAME}.yaml"
    compiler.Compiler().compile(hourly_training, str(path))
    return str(path)


def submit(host: str, params: dict[str, Any], *, namespace: str = "kubeflow",
           experiment: str = DEFAULT_EXPERIMENT, token: str | None = None, **kw) -> str:
    """One run of the pipeline on the cluster; returns the run id."""
    import tempfile

    c = client(host, namespace=namespace, token=token, **kw)
    with tempfile.TemporaryDirectory() as tmp:
        run = _call("creating the run", host, c.create_run_from_pipeline_package,
                    _package(Path(tmp)), arguments=params, experiment_name=experiment,
                    namespace=namespace, enable_caching=False)
    return run.run_id


def schedule(host: str, params: dict[str, Any], *, namespace: str = "kubeflow",
             experiment: str = DEFAULT_EXPERIMENT, name: str = RECURRING_RUN_NAME,
             cron: str = HOURLY_CRON, token: str | None = None, **kw) -> dict[str, Any]:
    """Create or update (by name: the old one is replaced) the hourly recurring run:
    6-field cron, max_concurrency 1, no catch-up, caching off."""
    import tempfile

    if len(cron.split()) != 6:
        raise ConfigError(
            f"KFP cron needs 6 fields (seconds first), got {cron!r}; hourly is '{HOURLY_CRON}'"
        )
    c = client(host, namespace=namespace, token=token, **kw)
    experiment_id = _experiment_id(c, host, experiment, namespace)
    replaced = [r.recurring_run_id for r in _find_recurring(c, host, name, experiment_id)]
    with tempfile.TemporaryDirectory() as tmp:
        created = _call(
            "creating the recurring run", host, c.create_recurring_run,
            experiment_id=experiment_id, job_name=name, description="make-us-rich hourly retrain",
            cron_expression=cron, max_concurrency=1, no_catchup=True, params=params,
            pipeline_package_path=_package(Path(tmp)), enabled=True, enable_caching=False,
        )
    for rid in replaced:  # only after the new one exists: never a moment without a schedule
        try:
            _call("deleting the previous recurring run", host, c.delete_recurring_run, rid)
        except ClusterError as exc:
            raise ClusterError(
                f"created recurring run {created.recurring_run_id}, but the previous one {rid} "
                f"could not be deleted ({exc}); both are active now - run `mkrich schedule` "
                "again or delete it in the KFP UI"
            ) from None
    return {"recurring_run_id": created.recurring_run_id, "replaced": replaced, "cron": cron}


def unschedule(host: str, *, namespace: str = "kubeflow", experiment: str = DEFAULT_EXPERIMENT,
               name: str = RECURRING_RUN_NAME, token: str | None = None, **kw) -> list[str]:
    c = client(host, namespace=namespace, token=token, **kw)
    try:  # look up, never create, the experiment
        found = c.get_experiment(experiment_name=experiment, namespace=namespace)
    except ValueError:
        return []
    except Exception as exc:
        raise ClusterError(f"looking up the experiment at {host} failed: {exc}") from None
    removed = [r.recurring_run_id for r in _find_recurring(c, host, name, found.experiment_id)]
    for rid in removed:
        _call("deleting the recurring run", host, c.delete_recurring_run, rid)
    return removed


def _find_recurring(c, host: str, name: str, experiment_id: str) -> list:
    found, token = [], ""
    while True:
        page = _call("listing recurring runs", host, c.list_recurring_runs,
                     experiment_id=experiment_id, page_size=100, page_token=token)
        found += [r for r in (page.recurring_runs or []) if r.display_name == name]
        token = page.next_page_token
        if not token:
            return found


