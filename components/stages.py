"""The components. Bodies are glue: artifact paths in, one :mod:`make_us_rich.stages` call,
metadata out. Imports sit inside the bodies because KFP ships each function's source alone.

Images: data-role steps run in the ``data`` image (no TensorFlow); training, ONNX conversion
and evaluation in the ``trainer`` image. Both images contain make-us-rich and kfp, so KFP does
not pip-install anything at run time (``install_kfp_package=False``).
"""


from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

from make_us_rich.images import image

DATA_IMAGE = image("data")
TRAINER_IMAGE = image("trainer")


@dsl.component(base_image=DATA_IMAGE, install_kfp_package=False)
def fetch_klines(
    source: str,
    symbol: str,
    interval: str,
    lookback_days: float,
    end_time: str,
    api_url: str,
    max_missing_fraction: float,
    klines: Output[Dataset],
):
    """Fetch klines ending at the run's scheduled time (now for ad-hoc runs)."""
    from make_us_rich.stages import fetch_stage

    report = fetch_stage(
        source, symbol, klines.path, interval=interval, lookback_days=lookback_days,
        end=end_time, max_missing_fraction=max_missing_fraction, api_url=api_url,
    )
    klines.metadata.update({k: report[k] for k in ("rows_out", "start", "end", "missing_candles", "gaps")})
    klines.metadata["symbol"] = symbol


@dsl.component(base_image=DATA_IMAGE, install_kfp_package=False)
def extract_features(klines: Input[Dataset], features: Output[Dataset]):
    from make_us_rich.stages import features_stage

    features.metadata.update(features_stage(klines.path, features.path))


@dsl.component(base_image=DATA_IMAGE, install_kfp_package=False)
def split_dataset(features: Input[Dataset], test_size: float, train: Output[Dataset], test: Output[Dataset]):
    from make_us_rich.stages import split_stage

    info = split_stage(features.path, train.path, test.path, test_size)
    train.metadata.update({"rows": info["train_rows"], "period": info["train_period"]})
    test.metadata.update({"rows": info["test_rows"], "period": info["test_period"]})


@dsl.component(base_image=DATA_IMAGE, install_kfp_package=False)
def make_sequences(
    train: Input[Dataset],
    test: Input[Dataset],
    sequence_length: int,
    val_size: float,
    sequences: Output[Dataset],
):
    from make_us_rich.stages import sequences_stage

    sequences.metadata.update(
        sequences_stage(train.path, test.path, sequences.path, sequence_length, val_size)
    )


@dsl.component(base_image=DATA_IMAGE, install_kfp_package=False)
def scale_features(sequences: Input[Dataset], inputs: str, scaler: Output[Model]):
    """MinMax(-1, 1) fit on the train windows' stationary inputs (``inputs`` comma-separated)."""
    from make_us_rich.params import BY_NAME
    from make_us_rich.stages import scale_stage

    scaler.metadata.update(scale_stage(sequences.path, scaler.path, BY_NAME["inputs"].parse(inputs)))


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def train_lstm(
    sequences: Input[Dataset],
    scaler: Input[Model],
    train: Input[Dataset],
    sequence_length: int,
    lstm_units: int,
    inputs: str,
    median: str,
    calibrate: bool,
    blend_har: bool,
    learning_rate: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    seed: int,
    test_size: float,
    val_size: float,
    horizons: str,
    model: Output[Model],
):
    """Train the quantile LSTM: one input per TrainConfig field (``inputs`` comma-separated);
    tests/pipeline/test_params.py checks that none is missing. A model of one symbol forecasts
    the next hour only (``horizons`` "1"; others fail with the reason)."""
    from make_us_rich.params import train_config
    from make_us_rich.stages import train_stage

    config = train_config(
        sequence_length=sequence_length, lstm_units=lstm_units, inputs=inputs, median=median,
        calibrate=calibrate, blend_har=blend_har, learning_rate=learning_rate,
        batch_size=batch_size, max_epochs=max_epochs, patience=patience, seed=seed,
        test_size=test_size, val_size=val_size, horizons=horizons,
    )
    summary = train_stage(sequences.path, scaler.path, config, model.path, train_csv=train.path,
                          progress="lines")
    model.metadata.update({k: summary[k] for k in ("epochs_run", "best_epoch", "seconds", "best_val_loss")})
    model.metadata["framework"] = "keras"


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def convert_to_onnx(model: Input[Model], sequences: Input[Dataset], onnx_model: Output[Model]):
    from make_us_rich.stages import convert_stage

    parity = convert_stage(model.path, sequences.path, onnx_model.path)
    onnx_model.metadata.update({"framework": "onnx", "parity_max_rel_error": parity["max_rel_error"]})


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def evaluate_and_gate(
    onnx_model: Input[Model],
    scaler: Input[Model],
    model: Input[Model],
    klines: Input[Dataset],
    train: Input[Dataset],
    test: Input[Dataset],
    symbol: str,
    interval: str,
    source: str,
    gate_tolerance: float,
    coverage_min: float,
    coverage_max: float,
    artifacts: Output[Model],
    metrics: Output[Metrics],
    report: Output[HTML],
    summary: Output[Markdown],
) -> bool:
    """Evaluate beside the baselines, gate, and assemble the publishable artifact folder."""
    from make_us_rich.stages import evaluate_stage
    from make_us_rich.training.report import log_kfp_metrics, write_report

    result = evaluate_stage(
        onnx_model.path, scaler.path, model.path, klines.path, train.path, test.path,
        artifacts.path, symbol=symbol, source=source, interval=interval,
        gate_tolerance=gate_tolerance, coverage_min=coverage_min, coverage_max=coverage_max,
    )
    log_kfp_metrics(result, metrics)
    write_report(artifacts.path, report.path, summary.path)
    artifacts.metadata.update({"symbol": symbol, "gate_passed": result["gate"]["passed"]})
    return bool(result["gate"]["passed"])


