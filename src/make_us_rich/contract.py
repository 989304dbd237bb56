"""The serving contract: names and shapes every part agrees on (trainer, ONNX export, model
store, KServe predictor, Triton config, model card, manifests). One source of truth, imported
everywhere, tested.

The exported model is self-contained: it takes *raw* feature windows (prices in quote currency,
calendar numbers as they are) and returns forecasts in price units. Adding an output is a change
here (one more :class:`Tensor` in :data:`OUTPUTS`) and to the model that produces it; export,
inference, signature checks, Triton config, predictor and model card all read this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from make_us_rich.preprocessing.windows import QUANTILE_FEATURES
from make_us_rich.scoring import QUANTILE_COLUMNS, QUANTILES

DATATYPE = "FP32"  # Open Inference Protocol name of float32
OPSET = 17
#: Model versions the store keeps per symbol by default (older ones go at publish).
DEFAULT_KEEP = 10
FEATURES: tuple[str, ...] = QUANTILE_FEATURES
MODEL_FILE = "model.onnx"
#: The artifact folder of one model: what the evaluate stage writes and the store publishes.
REQUIRED_FILES: tuple[str, ...] = (
    MODEL_FILE, "scaler.pkl", "scaler.json", "metrics.json", "predictions.csv", "history.json",
    "model_card.json",
)
OPTIONAL_FILES: tuple[str, ...] = ("training_curves.png", "fan_chart.png", "calibration.png")
#: Training state kept beside the artifacts, never served: the Keras graph a later run of a
#: universal model warm-starts from (issue 21).
STATE_FILES: tuple[str, ...] = ("model.keras",)
ARTIFACT_FILES: tuple[str, ...] = REQUIRED_FILES + OPTIONAL_FILES + STATE_FILES


@dataclass(frozen=True)
class Tensor:
    """One named model tensor. ``shape`` counts -1 for the dynamic batch dimension; the input's
    ``L`` (sequence length) and ``F`` (features) are filled per model by :meth:`dims`."""

    name: str
    shape: tuple[int | str, ...]
    description: str
    datatype: str = DATATYPE

    def dims(self, sequence_length: int, n_features: int) -> list[int | str]:
        sizes: dict[str, int | str] = {"L": sequence_length, "F": n_features}
        return [sizes.get(d, d) if isinstance(d, str) else d for d in self.shape]

    def spec(self, sequence_length: int, n_features: int) -> dict[str, object]:
        """KServe/OIP v2 metadata of this tensor (``name``, ``datatype``, ``shape``)."""
        return {"name": self.name, "datatype": self.datatype, "shape": self.dims(sequence_length, n_features)}


#: ONNX input: float32 ``[batch, sequence_length, n_features]``, raw features oldest hour first.
INPUT = Tensor("window", (-1, "L", "F"), "raw feature windows, oldest hour first (no scaling needed)")
#: ONNX outputs, in the graph's order.
OUTPUTS: tuple[Tensor, ...] = (
    Tensor("next_close", (-1, 1), "median forecast of the next close in quote currency (the point forecast)"),
    Tensor(
        "quantile_close", (-1, len(QUANTILES)),
        "next close at the quantiles " + ", ".join(f"{q:g}" for q in QUANTILES) + " (columns "
        + " ".join(QUANTILE_COLUMNS) + "), monotone, in quote currency",
    ),
)
INPUT_NAME = INPUT.name
OUTPUT_NAMES: tuple[str, ...] = tuple(t.name for t in OUTPUTS)
#: The point forecast (every model version has it: clients of the first models keep working).
OUTPUT_NAME = "next_close"
QUANTILE_OUTPUT_NAME = "quantile_close"


def model_name(symbol: str) -> str:
    """KServe/Triton model name of a symbol's forecaster (also the Triton folder name)."""
    return f"{symbol.lower()}-close"


def signature(sequence_length: int, n_features: int, n_horizons: int = 0) -> dict[str, object]:
    """The input/output section of a model card (``n_horizons``: a model of several horizons
    lists its :data:`HORIZON_OUTPUT_NAME` too)."""
    outputs = OUTPUTS + ((horizon_output(n_horizons),) if n_horizons else ())
    return {
        "input": {**INPUT.spec(sequence_length, n_features), "description": INPUT.description},
        "outputs": [{**t.spec(sequence_length, n_features), "description": t.description} for t in outputs],
    }


