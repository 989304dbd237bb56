"""Every parameter of a training run, declared once: name, type, default and help.

The training hyperparameters are the fields of :class:`~make_us_rich.training.TrainConfig`
(help text in their metadata); the data, gate and store parameters are declared here. The CLI's
flags (``mkrich train``, ``run``, ``submit``, ``schedule``) are generated from these
declarations, and the pipeline's signature takes its defaults from :data:`PIPELINE_DEFAULTS`
(``tests/pipeline/test_params.py`` fails on any difference in names or types). :class:`RunSpec`
holds one run's values, typed, in the same parts (what ``mkrich train``, ``run_stages`` and
``run_universal`` take).
"""

from __future__ import annotations

import argparse
import builtins
from dataclasses import dataclass, field, fields, replace
from typing import Any

from make_us_rich.contract import DEFAULT_KEEP
from make_us_rich.data.klines import DEFAULT_INTERVAL, DEFAULT_MAX_MISSING_FRACTION
from make_us_rich.errors import ConfigError
from make_us_rich.training.config import TrainConfig
from make_us_rich.training.evaluate import COVERAGE_BAND, DEFAULT_TOLERANCE


@dataclass(frozen=True)
class Param:
    name: str
    type: type
    default: Any
    help: str
    flag: str | None = None
    choices: tuple[str, ...] | None = None

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def pipeline_type(self) -> builtins.type:
        """KFP parameters are scalars: a tuple of ints travels as "64" or "128,128"."""
        return str if self.type is tuple else self.type

    @property
    def pipeline_default(self) -> Any:
        if isinstance(self.default, tuple):
            return ",".join(str(v) for v in self.default)
        return self.default

    def parse(self, text: str) -> Any:
        """A CLI (or pipeline) value: a tuple as comma-separated items, a bool as true/false."""
        if self.type is tuple:
            item = type(self.default[0]) if self.default else str
            return tuple(item(v.strip()) for v in str(text).split(",") if v.strip())
        if self.type is bool:
            if isinstance(text, bool):
                return text
            value = str(text).strip().lower()
            if value not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"{self.name} takes true or false, not {text!r}")
            return value in ("true", "1", "yes")
        return self.type(text)


def _param(default: Any, help: str) -> Any:
    """A run parameter: its default and help, the one declaration the CLI's flags, the pipeline's
    signature and :class:`RunSpec` are built from."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class DataSpec:
    """Where the data comes from and how strict its validation is."""

    interval: str = _param(DEFAULT_INTERVAL, "kline interval (Binance's)")
    lookback_days: float = _param(365.0, "days of history per run (0: the whole file for replay sources)")
    max_missing_fraction: float = _param(
        DEFAULT_MAX_MISSING_FRACTION, "fail when more than this fraction of the expected candles is missing")
    api_url: str = _param("", "Binance REST base URL (empty: $BINANCE_API_URL or Binance)")


@dataclass(frozen=True)
class GateSpec:
    """The promotion gate."""

    gate_tolerance: float = _param(
        DEFAULT_TOLERANCE,
        "how much worse than a baseline a model may be and still be published: mean pinball "
        "loss vs the empirical quantiles, median RMSE vs persistence (0.02 = 2 %)")
    coverage_min: float = _param(COVERAGE_BAND[0], "lowest accepted test coverage of the 90 % interval")
    coverage_max: float = _param(COVERAGE_BAND[1], "highest accepted test coverage of the 90 % interval")

    @property
    def coverage_band(self) -> tuple[float, float]:
        return (self.coverage_min, self.coverage_max)


@dataclass(frozen=True)
class StoreSpec:
    """What the store keeps and what it promotes."""

    keep: int = _param(DEFAULT_KEEP, "model versions to retain per symbol in the store")
    allow_contract_change: bool = _param(
        False,
        "promote a model whose serving contract (input shape, features, outputs, quantiles) breaks "
        "the clients of the latest one; running servers keep the old model until restarted")


@dataclass(frozen=True)
class UniversalSpec:
    """The universal model's run (issue 21): one model on the pooled data of many symbols."""

    concurrency: int = _param(4, "symbols fetched at once (within Binance's request-weight limit)")
    eval_batch: int = _param(10, "symbols evaluated and published per task (a process start and its imports "
                             "are paid once per batch)")
    time_budget: float = _param(600.0, "seconds of training at most, so that the hourly cycle fits in the "
                                "hour (0: no limit; the best weights seen are kept)")
    warm_start: bool = _param(True, "start from the last accepted universal model in the store (false: "
                              "train in full)")


def _params(cls: type) -> tuple[Param, ...]:
    out = []
    for f in fields(cls):
        default = f.default_factory() if callable(f.default_factory) else f.default
        typ = tuple if isinstance(default, tuple) else type(default)
        out.append(Param(f.name, typ, default, f.metadata["help"], f.metadata.get("flag"),
                         f.metadata.get("choices")))
    return tuple(out)


