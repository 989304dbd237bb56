"""Run the pipeline on a Kubeflow cluster through the KFP API: one run (``mkrich submit``) or
the hourly recurring run (``mkrich schedule``/``unschedule``), with errors that say what to fix
(a quick healthz first, 401/403 named, one line)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from make_us_rich.errors import ConfigError, MakeUsRichError
from make_us_rich.pipelines.catalog import DEFAULT_PIPELINE, package, pipeline_named
from make_us_rich.pipelines.hourly_training import HOURLY_CRON, PIPELINE_NAME

RECURRING_RUN_NAME = f"{PIPELINE_NAME}-hourly"
DEFAULT_EXPERIMENT = "make-us-rich"


class ClusterError(MakeUsRichError, RuntimeError):
    """The Kubeflow Pipelines API could not be reached or refused the request."""


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
    from make_us_rich.http import HTTPCallError, call

    token = token or _projected_token()
    try:
        call(f"{host.rstrip('/')}/apis/v2beta1/healthz", token=token, timeout=timeout, parse=False)
    except HTTPCallError as exc:
        if exc.status in (401, 403):
            raise ClusterError(
                f"Kubeflow Pipelines at {host}: not authorized (HTTP {exc.status}); pass --token "
                "(or $KFP_TOKEN) and check the namespace"
            ) from None
        if exc.status:
            raise ClusterError(f"Kubeflow Pipelines at {host} answered HTTP {exc.status} on healthz; is --host "
                               "the KFP API (e.g. http://HOST/pipeline)?") from None
        raise ClusterError(f"cannot reach Kubeflow Pipelines at {host}: {exc.detail}") from None


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


def submit(host: str, params: dict[str, Any], *, namespace: str = "kubeflow",
           experiment: str = DEFAULT_EXPERIMENT, token: str | None = None,
           pipeline: str = DEFAULT_PIPELINE, **kw) -> str:
    """One run of the pipeline ``pipeline`` (hourly-training or universal-training) on the
    cluster; returns the run id."""
    import tempfile

    pipeline_named(pipeline)  # an unknown name fails before any call to the cluster

    c = client(host, namespace=namespace, token=token, **kw)
    with tempfile.TemporaryDirectory() as tmp:
        run = _call("creating the run", host, c.create_run_from_pipeline_package,
                    str(package(pipeline, tmp)), arguments=params, experiment_name=experiment,
                    namespace=namespace, enable_caching=False)
    return run.run_id


def schedule(host: str, params: dict[str, Any], *, namespace: str = "kubeflow",
             experiment: str = DEFAULT_EXPERIMENT, name: str = RECURRING_RUN_NAME,
             cron: str = HOURLY_CRON, token: str | None = None, pipeline: str = DEFAULT_PIPELINE,
             **kw) -> dict[str, Any]:
    """Create or update (by name: the old one is replaced) the hourly recurring run of
    ``pipeline``: 6-field cron, max_concurrency 1, no catch-up, caching off. The name does not
    depend on the pipeline: switching it replaces the hourly retrain, never adds a second one."""
    import tempfile

    pipeline_named(pipeline)  # an unknown name fails before any call to the cluster
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
            pipeline_package_path=str(package(pipeline, tmp)), enabled=True, enable_caching=False,
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