def triton_config(name: str, sequence_length: int, n_features: int, version_policy: str,
                  n_horizons: int = 0) -> str:
    """Triton ``config.pbtxt`` for the ONNX forecaster (batch dimension inside dims: -1); a
    model of ``n_horizons`` horizons lists its :data:`HORIZON_OUTPUT_NAME` too (Triton answers
    every row: the pointer's ``horizons`` says which are served)."""

    def block(tensors) -> str:
        return ",\n".join(
            f'  {{ name: "{t.name}" data_type: TYPE_{t.datatype} dims: '
            f"[ {', '.join(str(d) for d in t.dims(sequence_length, n_features))} ] }}"
            for t in tensors
        )

    return (
        f'name: "{name}"\n'
        'platform: "onnxruntime_onnx"\n'
        "max_batch_size: 0\n"
        f"input [\n{block([INPUT])}\n]\n"
        f"output [\n{block(OUTPUTS + ((horizon_output(n_horizons),) if n_horizons else ()))}\n]\n"
        f"version_policy: {version_policy}\n"
    )


def serving_contract(
    sequence_length: int, features: list[str] | tuple[str, ...], quantiles=QUANTILES, outputs=None
) -> dict[str, object]:
    """What a client relies on: the input tensor, the order of its features, the outputs and the
    quantiles of ``quantile_close``. ``outputs``: specs as a model card lists them (default:
    this code's :data:`OUTPUTS`)."""
    n = len(features)
    specs = outputs if outputs is not None else [t.spec(sequence_length, n) for t in OUTPUTS]
    return {
        "input": INPUT.spec(sequence_length, n),
        "features": list(features),
        "outputs": [{k: o[k] for k in ("name", "datatype", "shape")} for o in specs],
        "quantiles": [float(q) for q in quantiles],
    }


def contract_of(record: dict) -> dict[str, object]:
    """The serving contract a ``latest.json`` pointer or a manifest records; older ones recorded
    only ``sequence_length`` and ``features`` (their outputs were this code's)."""
    return record.get("contract") or serving_contract(record["sequence_length"], record["features"])


def contract_changes(old: dict, new: dict) -> list[str]:
    """The changes from ``old`` to ``new`` that break a client of ``old``, in words: another
    input shape, features or quantiles, an output removed or reshaped. An added output breaks
    nobody (clients read outputs by name)."""
    changes = []
    if old["input"] != new["input"]:
        changes.append(f"input {old['input']['name']} {old['input']['shape']} -> {new['input']['name']} "
                       f"{new['input']['shape']}")
    if old["features"] != new["features"]:
        gone = [f for f in old["features"] if f not in new["features"]]
        added = [f for f in new["features"] if f not in old["features"]]
        what = "; ".join([f"removed {', '.join(gone)}"] * bool(gone) + [f"added {', '.join(added)}"] * bool(added))
        changes.append(f"features {what or 'reordered'}")
    now = {o["name"]: o for o in new["outputs"]}
    for o in old["outputs"]:
        if o["name"] not in now:
            changes.append(f"output {o['name']} removed")
        elif (now[o["name"]]["shape"], now[o["name"]]["datatype"]) != (o["shape"], o["datatype"]):
            changes.append(f"output {o['name']} {o['datatype']} {o['shape']} -> "
                           f"{now[o['name']]['datatype']} {now[o['name']]['shape']}")
    if old["quantiles"] != new["quantiles"]:
        changes.append(f"quantiles {old['quantiles']} -> {new['quantiles']}")
    return changes


