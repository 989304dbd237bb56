"""The loop, once: every stage as a file-in/file-out function, and :func:`run_stages`, the
chain of them that ``mkrich train`` runs in one process. The Kubeflow components call the very
same functions, one per container, so both ways produce the same artifacts.

Every function reads its inputs from paths, calls the library's pure functions and writes its
outputs to paths, so a stage can run in its own container with typed artifacts between stages
and no hidden shared files. Data and preprocessing stages never import TensorFlow;
``train_stage`` and ``convert_stage`` need the ``train`` extra.

File formats: the fetch output is a folder (``klines.csv`` in the Binance dump format and the
validation ``report.json``); feature tables are CSV indexed by open time (floats written with
17 significant digits, so they round-trip exactly); windows are ``.npz``.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from make_us_rich.data import DataReport, load_klines, read_klines_csv, write_klines_csv
from make_us_rich.errors import ConfigError, InsufficientHistoryError
from make_us_rich.io import atomic_path, read_json, sha256, write_json
from make_us_rich.params import DataSpec, GateSpec, RunSpec, StoreSpec, UniversalSpec
from make_us_rich.preprocessing import (
    build_features,
    load_scaler,
    save_scaler,
    split_data,
)
from make_us_rich.preprocessing.split import DEFAULT_TEST_SIZE, holdout_size
from make_us_rich.preprocessing.windows import (
    fit_input_scaler,
    make_quantile_windows,
    resolve_inputs,
)
from make_us_rich.training.config import TrainConfig

KLINES_FILE = "klines.csv"
REPORT_FILE = "report.json"
#: the declared defaults (:mod:`make_us_rich.params`) of the stages' keyword arguments
_DATA, _GATE, _STORE, _UNIVERSAL = DataSpec(), GateSpec(), StoreSpec(), UniversalSpec()

log = logging.getLogger(__name__)


def resolve_end(end: str | None) -> str | None:
    """A run's end of window: the scheduled time of a recurring run, or ``None`` (= now / the
    file's last candle) for ad-hoc runs, where KFP may pass the placeholder through unresolved
    or empty."""
    if end is None:
        return None
    text = str(end).strip()
    if not text or text.startswith("{{") or text.lower() in ("none", "null", "now"):
        return None
    return text


def _write_table(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, float_format="%.17g", index_label="timestamp")


def read_table(path: str | Path) -> pd.DataFrame:
    """A feature table written by a stage (index: UTC open times)."""
    frame = pd.read_csv(path, index_col="timestamp")
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.index, utc=True), name="timestamp")
    return frame


def _span(frame: pd.DataFrame) -> list[str]:
    return [frame.index[0].isoformat(), frame.index[-1].isoformat()]


# ----------------------------------------------------------------------------- stages
def write_fetched(klines: pd.DataFrame, report: DataReport, out_dir: str | Path) -> dict[str, Any]:
    """The fetch stage's output folder from klines already loaded (and their report)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_klines_csv(klines, out / KLINES_FILE)
    write_json(out / REPORT_FILE, report.to_dict())
    return report.to_dict()


def fetch_stage(
    source: str,
    symbol: str,
    out_dir: str | Path,
    *,
    interval: str = _DATA.interval,
    lookback_days: float | None = _DATA.lookback_days,
    start: str | None = None,
    end: str | None = None,
    max_missing_fraction: float = _DATA.max_missing_fraction,
    api_url: str | None = None,
    progress: bool = False,
    client: object | None = None,
) -> dict[str, Any]:
    """Stage 1: klines from ``source`` -> validated ``klines.csv`` + ``report.json`` in
    ``out_dir``. Returns the data report.

    ``lookback_days`` <= 0 or ``None`` means the whole file for replay sources (or everything
    from ``start``). A replay source replays history: its last candle is "now", so an end time
    after it (a run's scheduled time) is taken as that last candle."""
    days = lookback_days if lookback_days and lookback_days > 0 and start is None else None
    klines, report = load_klines(
        source, symbol, interval=interval, days=days, start=start, end=resolve_end(end),
        max_missing_fraction=max_missing_fraction, client=client, api_url=api_url or None,
        clamp_end=True, progress=progress,
    )
    return write_fetched(klines, report, out_dir)


def features_stage(klines_dir: str | Path, out_csv: str | Path) -> dict[str, Any]:
    """Stage 2: klines (validated by the fetch stage, with the run's interval and limits)
    -> feature table: price and calendar features, then the causal volatility features."""
    klines = read_klines_csv(Path(klines_dir) / KLINES_FILE)
    features = build_features(klines)
    _write_table(features, out_csv)
    return {"rows": len(features), "features": list(features.columns)}


def split_stage(
    features_csv: str | Path, train_csv: str | Path, test_csv: str | Path, test_size: float
) -> dict[str, Any]:
    """Stage 3: chronological split of the feature table."""
    train, test = split_data(read_table(features_csv), test_size)
    _write_table(train, train_csv)
    _write_table(test, test_csv)
    return {"train_rows": len(train), "test_rows": len(test),
            "train_period": _span(train), "test_period": _span(test)}


