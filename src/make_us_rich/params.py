"""Every parameter of a training run, declared once: name, type, default and help.

The training hyperparameters are the fields of :class:`~make_us_rich.training.TrainConfig`
(help text in their metadata); the data, gate and store parameters are declared here. The CLI's
flags (``mkrich train``, ``run``, ``submit``, ``schedule``) are generated from these
declarations, and the pipeline's signature takes its defaults from :data:`PIPELINE_DEFAULTS`
(``tests/pipeline/test_params.py`` fails on any difference in names or types).
"""

from __future__ import annotations

import argparse
import builtins
from dataclasses import dataclass, fields
from typing import Any

from make_us_rich.contract import DEFAULT_KEEP
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


def _train_params() -> tuple[Param, ...]:
    out = []
    for f in fields(TrainConfig):
        default = f.default_factory() if callable(f.default_factory) else f.default
        typ = tuple if isinstance(default, tuple) else type(default)
        out.append(Param(f.name, typ, default, f.metadata["help"], f.metadata.get("flag"),
                         f.metadata.get("choices")))
    return tuple(out)


#: Where the data comes from and how strict its validation is.
DATA_PARAMS: tuple[Param, ...] = (
    Param("interval", str, "1h", "kline interval (Binance's)"),
    Param("lookback_days", float, 365.0,
          "days of history per run (0: the whole file for replay sources)"),
    Param("max_missing_fraction", float, 0.01,
          "fail when more than this fraction of the expected candles is missing"),
    Param("api_url", str, "", "Binance REST base URL (empty: $BINANCE_API_URL or Binance)"),
)
#: The training hyperparameters (from TrainConfig).
TRAIN_PARAMS: tuple[Param, ...] = _train_params()
#: The promotion gate.
GATE_PARAMS: tuple[Param, ...] = (
    Param("gate_tolerance", float, DEFAULT_TOLERANCE,
          "how much worse than a baseline a model may be and still be published: mean pinball "
          "loss vs the empirical quantiles, median RMSE vs persistence (0.02 = 2 %)"),
    Param("coverage_min", float, COVERAGE_BAND[0], "lowest accepted test coverage of the 90 % interval"),
    Param("coverage_max", float, COVERAGE_BAND[1], "highest accepted test coverage of the 90 % interval"),
)
STORE_PARAMS: tuple[Param, ...] = (
    Param("keep", int, DEFAULT_KEEP, "model versions to retain per symbol in the store"),
    Param("allow_contract_change", bool, False,
          "promote a model whose serving contract (input shape, features, outputs, quantiles) breaks "
          "the clients of the latest one; running servers keep the old model until restarted"),
)
PIPELINE_PARAMS: tuple[Param, ...] = DATA_PARAMS + TRAIN_PARAMS + GATE_PARAMS + STORE_PARAMS
#: The universal pipeline's own (issue 21): it takes PIPELINE_PARAMS and these.
UNIVERSAL_PARAMS: tuple[Param, ...] = (
    Param("concurrency", int, 4, "symbols fetched at once (within Binance's request-weight limit)"),
    Param("eval_batch", int, 10, "symbols evaluated and published per task (a process start and its imports "
          "are paid once per batch)"),
    Param("time_budget", float, 600.0, "seconds of training at most, so that the hourly cycle fits in the "
          "hour (0: no limit; the best weights seen are kept)"),
    Param("warm_start", bool, True, "start from the last accepted universal model in the store (false: "
          "train in full)"),
)
UNIVERSAL_DEFAULTS: dict[str, Any] = {p.name: p.pipeline_default for p in UNIVERSAL_PARAMS}
#: The pipelines a cluster can run (``mkrich submit/schedule --pipeline``), here so that the CLI
#: names them without importing Kubeflow: one model per symbol, or one for every symbol.
PIPELINE_NAME, UNIVERSAL_PIPELINE_NAME = PIPELINE_NAMES = ("hourly-training", "universal-training")
DEFAULT_PIPELINE = PIPELINE_NAME
PIPELINE_DEFAULTS: dict[str, Any] = {p.name: p.pipeline_default for p in PIPELINE_PARAMS}
BY_NAME: dict[str, Param] = {p.name: p for p in PIPELINE_PARAMS}


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
