"""The serving contract: names and shapes every part agrees on (trainer, ONNX export, model
store, KServe predictor, Triton config, model card, manifests). One source of truth, imported
everywhere, tested. One module on purpose (it is long): the tensors, the records the store writes
(pointer, manifest, model card, scores) and the horizons' parts are what every layer agrees on,
and a change to one is read beside the others.

The exported model is self-contained: it takes *raw* feature windows (prices in quote currency,
calendar numbers as they are) and returns forecasts in price units. Adding an output is a change
here (one more :class:`Tensor` in :data:`OUTPUTS`) and to the model that produces it; export,
inference, signature checks, Triton config, predictor and model card all read this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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


# ----------------------------------------------------------------------------- stored records
#: A model version's name: UTC time to the microsecond and 8 hex digits (``ModelStore.publish``).
VERSION_RE = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{8}$")


def _text(value: object, where: str, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ValueError(f"'{where}' is {value!r}, not a string")
    return value


def _texts(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"'{where}' is {value!r}, not a list of strings")
    return tuple(value)


def _object(value: object, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"'{where}' is {type(value).__name__}, not an object")
    return value


def _version(value: object, where: str = "version") -> str:
    if not isinstance(value, str) or not VERSION_RE.match(value):
        raise ValueError(f"'{where}' is {value!r}, not a version name")
    return value


def _whole(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"'{where}' is {value!r}, not a whole number")
    return value


@dataclass(frozen=True)
class Gate:
    """The promotion gate's decision as a manifest (and metrics.json) records it."""

    passed: bool = False
    reasons: tuple[str, ...] = ()

    @classmethod
    def of(cls, value: object) -> Gate:
        gate = _object(value, "gate")
        return cls(passed=bool(gate.get("passed")), reasons=_texts(gate.get("reasons"), "gate.reasons"))


@dataclass(frozen=True)
class StoredFile:
    """One file of a stored version: its checksum, size, and the shared version holding it (a
    universal model's files are stored once)."""

    sha256: str
    size: int | None = None
    shared: str | None = None


@dataclass(frozen=True)
class _Record:
    """What the stored records share: the JSON as read (``raw``), so that a key written by a
    newer version of the project (a record's field not declared yet) is still there to read."""

    @classmethod
    def _raw(cls, value: object, what: str) -> dict:
        if not isinstance(value, dict):
            raise ValueError(f"it is not a JSON object ({what})")
        return value

    @property
    def scores(self) -> ModelScores:
        """The test scores (``metrics``), typed."""
        return ModelScores.of(getattr(self, "metrics", None))


@dataclass(frozen=True)
class Pointer(_Record):
    """``models/<SYMBOL>/latest.json``: the accepted model a symbol is served from. Keys that
    older stores lack are optional (``None`` or empty); ``of`` raises ``ValueError`` naming the
    first key that is wrong. To add a key: a field here and a line in :meth:`of`."""

    symbol: str
    version: str
    checksums: dict[str, str]
    sequence_length: int
    features: tuple[str, ...]
    model_name: str | None = None
    triton_version: int | None = None
    triton_model: str | None = None
    shared: str | None = None
    shared_files: tuple[str, ...] = ()
    published: str | None = None
    contract: dict | None = None
    metrics: dict | None = None
    promoted: tuple[str, ...] = ()
    #: a model of several horizons: its rows of :data:`HORIZON_OUTPUT_NAME` and the served ones
    horizon_axis: tuple[int, ...] = ()
    horizons: tuple[int, ...] = ()
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, value: object) -> Pointer:
        p = cls._raw(value, "latest.json")
        version = _version(p.get("version"))
        symbol = _text(p.get("symbol"), "symbol", required=True)
        checksums = p.get("checksums")
        if not isinstance(checksums, dict) or not isinstance(checksums.get(MODEL_FILE), str):
            raise ValueError(f"'checksums' lacks {MODEL_FILE}")
        length = p.get("sequence_length")
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"'sequence_length' is {length!r}")
        features = p.get("features")
        if not isinstance(features, list) or not features:
            raise ValueError("'features' is not a non-empty list")
        return cls(
            symbol=str(symbol), version=version, checksums=dict(checksums), sequence_length=length,
            features=_texts(features, "features"), model_name=_text(p.get("model_name"), "model_name"),
            triton_version=_whole(p.get("triton_version"), "triton_version"),
            triton_model=_text(p.get("triton_model"), "triton_model"), shared=_text(p.get("shared"), "shared"),
            shared_files=_texts(p.get("shared_files"), "shared_files"),
            published=_text(p.get("published"), "published"),
            contract=_object(p.get("contract"), "contract") or None,
            metrics=_object(p.get("metrics"), "metrics") or None,
            promoted=_texts(p.get("promoted"), "promoted"), raw=p,
            **dict(zip(("horizon_axis", "horizons"), served_horizons(p) or ((), ()), strict=True)),
        )