@dataclass(frozen=True)
class ModelScores:
    """A model's test scores as metrics.json's ``test`` block (also the manifest's and the
    pointer's ``metrics``) records them, read once, checked: what the run summary, the run
    history, the console, the CLI and the Prometheus metrics show. Missing parts are None (a
    model evaluated before a score existed); a part of the wrong type is a ``ValueError``."""

    n: int | None = None
    mean_pinball: float | None = None
    coverage90: float | None = None
    coverage50: float | None = None
    pinball_vs_empirical: float | None = None
    pinball_vs_garch_t: float | None = None
    pinball_vs_har: float | None = None
    rmse_vs_persistence: float | None = None
    baselines: tuple[tuple[str, float | None], ...] = ()
    period: tuple[str, ...] | None = None

    @classmethod
    def of(cls, test: object) -> ModelScores:
        if test is None:
            return cls()
        block = _mapping(test, "test")
        model = _mapping(block.get("model"), "test.model")
        ratio = _mapping(block.get("ratio"), "test.ratio")
        intervals = _mapping(model.get("intervals"), "test.model.intervals")
        baselines = _mapping(block.get("baselines"), "test.baselines")
        period = block.get("period")
        return cls(
            n=_number(block.get("n"), "test.n", int),
            mean_pinball=_number(model.get("mean_pinball"), "test.model.mean_pinball"),
            coverage90=_number(_mapping(intervals.get("90"), "intervals.90").get("coverage"), "coverage 90"),
            coverage50=_number(_mapping(intervals.get("50"), "intervals.50").get("coverage"), "coverage 50"),
            pinball_vs_empirical=_number(ratio.get("pinball_vs_empirical"), "ratio.pinball_vs_empirical"),
            pinball_vs_garch_t=_number(ratio.get("pinball_vs_garch_t"), "ratio.pinball_vs_garch_t"),
            pinball_vs_har=_number(ratio.get("pinball_vs_har"), "ratio.pinball_vs_har"),
            rmse_vs_persistence=_number(ratio.get("median_rmse_vs_persistence"), "ratio.median_rmse_vs_persistence"),
            baselines=tuple((str(name), _number(_mapping(b, f"baselines.{name}").get("mean_pinball"),
                                                f"baselines.{name}.mean_pinball"))
                            for name, b in baselines.items()),
            period=tuple(str(p) for p in period) if isinstance(period, list | tuple) else None,
        )


def _mapping(value: object, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"metrics {where} is {type(value).__name__}, not an object")
    return value


def _number(value: object, where: str, kind: type = float):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"metrics {where} is {value!r}, not a number")
    return kind(value)


# --- forecast horizons (issue 22) --------------------------------------------------------------
#: The ONNX output of a model of several horizons, beside the 1-hour :data:`OUTPUTS`: the closes
#: at each horizon's quantiles ``[batch, H, 5]``, rows in the order of the model card's
#: ``horizons`` (the pointer's ``horizon_axis``).
HORIZON_OUTPUT_NAME = "quantile_close_horizons"


def horizon_output(n_horizons: int) -> Tensor:
    """The tensor of :data:`HORIZON_OUTPUT_NAME` for a model of ``n_horizons`` horizons (or
    of that many served horizons: the predictor answers only those)."""
    return Tensor(
        HORIZON_OUTPUT_NAME, (-1, int(n_horizons), len(QUANTILES)),
        "close at each horizon's quantiles " + ", ".join(f"{q:g}" for q in QUANTILES) + " (rows: the "
        "horizons in hours the response's parameters.horizons or the pointer's horizon_axis lists), in quote currency",
    )


def check_horizon_list(value: object, where: str) -> tuple[int, ...]:
    """A list of horizons in hours as a pointer records it: distinct whole hours >= 1, the
    1-hour horizon among them (the contract's outputs); ``ValueError`` naming ``where``."""
    if (not isinstance(value, list | tuple) or not value
            or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in value)
            or len(set(value)) != len(value) or 1 not in value):
        raise ValueError(f"{where} is {value!r}, not a list of distinct whole hours including 1")
    return tuple(value)


def served_horizons(pointer: dict) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """``(horizon_axis, served)`` of a ``latest.json`` pointer: the model's horizons in the order
    of the rows of :data:`HORIZON_OUTPUT_NAME`, and those its per-horizon gate let through
    (``horizons``), in that order; ``None`` for a model of the next hour only. ``ValueError``
    when they do not fit together."""
    if pointer.get("horizon_axis") is None:
        return None
    axis = check_horizon_list(pointer["horizon_axis"], "the pointer's horizon_axis")
    served = check_horizon_list(pointer.get("horizons"), "the pointer's horizons")
    if not set(served) <= set(axis):
        raise ValueError(f"the pointer's horizons {list(served)} are not all in its horizon_axis {list(axis)}")
    return axis, tuple(h for h in axis if h in served)


def horizon_rows(serving: dict) -> int:
    """How many horizons a serving contract's :data:`HORIZON_OUTPUT_NAME` holds (0: none)."""
    return next((int(o["shape"][1]) for o in serving["outputs"] if o["name"] == HORIZON_OUTPUT_NAME), 0)