def sequences_stage(
    train_csv: str | Path,
    test_csv: str | Path,
    out_npz: str | Path,
    sequence_length: int,
    val_size: float,
) -> dict[str, Any]:
    """Stage 4: raw windows and next-hour log-return targets for train / validation (the latest
    ``val_size`` of the train windows) and test (windows whose forecast hour is in the test
    period; their history may reach back into train, which is the past). Windows across a gap
    in the candles or over the volatility warm-up are left out."""
    train, test = read_table(train_csv), read_table(test_csv)
    tr = make_quantile_windows(train, sequence_length)
    te = make_quantile_windows(pd.concat([train, test]), sequence_length).since(test.index[0])
    n_val = holdout_size(len(tr.y), val_size)
    if len(tr.y) - n_val < 1 or len(te.y) < 1:
        raise InsufficientHistoryError(
            f"{len(tr.y)} train and {len(te.y)} test windows of {sequence_length} h: too few to train "
            "and evaluate; load more history (the volatility features need ~30 days of warm-up)"
        )
    cut = len(tr.y) - n_val
    with atomic_path(out_npz) as tmp, tmp.open("wb") as fh:
        np.savez(
            fh, X_train=tr.X[:cut], y_train=tr.y[:cut], X_val=tr.X[cut:], y_val=tr.y[cut:],
            X_test=te.X, y_test=te.y, t_test=te.index.asi8,
            unavailable=np.asarray(sorted(set(tr.unavailable) | set(te.unavailable)), dtype=str),
        )
    return {"train_windows": cut, "val_windows": n_val, "test_windows": len(te.y),
            "train_rows": len(train), "test_rows": len(test), "unavailable_inputs": list(tr.unavailable)}


def _unavailable(z) -> list[str]:
    """The inputs the symbol's source lacks, as the sequences stage recorded them."""
    return [str(c) for c in z["unavailable"]] if "unavailable" in z else []


def scale_stage(sequences_npz: str | Path, scaler_dir: str | Path, inputs: tuple[str, ...]) -> dict[str, Any]:
    """Stage 5: MinMax(-1, 1) fit on the train windows only (not validation, not test), on the
    stationary inputs the LSTM reads (each window divided by its trailing volatility): those of
    ``inputs`` the symbol's source has (no ``trades_ratio`` without trade counts)."""
    with np.load(sequences_npz) as z:
        X = z["X_train"]
        inputs = resolve_inputs(tuple(inputs), _unavailable(z))
    scaler = fit_input_scaler(X, inputs)
    save_scaler(scaler, scaler_dir)
    return {"inputs": list(inputs), "fit_rows": int(X.shape[0] * X.shape[1])}


def check_per_symbol(config: TrainConfig) -> TrainConfig:
    """A per-symbol model forecasts the next hour only (issue 22: the horizons are outputs of
    the universal model)."""
    if config.horizons != (1,):
        raise ConfigError(f"a model of one symbol forecasts the next hour only, not the horizons "
                          f"{list(config.horizons)}; train a model of several symbols for them (mkrich train "
                          "--symbols ..., the universal-training pipeline) or set horizons 1")
    return config


def train_stage(
    sequences_npz: str | Path,
    scaler_dir: str | Path,
    config: dict[str, Any] | TrainConfig,
    model_dir: str | Path,
    *,
    train_csv: str | Path | None = None,
    progress: bool | str = False,
    tensorboard_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Stage 6: fit the quantile LSTM on pinball loss, early-stopping on the validation windows
    (the untrained, empirically calibrated model counts as epoch 0). Writes the serving graph
    ``model.keras`` (raw windows -> prices), ``history.json``, ``training.json`` and
    ``config.json``. ``train_csv`` (the train features) is needed with ``blend_har``."""
    from make_us_rich.training.quantile_model import fit_quantile_model

    cfg = check_per_symbol(config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config))
    with np.load(sequences_npz) as z:
        data = {k: z[k] for k in ("X_train", "y_train", "X_val", "y_val")}
        n_test = len(z["y_test"])
        cfg = cfg.with_overrides(inputs=resolve_inputs(cfg.inputs, _unavailable(z)))
    if data["X_train"].shape[1] != cfg.sequence_length:
        raise ConfigError(
            f"windows have length {data['X_train'].shape[1]} but the config says "
            f"sequence_length={cfg.sequence_length}"
        )
    if cfg.blend_har and train_csv is None:
        raise ConfigError("blend_har needs the train features (train_csv) to fit the HAR model")
    trained = fit_quantile_model(
        data, load_scaler(scaler_dir), cfg, train_features=read_table(train_csv) if cfg.blend_har else None,
        progress=progress, tensorboard_dir=tensorboard_dir,
    )
    out = Path(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    trained.serving.save(out / "model.keras")
    epochs = len(trained.history["val_loss"])
    summary = {
        "epochs_run": epochs,
        "best_epoch": trained.best_epoch,
        "seconds": round(trained.seconds, 3),
        "seconds_per_epoch": round(trained.seconds / max(epochs, 1), 3),
        "initial_val_loss": trained.extra["initial_val_loss"],
        "best_val_loss": trained.extra["best_val_loss"],
        "train_windows": len(data["y_train"]),
        "val_windows": len(data["y_val"]),
        "test_windows": n_test,
        **({"spread_scale": trained.extra["spread_scale"]} if "spread_scale" in trained.extra else {}),
    }
    write_json(out / "history.json", trained.history)
    write_json(out / "training.json", summary)
    write_json(out / "config.json", cfg.to_dict())
    return summary


def convert_stage(model_dir: str | Path, sequences_npz: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Stage 7: self-contained ONNX with parity on the real test windows (raises on failure,
    writing nothing). Writes ``model.onnx`` and ``parity.json``."""
    from make_us_rich.contract import MODEL_FILE
    from make_us_rich.io import atomic_write_bytes
    from make_us_rich.training.export import export_onnx
    from make_us_rich.training.quantile_model import load_serving_model

    model = load_serving_model(Path(model_dir) / "model.keras")
    with np.load(sequences_npz) as z:
        X_test = z["X_test"]
    model_bytes, parity = export_onnx(model, X_test)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / MODEL_FILE, model_bytes)
    write_json(out / "parity.json", parity.to_dict())
    return parity.to_dict()


