"""``mkrich run``, ``compile``, ``submit``, ``schedule``, ``unschedule``: the Kubeflow pipelines,
on this machine (kfp.local) or on a cluster."""

from __future__ import annotations

import argparse
import os

from make_us_rich.cli.common import (
    DEFAULT_SOURCE,
    _add_cluster_options,
    _add_store_option,
    _default,
)
from make_us_rich.cli.printing import _print_summary, _scores_line
from make_us_rich.errors import ConfigError


def _add_pipeline_options(p: argparse.ArgumentParser, *, cluster: bool) -> None:
    from make_us_rich.params import PIPELINE_PARAMS, UNIVERSAL_PARAMS, add_arguments

    p.add_argument("--symbols", default="BTCEUR", help="comma-separated symbols, trained in parallel")
    if not cluster:
        p.add_argument("--universal", action="store_true",
                       help="run universal-training: ONE model on the pooled data of every symbol, then "
                       "evaluate, gate and publish it for each (issue 21)")
        add_arguments(p.add_argument_group("universal-training (only with --universal)"), UNIVERSAL_PARAMS)
    else:
        from make_us_rich.params import DEFAULT_PIPELINE, PIPELINE_NAMES

        p.add_argument("--pipeline", choices=list(PIPELINE_NAMES), default=DEFAULT_PIPELINE,
                       help="hourly-training: one model per symbol; universal-training: ONE model on the "
                       f"pooled data of every symbol (issue 21) (default {DEFAULT_PIPELINE})")
        add_arguments(p.add_argument_group("universal-training (only with --pipeline universal-training)"),
                      UNIVERSAL_PARAMS)
    p.add_argument("--source", default=None if cluster else DEFAULT_SOURCE,
                   help="binance, sample or csv:PATH" + (" (default binance)" if cluster else " (default sample: offline)"))
    add_arguments(p, PIPELINE_PARAMS)
    if cluster:
        p.add_argument("--store", help="store URI as seen from the cluster (default s3://mlpipeline/make-us-rich)")
        p.add_argument("--s3-endpoint", help="S3 endpoint for publishing, e.g. http://minio-service.kubeflow:9000")
        p.add_argument("--s3-region", help="S3 region for publishing (default us-east-1)")
        p.add_argument("--rollout-isvc", help="InferenceService to roll after an accepted model "
                       "(the Triton one, e.g. mkrich-onnx); Triton only loads models at pod start")
        p.add_argument("--dashboard-url", help="the Kubeflow Pipelines UI, for the run summary's link to the "
                       "run, e.g. https://kubeflow.example.com/_/pipeline (or the Secret mkrich-notify's "
                       "key dashboard_url)")
        _add_cluster_options(p)
    else:
        _add_store_option(p)
        p.add_argument("--pipeline-root", default="runs/pipeline", help="where kfp.local keeps artifacts")
        p.add_argument("--notify-url", default=os.environ.get("MKRICH_NOTIFY_URL"),
                       help="webhook the pipeline's exit task posts the run summary to "
                       "(default $MKRICH_NOTIFY_URL; none: print only)")
        p.add_argument("--notify-format", choices=("slack", "json"), default="slack",
                       help="slack: incoming-webhook {\"text\": ...}; json: the summary itself (default slack)")


def _pipeline_params(args: argparse.Namespace) -> dict:
    from make_us_rich.params import PIPELINE_PARAMS, given

    params = {"symbols": [x.strip() for x in args.symbols.split(",") if x.strip()]}
    if args.source is not None:
        params["source"] = args.source
    params.update(given(args, PIPELINE_PARAMS, pipeline=True))
    return params