@dsl.component(base_image=DATA_IMAGE, install_kfp_package=False)
def publish_model(
    artifacts: Input[Model],
    symbol: str,
    store_uri: str,
    keep: int,
    allow_contract_change: bool,
    s3_endpoint: str,
    s3_region: str,
    rollout_isvc: str,
) -> str:
    """Publish through the gate (a rejected model is stored as rejected, latest unchanged).
    S3 credentials come from the environment (a Kubernetes Secret on a cluster). When
    ``rollout_isvc`` names an InferenceService (the Triton one), an accepted model rolls it."""
    import os

    from make_us_rich.stages import publish_stage

    if s3_endpoint:
        os.environ["AWS_ENDPOINT_URL"] = s3_endpoint
    if s3_region:
        os.environ["AWS_DEFAULT_REGION"] = s3_region

    result = publish_stage(artifacts.path, symbol, store_uri, keep, allow_contract_change)
    print(f"{symbol} {result['version']}: {result['status']} ({'; '.join(result['reasons'])})")
    if rollout_isvc and result["latest"]:
        from make_us_rich.rollout import rollout_inference_service

        namespace = rollout_inference_service(rollout_isvc, result["version"])
        print(f"rolled InferenceService {namespace}/{rollout_isvc} to {result['version']}")
    return f"{result['status']}:{result['version']}"


@dsl.component(base_image=DATA_IMAGE, install_kfp_package=False)
def notify_run(
    status: dsl.PipelineTaskFinalStatus,
    symbols: list,
    store_uri: str,
    s3_endpoint: str,
    s3_region: str,
    run_created: str,
    run_id: str,
    dashboard_url: str,
    pipeline: str = "",
) -> str:
    """The exit task: one run summary, read back from the store, to the webhook of the Secret
    ``mkrich-notify`` (none: logged only). A webhook that fails never fails the run. A failed
    run also pushes its failure time to the Pushgateway when one is configured."""
    import json
    import os

    from make_us_rich.notify import notify_pipeline_run, text
    from make_us_rich.observability import push_failure

    if s3_endpoint:
        os.environ["AWS_ENDPOINT_URL"] = s3_endpoint
    if s3_region:
        os.environ["AWS_DEFAULT_REGION"] = s3_region

    failed = status.state != "SUCCEEDED"
    summary, outcome = notify_pipeline_run(
        status.state, symbols, store_uri, since=run_created, run_id=run_id,
        dashboard_url=dashboard_url, error=(status.error_message or None) if failed else None,
        pipeline=pipeline or None,
    )
    print(f"run summary\n{text(summary)}\n{outcome}")
    if failed:
        push_failure(symbols)
    return json.dumps({**summary, "delivery": outcome})