def evaluate_stage(
    onnx_dir: str | Path,
    scaler_dir: str | Path,
    model_dir: str | Path,
    klines_dir: str | Path,
    train_csv: str | Path,
    test_csv: str | Path,
    out_dir: str | Path,
    *,
    symbol: str,
    source: str,
    interval: str = _DATA.interval,
    gate_tolerance: float = _GATE.gate_tolerance,
    coverage_min: float = _GATE.coverage_min,
    coverage_max: float = _GATE.coverage_max,
) -> dict[str, Any]:
    """Stage 8a: evaluate the exported model on the test period beside the baselines, gate, and
    write the full artifact folder (what ``publish_stage`` takes). Returns metrics.json's
    content."""
    from make_us_rich.contract import MODEL_FILE
    from make_us_rich.training.artifacts import write_artifacts

    model_dir, onnx_dir = Path(model_dir), Path(onnx_dir)
    train, test = read_table(train_csv), read_table(test_csv)
    data = {
        "source": source,
        "start": _span(train)[0],
        "end": _span(test)[1],
        "rows": len(train) + len(test),
        "train_period": _span(train),
        "test_period": _span(test),
        "validation": read_json(Path(klines_dir) / REPORT_FILE),
    }
    return write_artifacts(
        out_dir,
        symbol=symbol,
        interval=interval,
        config=TrainConfig.from_dict(read_json(model_dir / "config.json")),
        data=data,
        scaler=load_scaler(scaler_dir),
        model_bytes=(onnx_dir / MODEL_FILE).read_bytes(),
        parity=read_json(onnx_dir / "parity.json"),
        history=read_json(model_dir / "history.json"),
        training=read_json(model_dir / "training.json"),
        features=pd.concat([train, test]),
        test_start=test.index[0],
        gate_tolerance=gate_tolerance,
        coverage_band=(coverage_min, coverage_max),
        keras_model=model_dir / "model.keras",
    )


def publish_stage(
    artifacts_dir: str | Path, symbol: str, store_uri: str, keep: int = _STORE.keep,
    allow_contract_change: bool = _STORE.allow_contract_change,
    *, shared_model: str | Path | None = None, sync: bool = True,
) -> dict[str, Any]:
    """Stage 8b: publish through the gate (with the serving contract check) to the model store;
    then the run's metrics to the Pushgateway when ``MKRICH_PUSHGATEWAY_URL`` is set.
    ``shared_model``: the universal model folder the artifacts come from (stored once for every
    symbol); ``sync=False`` leaves the removal of unused shared models and the Triton view to
    the caller (``ModelStore.sync``)."""
    from dataclasses import asdict

    from make_us_rich.observability import push_publish
    from make_us_rich.store import ModelStore

    store = ModelStore(store_uri, keep=keep)
    result = asdict(store.publish(artifacts_dir, symbol, allow_contract_change=allow_contract_change,
                                  shared_model=shared_model, sync=sync))
    push_publish(store, result["symbol"], artifacts_dir, version=result["version"])
    return result


# ----------------------------------------------------------------------------- the chain
#: The stages before training, in order (``run_stages(until=...)``).
DATA_STAGES = ("fetch", "features", "split", "sequences", "scale")