def cmd_run(args: argparse.Namespace) -> int:
    from make_us_rich.contract import Manifest
    from make_us_rich.data import normalize_symbol
    from make_us_rich.pipelines.local import PipelineRunError, run_local

    params = _pipeline_params(args)
    symbols = [normalize_symbol(s) for s in params.pop("symbols")]
    source = params.pop("source")
    from make_us_rich.preflight import check_run

    left_out = check_run(symbols, source, args.store, interval=params.get("interval", _default("interval")),
                         api_url=params.get("api_url"), partial=args.universal)
    for symbol, reason in left_out.items():  # the universal run lists them in its summary too
        print(f"{symbol}: left out of this run: {reason}", flush=True)
    print(f"running pipeline {'universal-training' if args.universal else 'hourly-training'} locally (kfp.local) for {', '.join(symbols)} on {source}"
          f"{'' if args.verbose else ' (-v shows kfp.local output live)'}", flush=True)
    try:
        if args.universal:
            from make_us_rich.params import UNIVERSAL_PARAMS, given

            params.update(given(args, UNIVERSAL_PARAMS, pipeline=True))
        elif any(getattr(args, name, None) is not None for name in ("concurrency", "time_budget")):
            raise ConfigError("--concurrency and --time-budget are options of --universal")
        else:
            _next_hour_only(params, "--universal")
        result = run_local(symbols, source=source, store_uri=args.store,
                           pipeline_root=args.pipeline_root, verbose=args.verbose > 0,
                           notify_url=args.notify_url, notify_format=args.notify_format,
                           universal=args.universal, **params)
    except PipelineRunError as exc:
        _print_summary(exc.summary)  # the exit task posted it and pushed the failure
        raise
    print(f"\npipeline finished in {result['seconds']:.0f} s")
    for symbol, info in result["symbols"].items():
        newest = info["newest"]
        if newest is None:
            print(f"  {symbol:<9} no model published by this run (see the run summary below)")
            continue
        manifest = Manifest.of(newest)
        print(f"  {symbol:<9} {manifest.status:<10} {manifest.version}")
        print(f"  {'':<9} {_scores_line(manifest.scores)}")
        if newest.get("horizon_axis"):  # a model of several horizons: those its per-horizon gate let through
            print(f"  {'':<9} horizons served {','.join(map(str, newest['horizons'])) or 'none'} of "
                  f"{','.join(map(str, newest['horizon_axis']))} h")
    print(f"\nmodel store: {result['store']}")
    for symbol, info in result["symbols"].items():
        if info["artifacts"]:
            print(f"artifacts ({symbol}): {info['artifacts']}")
    print(f"kfp.local log: {result['log']}")
    print("serve them: mkrich serve --store", args.store, "--symbols", ",".join(symbols))
    _print_summary(result["summary"])
    return 0


def _cluster_kwargs(args: argparse.Namespace) -> dict:
    return {"namespace": args.namespace, "experiment": args.experiment, "token": args.token}


def _cluster_params(args: argparse.Namespace) -> dict:
    from make_us_rich.preflight import check_source

    params = _pipeline_params(args)
    check_source(params.get("source", "binance"), params["symbols"],
                 params.get("interval", _default("interval")))
    if args.store:
        params["store_uri"] = args.store
    if args.s3_endpoint:
        params["s3_endpoint"] = args.s3_endpoint
    if args.s3_region:
        params["s3_region"] = args.s3_region
    if args.rollout_isvc:
        params["rollout_isvc"] = args.rollout_isvc
    if args.dashboard_url:
        params["dashboard_url"] = args.dashboard_url
    universal = args.pipeline == "universal-training"
    params.update(_universal_params(args, universal, "--pipeline universal-training"))
    if not universal:
        _next_hour_only(params, "--pipeline universal-training")
    return params


def _next_hour_only(params: dict, how: str) -> None:
    """The per-symbol pipeline's models forecast the next hour only: other horizons are refused
    here, before a run is started or scheduled (its train step would refuse them every hour)."""
    from make_us_rich.params import BY_NAME

    raw = params.get("horizons")
    if raw is not None and set(BY_NAME["horizons"].parse(raw)) != {1}:
        raise ConfigError(f"--horizons other than 1 is an option of {how} (a model of one symbol forecasts "
                          "the next hour only)")