#: Where the data comes from and how strict its validation is.
DATA_PARAMS: tuple[Param, ...] = _params(DataSpec)
#: The training hyperparameters (from TrainConfig).
TRAIN_PARAMS: tuple[Param, ...] = _params(TrainConfig)
#: The promotion gate.
GATE_PARAMS: tuple[Param, ...] = _params(GateSpec)
STORE_PARAMS: tuple[Param, ...] = _params(StoreSpec)
PIPELINE_PARAMS: tuple[Param, ...] = DATA_PARAMS + TRAIN_PARAMS + GATE_PARAMS + STORE_PARAMS
#: The universal pipeline's own (issue 21): it takes PIPELINE_PARAMS and these.
UNIVERSAL_PARAMS: tuple[Param, ...] = _params(UniversalSpec)
UNIVERSAL_DEFAULTS: dict[str, Any] = {p.name: p.pipeline_default for p in UNIVERSAL_PARAMS}
#: ``mkrich evaluate``: the period scored when none is given, and the days loaded before it (the
#: GARCH-t and HAR baselines refit monthly on the trailing 365 days, with less they are weaker than
#: in training's evaluation, plus the features' warm-up)
DEFAULT_PERIOD_DAYS = 30.0
DEFAULT_HISTORY_DAYS = 400.0
#: The pipelines a cluster can run (``mkrich submit/schedule --pipeline``), here so that the CLI
#: names them without importing Kubeflow: one model per symbol, or one for every symbol.
PIPELINE_NAME, UNIVERSAL_PIPELINE_NAME = PIPELINE_NAMES = ("hourly-training", "universal-training")
DEFAULT_PIPELINE = PIPELINE_NAME
PIPELINE_DEFAULTS: dict[str, Any] = {p.name: p.pipeline_default for p in PIPELINE_PARAMS}
BY_NAME: dict[str, Param] = {p.name: p for p in PIPELINE_PARAMS}
_PARTS = {"data": DATA_PARAMS, "train": TRAIN_PARAMS, "gate": GATE_PARAMS, "store": STORE_PARAMS,
          "universal": UNIVERSAL_PARAMS}


def _typed(p: Param):
    """``p.parse`` for argparse: its message in the one-line error (not "invalid parse value")."""

    def parse(text: str) -> Any:
        try:
            return p.parse(text)
        except ValueError as exc:
            kind = {int: "a whole number", float: "a number"}.get(p.type)
            raise argparse.ArgumentTypeError(f"takes {kind}, not {text!r}" if kind else str(exc)) from None

    parse.__name__ = p.type.__name__
    return parse


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, params: tuple[Param, ...]) -> None:
    """One flag per parameter; unset flags stay ``None`` (= the declared default), so a preset
    or the pipeline's own default applies."""
    for p in params:
        if p.type is bool:  # a switch: --flag / --no-flag (and --flag true|false, as the pipeline)
            parser.add_argument(
                p.cli_flag, dest=p.name, type=_typed(p), default=None, nargs="?", const=True,
                metavar="true|false", help=f"{p.help} (default: {p.pipeline_default})".replace("%", "%%"),
            )
            parser.add_argument("--no-" + p.cli_flag.removeprefix("--"), dest=p.name, default=None,
                                action="store_false", help=f"the same as {p.cli_flag} false")
            continue
        parser.add_argument(
            p.cli_flag, dest=p.name, type=_typed(p), default=None, choices=p.choices,
            help=f"{p.help} (default: {p.pipeline_default})".replace("%", "%%"),
        )


def given(args: argparse.Namespace, params: tuple[Param, ...], *, pipeline: bool = False) -> dict[str, Any]:
    """The parameters set on the command line; with ``pipeline``, typed as the pipeline takes
    them (a tuple as "128,128")."""
    out = {}
    for p in params:
        value = getattr(args, p.name, None)
        if value is not None:
            out[p.name] = ",".join(str(v) for v in value) if pipeline and isinstance(value, tuple) else value
    return out


def train_config(**values: Any) -> TrainConfig:
    """A TrainConfig from pipeline parameters (tuples as comma-separated strings)."""
    for name, value in values.items():
        if BY_NAME[name].type is tuple and isinstance(value, str):
            values[name] = BY_NAME[name].parse(value)
    return TrainConfig.from_dict(values)


@dataclass(frozen=True)
class RunSpec:
    """Every parameter of one run, typed: what ``mkrich train``, :func:`~make_us_rich.stages.run_stages`,
    :func:`~make_us_rich.stages.run_universal` and the pipelines take. Left out, a part has the
    declared defaults above (the pipeline's); :meth:`of` builds one from the flat names the CLI's
    flags and the pipeline's parameters use."""

    data: DataSpec = field(default_factory=DataSpec)
    train: TrainConfig = field(default_factory=TrainConfig)
    gate: GateSpec = field(default_factory=GateSpec)
    store: StoreSpec = field(default_factory=StoreSpec)
    universal: UniversalSpec = field(default_factory=UniversalSpec)

    @classmethod
    def of(cls, train: TrainConfig | None = None, **values: Any) -> RunSpec:
        """A spec from a training config and parameters by their flat names (``gate_tolerance``,
        ``interval``, ``keep``, ...); ``None`` values keep the default."""
        return cls(train=train or TrainConfig()).with_params(**values)

    def with_params(self, **values: Any) -> RunSpec:
        """This spec with the parameters given by flat name changed (``None``: unchanged);
        strings are parsed as the pipeline passes them (a tuple as "128,128")."""
        known = {p.name: part for part, params in _PARTS.items() for p in params}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"unknown run parameter(s) {unknown}; known: {sorted(known)}")
        changes: dict[str, dict[str, Any]] = {}
        for name, value in values.items():
            if value is None:
                continue
            param = BY_NAME.get(name) or next(p for p in UNIVERSAL_PARAMS if p.name == name)
            if isinstance(value, str) and param.type is not str:
                value = param.parse(value)
            changes.setdefault(known[name], {})[name] = value
        parts: dict[str, Any] = {
            part: (self.train.with_overrides(**v) if part == "train" else replace(getattr(self, part), **v))
            for part, v in changes.items()}
        return replace(self, **parts)

    def params(self) -> dict[str, Any]:
        """The flat parameters (the inverse of :meth:`with_params`)."""
        return {p.name: getattr(getattr(self, part), p.name) for part, params in _PARTS.items() for p in params}