# ----------------------------------------------------------------------------- universal model
@dsl.component(base_image=DATA_IMAGE, install_kfp_package=False)
def fetch_market(
    source: str,
    symbols: list,
    interval: str,
    lookback_days: float,
    end_time: str,
    api_url: str,
    max_missing_fraction: float,
    test_size: float,
    concurrency: int,
    eval_batch: int,
    market: Output[Dataset],
) -> list:
    """Klines and features of every symbol, ``concurrency`` at a time; a symbol that cannot be
    loaded is named in ``market.json`` and the run goes on without it. Returns the symbols in
    batches of ``eval_batch``, one evaluation task each."""
    from make_us_rich.stages import fetch_many_stage, symbol_batches

    index = fetch_many_stage(
        source, list(symbols), market.path, test_size=test_size, concurrency=concurrency, interval=interval,
        lookback_days=lookback_days, end=end_time, max_missing_fraction=max_missing_fraction, api_url=api_url,
    )
    market.metadata.update({"symbols": sorted(index["symbols"]), "failed": index["failed"]})
    for sym, reason in index["failed"].items():
        print(f"{sym}: left out of this run: {reason}")
    return symbol_batches(list(symbols), eval_batch)


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def train_universal(
    market: Input[Dataset],
    sequence_length: int,
    lstm_units: int,
    inputs: str,
    median: str,
    calibrate: bool,
    blend_har: bool,
    learning_rate: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    seed: int,
    test_size: float,
    val_size: float,
    horizons: str,
    time_budget: float,
    warm_start: bool,
    store_uri: str,
    s3_endpoint: str,
    s3_region: str,
    model: Output[Model],
    metrics: Output[Metrics],
):
    """ONE quantile model on the pooled windows of every symbol of the run (ONNX included), a
    quantile output per horizon of ``horizons`` ("1,4,24"); with ``warm_start``, from the last
    accepted universal model in the store when it has the same shape and horizons."""
    import os

    from make_us_rich.params import train_config
    from make_us_rich.stages import market_train_stage

    if s3_endpoint:
        os.environ["AWS_ENDPOINT_URL"] = s3_endpoint
    if s3_region:
        os.environ["AWS_DEFAULT_REGION"] = s3_region

    config = train_config(
        sequence_length=sequence_length, lstm_units=lstm_units, inputs=inputs, median=median,
        calibrate=calibrate, blend_har=blend_har, learning_rate=learning_rate,
        batch_size=batch_size, max_epochs=max_epochs, patience=patience, seed=seed,
        test_size=test_size, val_size=val_size, horizons=horizons,
    )
    summary = market_train_stage(market.path, config, model.path, time_budget=time_budget or None,
                                 warm_store=store_uri if warm_start else None, progress="lines")
    print(f"warm start from {summary['warm_start_from']}" if summary.get("warm_start_from")
          else f"trained in full ({summary.get('warm_start_note', 'warm_start off')})")
    model.metadata.update({k: summary[k] for k in ("epochs_run", "best_epoch", "seconds", "best_val_loss")})
    model.metadata.update({"framework": "onnx+keras", "symbols": summary["symbols"], "inputs": summary["inputs"]})
    for key in ("train_windows", "val_windows", "epochs_run", "best_val_loss", "seconds"):
        metrics.log_metric(key, float(summary[key]))


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def evaluate_and_publish(
    model: Input[Model],
    market: Input[Dataset],
    symbols: list,
    interval: str,
    gate_tolerance: float,
    coverage_min: float,
    coverage_max: float,
    store_uri: str,
    keep: int,
    s3_endpoint: str,
    s3_region: str,
    rollout_isvc: str,
    artifacts: Output[Model],
    metrics: Output[Metrics],
    report: Output[HTML],
    summary: Output[Markdown],
) -> str:
    """A batch of symbols: each against its own baselines on its own test period, gated on its
    own and published (a rejected one keeps its previous model; one without data is named and
    skipped). The HTML/Markdown hold the batch's per-symbol table."""
    import json
    import os

    from make_us_rich.stages import evaluate_publish_stage
    from make_us_rich.training.report import symbols_html, symbols_markdown

    if s3_endpoint:
        os.environ["AWS_ENDPOINT_URL"] = s3_endpoint
    if s3_region:
        os.environ["AWS_DEFAULT_REGION"] = s3_region
    rows = evaluate_publish_stage(model.path, market.path, list(symbols), artifacts.path, store_uri=store_uri,
                                  keep=keep, interval=interval, gate_tolerance=gate_tolerance,
                                  coverage_min=coverage_min, coverage_max=coverage_max)
    for sym, row in rows.items():
        if "error" in row:
            print(f"{sym}: {row['error']}")
            continue
        print(f"{sym} {row['published']['version']}: {row['published']['status']} ({'; '.join(row['reasons'])})")
        if "served_horizons" in row:
            print(f"{sym}: horizons served {row['served_horizons'] or 'none'} (each gated on its own)")
            metrics.log_metric(f"{sym}.longest_horizon_served", float(max(row["served_horizons"] or [0])))
        for key in ("pinball_vs_empirical", "pinball_vs_har", "coverage_90", "median_rmse_vs_persistence"):
            if row.get(key) is not None:
                metrics.log_metric(f"{sym}.{key}", float(row[key]))
    with open(report.path, "w") as fh:
        fh.write(symbols_html(rows))
    with open(summary.path, "w") as fh:
        fh.write(symbols_markdown(rows))
    if rollout_isvc and any((r.get("published") or {}).get("latest") for r in rows.values()):
        from make_us_rich.rollout import rollout_inference_service

        newest = max(r["published"]["version"] for r in rows.values() if (r.get("published") or {}).get("latest"))
        namespace = rollout_inference_service(rollout_isvc, newest)
        print(f"rolled InferenceService {namespace}/{rollout_isvc} to {newest}")
    return json.dumps({s: (r.get("published") or {}).get("status", "error") for s, r in rows.items()})