def _universal_params(args: argparse.Namespace, universal: bool, how: str) -> dict:
    """The universal-training flags given, refused for the per-symbol pipeline."""
    from make_us_rich.params import UNIVERSAL_PARAMS, given

    params = given(args, UNIVERSAL_PARAMS, pipeline=True)
    if params and not universal:
        flags = ", ".join("--" + name.replace("_", "-") for name in params)
        raise ConfigError(f"{flags}: options of universal-training; add {how}")
    return params


def cmd_submit(args: argparse.Namespace) -> int:
    from make_us_rich.pipelines.cluster import submit

    run_id = submit(args.host, _cluster_params(args), pipeline=args.pipeline, **_cluster_kwargs(args))
    print(f"submitted run {run_id} of {args.pipeline}")
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    from make_us_rich.pipelines.cluster import schedule

    result = schedule(args.host, _cluster_params(args), cron=args.cron, pipeline=args.pipeline,
                      **_cluster_kwargs(args))
    print(f"recurring run {result['recurring_run_id']} of {args.pipeline} ({result['cron']}, max_concurrency 1, "
          "no catch-up)")
    if result["replaced"]:
        print(f"  replaced {', '.join(result['replaced'])}")
    return 0


def cmd_unschedule(args: argparse.Namespace) -> int:
    from make_us_rich.pipelines.cluster import unschedule

    removed = unschedule(args.host, **_cluster_kwargs(args))
    print(f"removed {len(removed)} recurring run(s)" + (f": {', '.join(removed)}" if removed else ""))
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from make_us_rich.pipelines.catalog import compile_all

    for path in compile_all(args.out):
        print(f"wrote {path}")
    return 0


def add_run(sub) -> None:
    p = sub.add_parser(
        "run",
        help="run the Kubeflow pipeline on this machine (kfp.local), offline on the sample by default",
        description="Execute the hourly-training pipeline here with kfp.local: every component "
        "runs in a subprocess, artifacts go under --pipeline-root, models to --store.",
    )
    _add_pipeline_options(p, cluster=False)
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="show kfp.local's output (executor inputs, component logs) live")
    p.set_defaults(func=cmd_run)


def add_compile(sub) -> None:
    p = sub.add_parser(
        "compile", help="compile the pipelines to IR YAML and Pipeline/PipelineVersion manifests",
        description="Write, for hourly-training and universal-training, NAME.yaml (the KFP IR, to "
        "upload in the Kubeflow UI or the API) and NAME.k8s.yaml (Pipeline and PipelineVersion "
        "manifests for kubectl apply) into --out.",
    )
    p.add_argument("--out", default="pipelines/compiled", help="output folder (default pipelines/compiled)")
    p.set_defaults(func=cmd_compile)


def add_submit(sub) -> None:
    p = sub.add_parser(
        "submit", help="start one run of the pipeline on a Kubeflow cluster",
        description="Compile the pipeline and start one run of it through the Kubeflow Pipelines "
        "API at --host, in --experiment, with caching off; prints the run id. The source and "
        "symbols are checked first; on the cluster the source defaults to binance.",
    )
    _add_pipeline_options(p, cluster=True)
    p.set_defaults(func=cmd_submit)


def add_schedule(sub) -> None:
    p = sub.add_parser("schedule", help="create or update the hourly recurring run on a Kubeflow cluster")
    _add_pipeline_options(p, cluster=True)
    p.add_argument("--cron", default="0 0 * * * *",
                   help="KFP cron, 6 fields with seconds (default '0 0 * * * *': hourly)")
    p.set_defaults(func=cmd_schedule)


def add_unschedule(sub) -> None:
    p = sub.add_parser("unschedule", help="remove the hourly recurring run")
    _add_cluster_options(p)
    p.set_defaults(func=cmd_unschedule)