@dataclass(frozen=True)
class Manifest(_Record):
    """``models/<SYMBOL>/<VERSION>/manifest.json``: one published version, accepted or rejected
    (``ModelStore.versions`` reports an accepted one that never became latest as
    ``incomplete``)."""

    symbol: str
    version: str
    status: str
    gate: Gate = field(default_factory=Gate)
    published: str | None = None
    model_name: str | None = None
    triton_version: int | None = None
    triton_model: str | None = None
    shared: str | None = None
    sequence_length: int | None = None
    features: tuple[str, ...] = ()
    contract: dict | None = None
    contract_changes: tuple[str, ...] = ()
    metrics: dict | None = None
    files: dict[str, StoredFile] = field(default_factory=dict)
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    STATUSES = ("accepted", "rejected", "incomplete")

    @classmethod
    def of(cls, value: object) -> Manifest:
        m = cls._raw(value, "manifest.json")
        status = _text(m.get("status"), "status", required=True)
        if status not in cls.STATUSES:
            raise ValueError(f"'status' is {status!r}, not one of {', '.join(cls.STATUSES)}")
        files = {}
        for name, info in _object(m.get("files"), "files").items():
            info = _object(info, f"files.{name}")
            files[str(name)] = StoredFile(sha256=str(_text(info.get("sha256"), f"files.{name}.sha256", required=True)),
                                          size=_whole(info.get("size"), f"files.{name}.size"),
                                          shared=_text(info.get("shared"), f"files.{name}.shared"))
        return cls(
            symbol=str(_text(m.get("symbol"), "symbol", required=True)), version=_version(m.get("version")),
            status=str(status), gate=Gate.of(m.get("gate")), published=_text(m.get("published"), "published"),
            model_name=_text(m.get("model_name"), "model_name"),
            triton_version=_whole(m.get("triton_version"), "triton_version"),
            triton_model=_text(m.get("triton_model"), "triton_model"), shared=_text(m.get("shared"), "shared"),
            sequence_length=_whole(m.get("sequence_length"), "sequence_length"),
            features=_texts(m.get("features"), "features"), contract=_object(m.get("contract"), "contract") or None,
            contract_changes=_texts(m.get("contract_changes"), "contract_changes"),
            metrics=_object(m.get("metrics"), "metrics") or None, files=files, raw=m,
        )


@dataclass(frozen=True)
class ModelCard(_Record):
    """``model_card.json`` of a model folder: a per-symbol model (``symbol``) or a universal one
    (``kind`` universal, ``symbols`` it was trained on; a symbol's artifacts evaluated from a
    universal model name it under ``universal``)."""

    symbol: str | None = None
    kind: str | None = None
    symbols: tuple[str, ...] = ()
    universal: dict | None = None
    created: str | None = None
    sequence_length: int | None = None
    features: tuple[str, ...] = ()
    hyperparameters: dict | None = None
    training: dict | None = None
    data: dict | None = None
    inputs: dict | None = None
    horizons: tuple[int, ...] = ()
    files: dict | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, value: object) -> ModelCard:
        c = cls._raw(value, "model_card.json")
        horizons = c.get("horizons")
        if horizons is not None and (not isinstance(horizons, list) or not all(
                isinstance(h, int) and not isinstance(h, bool) for h in horizons)):
            raise ValueError(f"'horizons' is {horizons!r}, not a list of whole hours")
        return cls(
            symbol=_text(c.get("symbol"), "symbol"), kind=_text(c.get("kind"), "kind"),
            symbols=_texts(c.get("symbols"), "symbols"), universal=_object(c.get("universal"), "universal") or None,
            created=_text(c.get("created"), "created"),
            sequence_length=_whole(c.get("sequence_length"), "sequence_length"),
            features=_texts(c.get("features"), "features"),
            hyperparameters=_object(c.get("hyperparameters"), "hyperparameters") or None,
            training=_object(c.get("training"), "training") or None, data=_object(c.get("data"), "data") or None,
            inputs=_object(c.get("inputs"), "inputs") or None, horizons=tuple(horizons or ()),
            files=_object(c.get("files"), "files") or None, raw=c,
        )

    @property
    def is_universal(self) -> bool:
        """A universal model's folder, or a symbol's artifacts evaluated from one."""
        return self.kind == "universal" or "universal" in self.raw or not self.symbol

    @property
    def trained_on(self) -> tuple[str, ...]:
        """The symbols the model was trained on."""
        if self.symbols:
            return self.symbols
        if self.universal is not None:
            return _texts(self.universal.get("trained_on"), "universal.trained_on")
        return (self.symbol,) if self.symbol else ()
