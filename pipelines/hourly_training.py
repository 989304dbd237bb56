"""``hourly-training``: fetch -> features -> split -> sequences -> scale -> train -> ONNX ->
evaluate + gate -> publish, for every symbol in parallel (``dsl.ParallelFor``).

* The parameters' defaults come from :mod:`make_us_rich.params` (declared once, shared with
  the CLI); the cluster-side ones (store, S3, rollout) are declared here.
* Fetch ends its window at the run's scheduled time (``PIPELINE_JOB_SCHEDULE_TIME_UTC``; now
  for ad-hoc runs), so a scheduled run is reproducible. Fetch retries transient faults
  (rate limits, 5xx, timeouts) itself with bounded backoff; no task has a KFP retry policy, since
  KFP retries every failure alike, and an unknown symbol or a missing file fails the same way
  four times over minutes. The hourly schedule is the outer retry.
* Caching is off for every task: each run starts from fresh data.
* Training has CPU/memory requests and limits and a timeout.
* Publishing reads S3 credentials from the Secret ``s3_secret`` (optional: a local folder
  store needs none); with ``rollout_isvc`` set, an accepted model rolls that InferenceService
  (Triton loads its repository only at pod start). With the optional Secret
  ``mkrich-pushgateway`` (key ``url``), publish pushes the run's metrics to that Pushgateway.
* Everything runs inside a ``dsl.ExitHandler``: its exit task ``notify_run`` runs after the
  body, whether it succeeded or failed, and sends ONE run summary (its status from
  ``dsl.PipelineTaskFinalStatus``; each symbol's result read back from the store) to the
  webhook of the optional Secret ``mkrich-notify``.
"""


from kfp import dsl, kubernetes

from make_us_rich.components import (
    convert_to_onnx,
    evaluate_and_gate,
    evaluate_and_publish,
    extract_features,
    fetch_klines,
    fetch_market,
    make_sequences,
    notify_run,
    publish_model,
    scale_features,
    split_dataset,
    train_lstm,
    train_universal,
)
from make_us_rich.notify import DASHBOARD_ENV, FORMAT_ENV, NOTIFY_ENV
from make_us_rich.observability import PUSHGATEWAY_ENV
from make_us_rich.params import PIPELINE_DEFAULTS as D  # every training parameter declared once
from make_us_rich.params import PIPELINE_NAME, UNIVERSAL_PIPELINE_NAME
from make_us_rich.params import UNIVERSAL_DEFAULTS as U
from make_us_rich.training.config import UNIVERSAL as UNI  # the universal model's preset