def run_stages(
    source: str,
    symbol: str,
    out_dir: str | Path,
    spec: RunSpec | None = None,
    *,
    start: str | None = None,
    end: str | None = None,
    klines: tuple[pd.DataFrame, DataReport] | None = None,
    work_dir: str | Path | None = None,
    progress: bool = False,
    tensorboard_dir: str | Path | None = None,
    client: object | None = None,
    on_stage: Callable[[str, dict[str, Any]], None] | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    """Fetch -> features -> split -> sequences -> scale -> train -> ONNX -> evaluate + gate, in
    this process, over the stages' own files (in ``work_dir``, default a temporary folder), the
    same chain the pipeline runs as components. Writes the artifact folder ``out_dir`` and
    returns metrics.json's content. ``klines`` (already loaded, with their report) skips the
    fetch; ``on_stage(name, info)`` is called as each stage finishes. ``until`` (one of
    :data:`DATA_STAGES`) stops after that stage and returns each stage's info by name
    (``mkrich preprocess``: the data stages' files without training). ``spec``: the run's data,
    training and gate parameters (its store part is for publishing, not done here)."""
    if until is not None and until not in DATA_STAGES:
        raise ConfigError(f"until={until!r}: the chain stops after one of {', '.join(DATA_STAGES)}")
    spec = spec or RunSpec()
    config, data, gate = spec.train, spec.data, spec.gate
    infos: dict[str, Any] = {}

    def done(name: str, info: dict[str, Any]) -> bool:
        infos[name] = info
        if on_stage:
            on_stage(name, info)
        return name == until

    with tempfile.TemporaryDirectory(prefix="mkrich-stages-") as tmp:
        w = Path(work_dir) if work_dir else Path(tmp)
        w.mkdir(parents=True, exist_ok=True)
        if klines is not None:
            info = write_fetched(*klines, w / "klines")
        else:
            info = fetch_stage(
                source, symbol, w / "klines", interval=data.interval, lookback_days=data.lookback_days,
                start=start, end=end, max_missing_fraction=data.max_missing_fraction, api_url=data.api_url or None,
                progress=progress, client=client,
            )
        if (done("fetch", info)
                or done("features", features_stage(w / "klines", w / "features.csv"))
                or done("split", split_stage(w / "features.csv", w / "train.csv", w / "test.csv", config.test_size))
                or done("sequences", sequences_stage(w / "train.csv", w / "test.csv", w / "sequences.npz",
                                                     config.sequence_length, config.val_size))
                or done("scale", scale_stage(w / "sequences.npz", w / "scaler", config.inputs))):
            return infos
        done("train", train_stage(w / "sequences.npz", w / "scaler", config, w / "model",
                                  train_csv=w / "train.csv", progress=progress,
                                  tensorboard_dir=tensorboard_dir))
        done("convert", convert_stage(w / "model", w / "sequences.npz", w / "onnx"))
        metrics = evaluate_stage(
            w / "onnx", w / "scaler", w / "model", w / "klines", w / "train.csv", w / "test.csv", out_dir,
            symbol=symbol, source=str(source), interval=data.interval, gate_tolerance=gate.gate_tolerance,
            coverage_min=gate.coverage_min, coverage_max=gate.coverage_max,
        )
        done("evaluate", metrics)
    return metrics


# ----------------------------------------------------------------------------- universal model
UNIVERSAL_FILE = "universal.json"


class WarmStartMismatch(ConfigError):
    """The model to warm-start from has another shape (inputs, window, units) than this run's."""

#: windows (spread over the symbols' test or validation windows) the ONNX parity is checked on
PARITY_WINDOWS = 2048


def universal_train_stage(
    features: dict[str, str | Path],
    config: dict[str, Any] | TrainConfig,
    model_dir: str | Path,
    *,
    test_start: dict[str, str | None] | None = None,
    init_dir: str | Path | None = None,
    time_budget: float | None = None,
    progress: bool | str = False,
    tensorboard_dir: str | Path | None = None,
) -> dict[str, Any]:
    """One universal model on the pooled windows of every symbol (issue 21): ``features`` maps
    each symbol to its feature table (features stage output), ``test_start`` to the first
    forecast hour of its test period (``None``/absent: no test, every window trains or
    validates). The model reads the inputs of ``config.inputs`` that every symbol has
    (``trades_ratio`` is dropped when one symbol's source lacks trade counts). ``init_dir``
    (a model folder of the same shape: the last accepted universal model) warm-starts the
    weights and keeps its input scaler; ``time_budget`` (s) bounds training.

    Writes into ``model_dir``: ``model.keras``, ``model.onnx``, ``parity.json``, ``scaler/``,
    ``config.json`` (the inputs actually used), ``history.json``, ``training.json`` and
    ``universal.json`` (symbols, windows and unavailable inputs of each). ``config.horizons`` other
    than ``(1,)``: a model with a quantile output per horizon (issue 22, :mod:`make_us_rich.horizons`;
    the cuts purged by the longest one; a warm start needs the same horizons), the card listing them."""
    from make_us_rich.contract import MODEL_FILE
    from make_us_rich.io import atomic_write_bytes
    from make_us_rich.preprocessing.pooled import fit_pooled_scaler, pool_windows, split_pooled
    from make_us_rich.training.export import export_onnx
    from make_us_rich.training.quantile_model import fit_pooled_model, load_serving_model

    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    if not features:
        raise ConfigError("a universal model needs at least one symbol's features")
    tables = {sym: read_table(path) for sym, path in features.items()}
    starts = {sym: (pd.Timestamp(t) if t else None) for sym, t in (test_start or {}).items()}
    windows = pool_windows(tables, cfg.sequence_length)
    lacking = sorted({c for names in windows.unavailable.values() for c in names})
    cfg = cfg.with_overrides(inputs=resolve_inputs(cfg.inputs, lacking))
    horizons = cfg.horizons
    multi = horizons != (1,)
    if multi:
        from make_us_rich.horizons import (
            check_horizons,
            pooled_horizon_targets,
            split_pooled_horizons,
        )

        horizons = check_horizons(horizons)
        targets = pooled_horizon_targets(windows, tables, horizons)
        (train, y_train), (val, y_val), (test, _) = split_pooled_horizons(windows, targets, horizons,
                                                                           cfg.val_size, starts)
    else:
        train, val, test = split_pooled(windows, cfg.val_size, starts)
    init = None
    if init_dir is not None:
        init_dir = Path(init_dir)
        previous = _folder_config(init_dir)
        before = _folder_horizons(init_dir)
        if before != horizons:
            raise WarmStartMismatch(f"cannot warm-start from {init_dir}: it forecasts the horizons {list(before)} h, "
                                    f"this run {list(horizons)} h; retrain in full")
        if (previous.inputs, previous.sequence_length, previous.lstm_units) != (
                cfg.inputs, cfg.sequence_length, cfg.lstm_units):
            raise WarmStartMismatch(
                f"cannot warm-start from {init_dir}: it reads {list(previous.inputs)} over "
                f"{previous.sequence_length} h with {previous.lstm_units} units, this run "
                f"{list(cfg.inputs)} over {cfg.sequence_length} h with {cfg.lstm_units}; retrain in full"
            )
        scaler = load_scaler(init_dir / "scaler" if (init_dir / "scaler").is_dir() else init_dir)
        init = load_serving_model(init_dir / "model.keras")
    else:
        scaler = fit_pooled_scaler(train, cfg.inputs)
    har_features = None
    if cfg.blend_har:
        har_features = [tables[s][tables[s].index < starts[s]] if starts.get(s) is not None else tables[s]
                        for s in tables]
    if multi:
        from make_us_rich.training.quantile_model import fit_horizon_model

        trained = fit_horizon_model(train, val, y_train, y_val, scaler, cfg, horizons, har_features=har_features,
                                    init_from=init, time_budget=time_budget, progress=progress,
                                    tensorboard_dir=tensorboard_dir)
    else:
        trained = fit_pooled_model(train, val, scaler, cfg, har_features=har_features, init_from=init,
                                   time_budget=time_budget, progress=progress, tensorboard_dir=tensorboard_dir)
    out = Path(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    trained.serving.save(out / "model.keras")
    check = test if len(test) else val
    pick = np.unique(np.linspace(0, len(check) - 1, min(PARITY_WINDOWS, len(check))).astype(int))
    outputs = {}
    if multi:
        from make_us_rich.contract import OUTPUT_NAMES
        from make_us_rich.horizons import HORIZON_OUTPUT_NAME

        outputs = {"output_names": (*OUTPUT_NAMES, HORIZON_OUTPUT_NAME)}
    model_bytes, parity = export_onnx(trained.serving, check.X(pick), **outputs)
    atomic_write_bytes(out / MODEL_FILE, model_bytes)
    write_json(out / "parity.json", parity.to_dict())
    save_scaler(scaler, out / "scaler")
    epochs = len(trained.history["val_loss"])
    counts = {"train": train.counts(), "val": val.counts(), "test": test.counts()}
    summary = {
        "epochs_run": epochs,
        "best_epoch": trained.best_epoch,
        "seconds": round(trained.seconds, 3),
        "seconds_per_epoch": round(trained.seconds / max(epochs, 1), 3),
        "initial_val_loss": trained.extra["initial_val_loss"],
        "best_val_loss": trained.extra["best_val_loss"],
        "train_windows": len(train),
        "val_windows": len(val),
        "test_windows": len(test),
        "warm_start": trained.extra["warm_start"],
        "time_budget": time_budget,
        "budget_exhausted": trained.extra["budget_exhausted"],
        **({"spread_scale": trained.extra["spread_scale"]} if "spread_scale" in trained.extra else {}),
    }
    info = {
        "kind": "universal",
        "symbols": list(windows.symbols),
        "inputs": list(cfg.inputs),
        "unavailable": {s: list(v) for s, v in windows.unavailable.items()},
        "windows": {s: {k: counts[k][s] for k in counts} for s in windows.symbols},
        "periods": {s: _span(t) for s, t in tables.items()},
        "test_start": {s: (t.isoformat() if (t := starts.get(s)) is not None else None) for s in windows.symbols},
        **({"horizons": list(horizons)} if multi else {}),
    }
    write_json(out / "history.json", trained.history)
    write_json(out / "training.json", summary)
    write_json(out / "config.json", cfg.to_dict())
    write_json(out / UNIVERSAL_FILE, info)
    _write_universal_card(out, cfg, info, summary, parity.to_dict())
    return {**summary, "inputs": info["inputs"], "symbols": info["symbols"], "parity": parity.to_dict()}


def _folder_config(folder: Path) -> TrainConfig:
    """The config of a universal model folder, or of a symbol's published artifact folder."""
    if (folder / "config.json").is_file():
        return TrainConfig.from_dict(read_json(folder / "config.json"))
    return TrainConfig.from_dict(read_json(folder / "model_card.json")["hyperparameters"])


def _folder_horizons(folder: Path) -> tuple[int, ...]:
    """The horizons a model folder (universal, or a symbol's artifacts) forecasts: its card's."""
    card = folder / "model_card.json"
    return tuple(read_json(card).get("horizons") or (1,)) if card.is_file() else (1,)


def warm_start_from_store(store_uri: str, symbols: list[str], dest: str | Path) -> dict[str, Any] | None:
    """Fetch the newest accepted universal model serving one of ``symbols`` (with its Keras
    state) from the store into ``dest``; ``None`` when there is none (a first run: train in
    full)."""
    from make_us_rich.contract import STATE_FILES
    from make_us_rich.store import ModelStore

    store = ModelStore(store_uri)
    best = None
    for sym in symbols:
        pointer = store.latest(sym)
        if pointer is None:
            continue
        manifest = store.manifest(sym, pointer["version"])
        if STATE_FILES[0] in manifest.get("files", {}) and (best is None or pointer["version"] > best[1]):
            best = (sym, pointer["version"])
    if best is None:
        return None
    store.fetch(best[0], dest, best[1])
    return {"symbol": best[0], "version": best[1]}


def universal_evaluate_stage(
    model_dir: str | Path,
    klines_dir: str | Path,
    features_csv: str | Path,
    out_dir: str | Path,
    *,
    symbol: str,
    source: str,
    interval: str = _DATA.interval,
    gate_tolerance: float = _GATE.gate_tolerance,
    coverage_min: float = _GATE.coverage_min,
    coverage_max: float = _GATE.coverage_max,
) -> dict[str, Any]:
    """One symbol's artifact folder from the universal model: its test period (the model's
    ``test_start`` of the symbol, or the last ``test_size`` of its rows for a symbol the model
    was not trained on) against its own baselines, gated on its own. Returns metrics.json's
    content."""
    from make_us_rich.contract import MODEL_FILE
    from make_us_rich.data import normalize_symbol
    from make_us_rich.preprocessing.windows import check_inputs_available, unavailable_inputs
    from make_us_rich.training.artifacts import write_artifacts

    model_dir = Path(model_dir)
    sym = normalize_symbol(symbol)
    info = read_json(model_dir / UNIVERSAL_FILE)
    config = TrainConfig.from_dict(read_json(model_dir / "config.json"))
    features = read_table(features_csv)
    lacking = unavailable_inputs(features)
    check_inputs_available(config.inputs, lacking, sym)
    start = info["test_start"].get(sym)
    if start is None:
        start = features.index[len(features) - holdout_size(len(features), config.test_size)].isoformat()
    start_ts = pd.Timestamp(start)
    train, test = features[features.index < start_ts], features[features.index >= start_ts]
    if train.empty or test.empty:
        raise InsufficientHistoryError(f"{sym}: no test period after {start} in its features; load more history")
    data = {
        "source": source,
        "start": _span(train)[0],
        "end": _span(test)[1],
        "rows": len(features),
        "train_period": _span(train),
        "test_period": _span(test),
        "validation": read_json(Path(klines_dir) / REPORT_FILE),
    }
    model_info = {
        "kind": "universal",
        "trained_on": info["symbols"],
        "in_training": sym in info["symbols"],
        "inputs_used": list(config.inputs),
        "inputs_unavailable": list(lacking),
        "model_sha256": sha256(model_dir / MODEL_FILE),
    }
    return write_artifacts(
        out_dir, symbol=sym, interval=interval, config=config, data=data,
        scaler=load_scaler(model_dir / "scaler"), model_bytes=(model_dir / MODEL_FILE).read_bytes(),
        parity=read_json(model_dir / "parity.json"), history=read_json(model_dir / "history.json"),
        training=read_json(model_dir / "training.json"), features=features, test_start=test.index[0],
        gate_tolerance=gate_tolerance, coverage_band=(coverage_min, coverage_max), model_info=model_info,
        keras_model=model_dir / "model.keras", horizons=tuple(info["horizons"]) if info.get("horizons") else None,
    )


def _write_universal_card(out: Path, cfg: TrainConfig, info: dict[str, Any], training: dict[str, Any],
                          parity: dict[str, Any]) -> None:
    """``model_card.json`` of the universal model folder (what ``mkrich evaluate --model`` reads)."""
    from datetime import UTC, datetime

    from make_us_rich import contract
    from make_us_rich.training.artifacts import MODEL_CARD_SCHEMA, library_versions

    card = {
        "schema": MODEL_CARD_SCHEMA,
        "kind": "universal",
        "symbol": None,
        "symbols": info["symbols"],
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "features": list(contract.FEATURES),
        "inputs": {"used": info["inputs"], "unavailable": info["unavailable"]},
        "data": {"periods": info["periods"], "test_start": info["test_start"], "windows": info["windows"]},
        "target": "log return to the next close (quantiles " + ", ".join(f"{q:g}" for q in contract.QUANTILES) + ")",
        "sequence_length": cfg.sequence_length,
        **contract.signature(cfg.sequence_length, len(contract.FEATURES), len(info.get("horizons") or ())),
        "opset": contract.OPSET,
        "hyperparameters": cfg.to_dict(),
        "training": training,
        "parity": parity,
        "versions": library_versions(),
        "files": {contract.MODEL_FILE: sha256(out / contract.MODEL_FILE)},
        **({"horizons": info["horizons"]} if "horizons" in info else {}),
    }
    write_json(out / "model_card.json", card)


MARKET_INDEX = "market.json"


def fetch_many_stage(
    source: str,
    symbols: list[str],
    out_dir: str | Path,
    *,
    test_size: float = DEFAULT_TEST_SIZE,
    concurrency: int = _UNIVERSAL.concurrency,
    interval: str = _DATA.interval,
    lookback_days: float | None = _DATA.lookback_days,
    start: str | None = None,
    end: str | None = None,
    max_missing_fraction: float = _DATA.max_missing_fraction,
    api_url: str | None = None,
    progress: bool = False,
    client: object | None = None,
    weight_limit: int | None = None,
) -> dict[str, Any]:
    """Stages 1-2 for many symbols, ``concurrency`` at a time: ``out_dir/<SYMBOL>/klines/`` and
    ``features.csv`` each, and ``market.json``: the symbols fetched, each one's test start (its
    last ``test_size`` of rows; none with 0) and inputs it lacks, and the symbols that failed
    with the reason (the run goes on without them; it fails only when none is left).

    From Binance, the threads share one request-weight budget (``weight_limit`` per minute,
    default ``$BINANCE_WEIGHT_LIMIT``, else the limit Binance publishes in ``exchangeInfo``,
    else 1200; :class:`~make_us_rich.data.binance.WeightBudget`):
    they wait for the next minute rather than pass it, and all pause on a 429/418; a symbol
    whose fetch still fails (e.g. a ban longer than the client waits) is named in ``failed``.
    ``market.json``'s ``request_weight`` says how much was used and waited."""
    from concurrent.futures import ThreadPoolExecutor

    from make_us_rich.data import normalize_symbol, parse_source
    from make_us_rich.errors import MakeUsRichError
    from make_us_rich.preprocessing.windows import unavailable_inputs

    syms = list(dict.fromkeys(normalize_symbol(s) for s in symbols))
    if not syms:
        raise ConfigError("no symbol given; pass --symbols S1,S2,...")
    out = Path(out_dir)
    budget = None
    if client is None and parse_source(source).kind == "binance":
        import os

        from make_us_rich.data.binance import WEIGHT_LIMIT_ENV, BinanceClient, WeightBudget

        published = None
        if weight_limit is None and not os.environ.get(WEIGHT_LIMIT_ENV):
            published = BinanceClient(api_url=api_url or None).published_weight_limit(syms[0])
        budget = WeightBudget(weight_limit or published)

    def one(sym: str) -> dict[str, Any]:
        d = out / sym
        # a client per thread (python-binance keeps the last response on it), one budget for all
        own = BinanceClient(api_url=api_url or None, budget=budget) if budget is not None else client
        report = fetch_stage(source, sym, d / "klines", interval=interval, lookback_days=lookback_days,
                             start=start, end=end, max_missing_fraction=max_missing_fraction,
                             api_url=api_url, progress=progress, client=own)
        features_stage(d / "klines", d / "features.csv")
        table = read_table(d / "features.csv")
        first = table.index[len(table) - holdout_size(len(table), test_size)].isoformat() if test_size > 0 else None
        return {"rows": len(table), "period": _span(table), "test_start": first,
                "unavailable": list(unavailable_inputs(table)), "missing_candles": report["missing_candles"]}

    fetched, failed = {}, {}
    with ThreadPoolExecutor(max_workers=max(1, int(concurrency))) as pool:
        futures = {sym: pool.submit(one, sym) for sym in syms}
        for sym, future in futures.items():
            try:
                fetched[sym] = future.result()
            except MakeUsRichError as exc:
                failed[sym] = str(exc)
                log.warning("%s: left out of this run: %s", sym, exc)
    index = {"source": str(source), "symbols": fetched, "failed": failed}
    if budget is not None:
        index["request_weight"] = {**budget.stats(), "published": published}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / MARKET_INDEX, index)
    if not fetched:
        raise InsufficientHistoryError("no symbol could be loaded: " + "; ".join(f"{s}: {m}" for s, m in failed.items()))
    return index


def market_train_stage(market_dir: str | Path, config: dict[str, Any] | TrainConfig, model_dir: str | Path,
                       *, warm_store: str | None = None, **options: Any) -> dict[str, Any]:
    """:func:`universal_train_stage` on every symbol :func:`fetch_many_stage` loaded. With
    ``warm_store`` (a store URI), training starts from the newest accepted universal model
    serving one of the symbols, when there is one of the same shape; otherwise in full (the
    summary's ``warm_start`` says which, ``warm_start_from`` from what)."""
    market = Path(market_dir)
    index = read_json(market / MARKET_INDEX)
    symbols = index["symbols"]

    def train(**more: Any) -> dict[str, Any]:
        return universal_train_stage({s: market / s / "features.csv" for s in symbols}, config, model_dir,
                                     test_start={s: v["test_start"] for s, v in symbols.items()}, **options, **more)

    if not warm_store:
        return train()
    with tempfile.TemporaryDirectory(prefix="mkrich-warm-") as tmp:
        found = warm_start_from_store(warm_store, list(symbols), tmp)
        if found is None:
            return {**train(), "warm_start_from": None, "warm_start_note": "no accepted universal model in the store"}
        try:
            return {**train(init_dir=tmp), "warm_start_from": found}
        except WarmStartMismatch as exc:
            return {**train(), "warm_start_from": None, "warm_start_note": str(exc)}


def market_evaluate_stage(model_dir: str | Path, market_dir: str | Path, symbol: str, out_dir: str | Path,
                          **options: Any) -> dict[str, Any]:
    """One symbol's row of the run: :func:`universal_evaluate_stage` on its data in
    ``market_dir``; a symbol that could not be loaded or evaluated gives a row with the
    ``error`` (the others go on)."""
    from make_us_rich.data import normalize_symbol
    from make_us_rich.errors import MakeUsRichError

    sym = normalize_symbol(symbol)
    market = Path(market_dir)
    index = read_json(market / MARKET_INDEX)
    if sym not in index["symbols"]:
        return {"symbol": sym, "error": index["failed"].get(sym, "not in the run's data")}
    try:
        metrics = universal_evaluate_stage(model_dir, market / sym / "klines", market / sym / "features.csv",
                                           out_dir, symbol=sym, source=index["source"], **options)
    except MakeUsRichError as exc:
        return {"symbol": sym, "error": str(exc)}
    return {"symbol": sym, **symbol_row(metrics)}


def symbol_batches(symbols: list[str], size: int) -> list[list[str]]:
    """The run's symbols in batches of ``size``: one evaluation task each (a process start and
    its imports are paid once per batch, not per symbol)."""
    if size < 1:
        raise ConfigError(f"the evaluation batch must hold >= 1 symbol, got {size}")
    return [list(symbols[i : i + size]) for i in range(0, len(symbols), size)]


def evaluate_publish_stage(
    model_dir: str | Path,
    market_dir: str | Path,
    symbols: list[str],
    out_dir: str | Path,
    *,
    store_uri: str | None = None,
    keep: int = _STORE.keep,
    **options: Any,
) -> dict[str, dict[str, Any]]:
    """A batch of symbols: each evaluated and gated on its own (:func:`market_evaluate_stage`,
    artifacts in ``out_dir/<SYMBOL>/``), then published through the gate to ``store_uri`` when
    given (a rejected model is stored as rejected, the symbol keeps its previous one). The
    universal model is stored once in the store, every symbol's version names it
    (``shared``); unused shared versions are removed and the Triton view synced once for the
    batch. One symbol's failure is its row's ``error``; the others go on. Returns the rows by
    symbol."""
    from make_us_rich.errors import MakeUsRichError
    from make_us_rich.store import ModelStore

    rows = {}
    published = []
    for sym in symbols:
        row = market_evaluate_stage(model_dir, market_dir, sym, Path(out_dir) / sym, **options)
        if store_uri and "error" not in row:
            try:
                result = publish_stage(Path(out_dir) / sym, sym, store_uri, keep, shared_model=model_dir, sync=False)
                row["published"] = {k: result[k] for k in ("status", "version", "latest", "shared")}
                published.append(result["symbol"])
            except MakeUsRichError as exc:
                row["error"] = f"publish failed: {exc}"
        rows[row.pop("symbol")] = row
    if published:
        try:
            ModelStore(store_uri, keep=keep).sync(published)
        except MakeUsRichError as exc:  # the pointers moved; the next publish repairs the view
            for sym in published:
                rows[sym]["triton_error"] = f"Triton view not synced: {exc}"
    return rows


def run_universal(
    source: str,
    symbols: list[str],
    out_dir: str | Path,
    spec: RunSpec | None = None,
    *,
    start: str | None = None,
    end: str | None = None,
    init_dir: str | Path | None = None,
    warm_store: str | None = None,
    work_dir: str | Path | None = None,
    progress: bool = False,
    tensorboard_dir: str | Path | None = None,
    client: object | None = None,
    on_stage: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Fetch and features per symbol (:func:`fetch_many_stage`) -> one universal model on the
    pooled windows -> ONNX -> each symbol evaluated and gated on its own test period (the last
    ``test_size`` of its rows; none with 0) - the stages the universal pipeline runs.
    ``out_dir`` receives the model folder and ``symbols/<SYMBOL>/`` (one publishable artifact
    folder per symbol); returns the summary (also ``summary.json``): the training, each
    symbol's scores and gate decision, and the symbols that failed and why. ``spec``: the run's
    data, training, gate and universal parameters (``concurrency``, ``time_budget``; 0: no limit);
    ``init_dir`` (a model folder) or ``warm_store`` (a store URI) warm-starts the training."""
    spec = spec or RunSpec()
    config, data, gate = spec.train, spec.data, spec.gate
    time_budget = spec.universal.time_budget or None
    done = on_stage or (lambda name, info: None)
    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="mkrich-universal-") as tmp:
        market = Path(work_dir) if work_dir else Path(tmp)
        index = fetch_many_stage(
            source, symbols, market, test_size=config.test_size, concurrency=spec.universal.concurrency,
            interval=data.interval, lookback_days=data.lookback_days, start=start, end=end,
            max_missing_fraction=data.max_missing_fraction, api_url=data.api_url or None, progress=progress,
            client=client,
        )
        done("fetch", index)
        if init_dir is not None and warm_store:
            raise ConfigError("warm-start from a folder or from the store, not both")
        training = market_train_stage(market, config, out, warm_store=warm_store, time_budget=time_budget,
                                      progress=progress, tensorboard_dir=tensorboard_dir,
                                      **({"init_dir": init_dir} if init_dir is not None else {}))
        done("train", training)
        results: dict[str, Any] = {}
        if config.test_size > 0:
            for sym in index["symbols"]:
                row = market_evaluate_stage(
                    out, market, sym, out / "symbols" / sym, interval=data.interval,
                    gate_tolerance=gate.gate_tolerance, coverage_min=gate.coverage_min, coverage_max=gate.coverage_max,
                )
                results[sym] = {k: v for k, v in row.items() if k != "symbol"}
                done(f"evaluate {sym}", row)
    summary = {"symbols": list(index["symbols"]), "failed": index["failed"], "training": training,
               "evaluation": results}
    write_json(out / "summary.json", summary)
    return summary


def symbol_row(metrics: dict[str, Any]) -> dict[str, Any]:
    """One symbol's line of a run's table: key test scores, inputs and the gate's decision."""
    test = metrics["test"]
    ratio = test.get("ratio") or {}
    intervals = test["model"]["intervals"]
    return {
        "n": test["n"],
        "period": test["period"],
        "pinball_vs_empirical": ratio.get("pinball_vs_empirical"),
        "pinball_vs_garch_t": ratio.get("pinball_vs_garch_t"),
        "pinball_vs_har": ratio.get("pinball_vs_har"),
        "coverage_90": intervals["90"]["coverage"],
        "coverage_50": intervals["50"]["coverage"],
        "median_rmse_vs_persistence": ratio.get("median_rmse_vs_persistence"),
        "inputs": metrics.get("inputs"),
        "gate": metrics["gate"]["passed"],
        "reasons": metrics["gate"]["reasons"],
        **({"served_horizons": metrics["gate"]["served_horizons"]} if "served_horizons" in metrics["gate"] else {}),
    }