#: KFP cron has 6 fields, seconds first: "0 0 * * * *" is every hour on the hour.
#: (The 5-field "0 * * * *" would mean every minute at second 0.)
HOURLY_CRON = "0 0 * * * *"
TRAIN_TIMEOUT_SECONDS = 1800
#: optional Secret whose key ``url`` turns on the Pushgateway metrics of publish
PUSHGATEWAY_SECRET = "mkrich-pushgateway"
#: optional Secret of the exit task's run summary: keys ``url`` (the webhook), ``format``
#: (slack | json) and ``dashboard_url`` (the KFP UI, for the link to the run); all optional
NOTIFY_SECRET = "mkrich-notify"
S3_SECRET_KEYS = {
    "AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
}


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Retrain the next-hour quantile forecaster of each symbol and publish it through "
    "the promotion gate (make-us-rich).",
)
def hourly_training(
    symbols: list = ["BTCEUR"],  # noqa: B006 - KFP takes the default from the signature
    source: str = "binance",
    interval: str = D["interval"],
    lookback_days: float = D["lookback_days"],
    api_url: str = D["api_url"],
    max_missing_fraction: float = D["max_missing_fraction"],
    test_size: float = D["test_size"],
    val_size: float = D["val_size"],
    sequence_length: int = D["sequence_length"],
    lstm_units: int = D["lstm_units"],
    inputs: str = D["inputs"],
    median: str = D["median"],
    calibrate: bool = D["calibrate"],
    blend_har: bool = D["blend_har"],
    learning_rate: float = D["learning_rate"],
    batch_size: int = D["batch_size"],
    max_epochs: int = D["max_epochs"],
    patience: int = D["patience"],
    seed: int = D["seed"],
    horizons: str = D["horizons"],
    gate_tolerance: float = D["gate_tolerance"],
    coverage_min: float = D["coverage_min"],
    coverage_max: float = D["coverage_max"],
    store_uri: str = "s3://mlpipeline/make-us-rich",
    s3_endpoint: str = "",
    s3_region: str = "us-east-1",
    s3_secret: str = "mkrich-s3-credentials",
    keep: int = D["keep"],
    allow_contract_change: bool = D["allow_contract_change"],
    rollout_isvc: str = "",
    dashboard_url: str = "",
):
    notify = notify_run(
        symbols=symbols, store_uri=store_uri, s3_endpoint=s3_endpoint, s3_region=s3_region,
        run_created=dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        dashboard_url=dashboard_url, pipeline=PIPELINE_NAME,
    ).set_display_name("notify run summary")
    notify.set_caching_options(False)
    kubernetes.use_secret_as_env(notify, secret_name=s3_secret, secret_key_to_env=S3_SECRET_KEYS, optional=True)
    kubernetes.use_secret_as_env(notify, secret_name=PUSHGATEWAY_SECRET,
                                 secret_key_to_env={"url": PUSHGATEWAY_ENV}, optional=True)
    kubernetes.use_secret_as_env(notify, secret_name=NOTIFY_SECRET, optional=True, secret_key_to_env={
        "url": NOTIFY_ENV, "format": FORMAT_ENV, "dashboard_url": DASHBOARD_ENV})
    with dsl.ExitHandler(notify, name="hourly-training"), dsl.ParallelFor(symbols, name="symbols") as symbol:
        fetch = fetch_klines(
            source=source, symbol=symbol, interval=interval, lookback_days=lookback_days,
            end_time=dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER, api_url=api_url,
            max_missing_fraction=max_missing_fraction,
        ).set_display_name("fetch klines")

        features = extract_features(klines=fetch.outputs["klines"]).set_display_name("extract features")
        split = split_dataset(features=features.outputs["features"], test_size=test_size).set_display_name("split 90/10")
        sequences = make_sequences(
            train=split.outputs["train"], test=split.outputs["test"],
            sequence_length=sequence_length, val_size=val_size,
        ).set_display_name("make sequences")
        scaled = scale_features(
            sequences=sequences.outputs["sequences"], inputs=inputs
        ).set_display_name("scale (-1, 1)")
        train = train_lstm(
            sequences=sequences.outputs["sequences"], scaler=scaled.outputs["scaler"],
            train=split.outputs["train"], sequence_length=sequence_length, lstm_units=lstm_units,
            inputs=inputs, median=median, calibrate=calibrate, blend_har=blend_har,
            learning_rate=learning_rate, batch_size=batch_size, max_epochs=max_epochs,
            patience=patience, seed=seed, test_size=test_size, val_size=val_size, horizons=horizons,
        ).set_display_name("train LSTM")
        train.set_cpu_request("1").set_cpu_limit("2").set_memory_request("2G").set_memory_limit("4G")
        kubernetes.set_timeout(train, TRAIN_TIMEOUT_SECONDS)

        onnx = convert_to_onnx(
            model=train.outputs["model"], sequences=sequences.outputs["sequences"]
        ).set_display_name("convert to ONNX")
        evaluation = evaluate_and_gate(
            onnx_model=onnx.outputs["onnx_model"], scaler=scaled.outputs["scaler"],
            model=train.outputs["model"], klines=fetch.outputs["klines"],
            train=split.outputs["train"], test=split.outputs["test"], symbol=symbol,
            interval=interval, source=source, gate_tolerance=gate_tolerance,
            coverage_min=coverage_min, coverage_max=coverage_max,
        ).set_display_name("evaluate + gate")
        publish = publish_model(
            artifacts=evaluation.outputs["artifacts"], symbol=symbol, store_uri=store_uri,
            keep=keep, allow_contract_change=allow_contract_change, s3_endpoint=s3_endpoint,
            s3_region=s3_region, rollout_isvc=rollout_isvc,
        ).set_display_name("publish model")
        kubernetes.use_secret_as_env(publish, secret_name=s3_secret, secret_key_to_env=S3_SECRET_KEYS, optional=True)
        kubernetes.use_secret_as_env(publish, secret_name=PUSHGATEWAY_SECRET,
                                     secret_key_to_env={"url": PUSHGATEWAY_ENV}, optional=True)

        for task in (fetch, features, split, scaled, sequences, train, onnx, evaluation, publish):
            task.set_caching_options(False)


@dsl.pipeline(
    name=UNIVERSAL_PIPELINE_NAME,
    description="Retrain ONE quantile forecaster (the next hour, and by default 4 and 24 hours) on the "
    "pooled data of every symbol, then evaluate, gate and publish it for each symbol (make-us-rich, "
    "issues 21, 22).",
)
def universal_training(
    symbols: list = ["BTCEUR"],  # noqa: B006 - KFP takes the default from the signature
    source: str = "binance",
    interval: str = D["interval"],
    lookback_days: float = D["lookback_days"],
    api_url: str = D["api_url"],
    max_missing_fraction: float = D["max_missing_fraction"],
    test_size: float = D["test_size"],
    val_size: float = UNI.val_size,
    sequence_length: int = D["sequence_length"],
    lstm_units: int = D["lstm_units"],
    inputs: str = D["inputs"],
    median: str = D["median"],
    calibrate: bool = D["calibrate"],
    blend_har: bool = D["blend_har"],
    learning_rate: float = D["learning_rate"],
    batch_size: int = UNI.batch_size,
    max_epochs: int = UNI.max_epochs,
    patience: int = UNI.patience,
    seed: int = D["seed"],
    horizons: str = ",".join(str(h) for h in UNI.horizons),
    gate_tolerance: float = D["gate_tolerance"],
    coverage_min: float = D["coverage_min"],
    coverage_max: float = D["coverage_max"],
    concurrency: int = U["concurrency"],
    eval_batch: int = U["eval_batch"],
    time_budget: float = U["time_budget"],
    warm_start: bool = U["warm_start"],
    store_uri: str = "s3://mlpipeline/make-us-rich",
    s3_endpoint: str = "",
    s3_region: str = "us-east-1",
    s3_secret: str = "mkrich-s3-credentials",
    keep: int = D["keep"],
    rollout_isvc: str = "",
    dashboard_url: str = "",
):
    """fetch every symbol (bounded concurrency) -> ONE training task on the pooled windows (a
    quantile output per horizon of ``horizons``) -> in parallel batches of ``eval_batch``
    symbols: each evaluated against its own baselines (each horizon against its own; a horizon
    that fails is not served, the model is refused only when its 1-hour horizon fails),
    gated and published (a symbol that fails the gate is stored as rejected and keeps its
    previous model; one whose data could not be loaded is named in the log and skipped). The same stage functions as
    ``mkrich train --symbols`` (:func:`make_us_rich.stages.run_universal`)."""
    notify = notify_run(
        symbols=symbols, store_uri=store_uri, s3_endpoint=s3_endpoint, s3_region=s3_region,
        run_created=dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        dashboard_url=dashboard_url, pipeline=UNIVERSAL_PIPELINE_NAME,
    ).set_display_name("notify run summary")
    notify.set_caching_options(False)
    kubernetes.use_secret_as_env(notify, secret_name=s3_secret, secret_key_to_env=S3_SECRET_KEYS, optional=True)
    kubernetes.use_secret_as_env(notify, secret_name=PUSHGATEWAY_SECRET,
                                 secret_key_to_env={"url": PUSHGATEWAY_ENV}, optional=True)
    kubernetes.use_secret_as_env(notify, secret_name=NOTIFY_SECRET, optional=True, secret_key_to_env={
        "url": NOTIFY_ENV, "format": FORMAT_ENV, "dashboard_url": DASHBOARD_ENV})
    with dsl.ExitHandler(notify, name="universal-training"):
        market = fetch_market(
            source=source, symbols=symbols, interval=interval, lookback_days=lookback_days,
            end_time=dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER, api_url=api_url,
            max_missing_fraction=max_missing_fraction, test_size=test_size, concurrency=concurrency,
            eval_batch=eval_batch,
        ).set_display_name("fetch klines + features")
        market.set_retry(num_retries=3, backoff_duration="30s", backoff_factor=2.0)
        train = train_universal(
            market=market.outputs["market"], sequence_length=sequence_length, lstm_units=lstm_units,
            inputs=inputs, median=median, calibrate=calibrate, blend_har=blend_har,
            learning_rate=learning_rate, batch_size=batch_size, max_epochs=max_epochs,
            patience=patience, seed=seed, test_size=test_size, val_size=val_size, horizons=horizons,
            time_budget=time_budget,
            warm_start=warm_start, store_uri=store_uri, s3_endpoint=s3_endpoint, s3_region=s3_region,
        ).set_display_name("train universal model")
        kubernetes.use_secret_as_env(train, secret_name=s3_secret, secret_key_to_env=S3_SECRET_KEYS, optional=True)
        train.set_cpu_request("1").set_cpu_limit("2").set_memory_request("2G").set_memory_limit("8G")
        kubernetes.set_timeout(train, TRAIN_TIMEOUT_SECONDS)
        with dsl.ParallelFor(market.outputs["Output"], name="symbol-batches") as batch:
            evaluation = evaluate_and_publish(
                model=train.outputs["model"], market=market.outputs["market"], symbols=batch,
                interval=interval, gate_tolerance=gate_tolerance, coverage_min=coverage_min,
                coverage_max=coverage_max, store_uri=store_uri, keep=keep, s3_endpoint=s3_endpoint,
                s3_region=s3_region, rollout_isvc=rollout_isvc,
            ).set_display_name("evaluate + gate + publish")
            kubernetes.use_secret_as_env(evaluation, secret_name=s3_secret, secret_key_to_env=S3_SECRET_KEYS,
                                         optional=True)
            kubernetes.use_secret_as_env(evaluation, secret_name=PUSHGATEWAY_SECRET,
                                         secret_key_to_env={"url": PUSHGATEWAY_ENV}, optional=True)
        tasks = [market, train, evaluation]
        for task in tasks:
            task.set_caching_options(False)
