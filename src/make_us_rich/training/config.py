"""Hyperparameters of the forecaster: one typed config with documented defaults, and presets.

No TensorFlow here: the pipeline and the CLI read and validate configs without the trainer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from make_us_rich.errors import ConfigError
from make_us_rich.preprocessing.split import DEFAULT_TEST_SIZE, DEFAULT_VAL_SIZE
from make_us_rich.preprocessing.windows import INPUT_KINDS

#: the longest forecast horizon, hours (a month; as :data:`make_us_rich.horizons.MAX_HORIZON`)
MAX_HORIZON = 720


def _opt(default: Any, help: str, **cli: Any) -> Any:
    """A config field with its help text (and CLI hints): the one declaration the CLI flags and
    the pipeline's parameters are built from (:mod:`make_us_rich.params`)."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass(frozen=True)
class TrainConfig:
    """How one quantile forecaster is trained. Defaults chosen on validation quarters only (2022 Q3 and Q4,
    BTCUSDT and BTCEUR, each trained on the year before; bench/bench_quantile.py), by the mean
    pinball loss ratio vs the empirical-quantile baseline A over those 4 periods:

    ===================================  ======  ===================================
    variant                              ratio   note
    ===================================  ======  ===================================
    median zero + HAR average (default)  0.9593  ``blend_har`` in the graph
    learned median + HAR average         0.9594
    median zero, LSTM alone              0.9616  the median close is persistence
    learned median, LSTM alone           0.9616
    24 h window                          0.9645
    LSTM(16)                             0.9655
    without volume / trade ratios        0.9655
    spread calibration                   0.9643  ``calibrate``
    ===================================  ======  ===================================

    ``max_epochs`` 20 with ``patience`` 3 did not bind on validation (40 gave identical models);
    one retrain on a year takes 12-53 s on the shared 2-core machine. The 720 h normalization window and
    the feature windows were not varied (fixed in :mod:`~make_us_rich.preprocessing.volatility`).
    Differences below ~0.003 are within noise (block-bootstrap intervals are +-0.01-0.03).
    """

    sequence_length: int = _opt(48, "hours of history in one window")
    lstm_units: int = _opt(32, "units of the LSTM layer", flag="--units")
    inputs: tuple[str, ...] = _opt(
        tuple(INPUT_KINDS),
        "the LSTM's inputs, comma-separated (volatilities, returns and activity ratios of the "
        "features stage, made stationary by the trailing volatility)",
    )
    median: str = _opt(
        "zero",
        "learned: the median return is trained like the other quantiles; zero: the median close "
        "is persistence and only the spread is learned",
        choices=("learned", "zero"),
    )
    calibrate: bool = _opt(
        False, "after training, rescale each quantile's distance from the median on the validation windows"
    )
    blend_har: bool = _opt(
        True, "serve the average of the LSTM's quantiles and a linear HAR model's (in the graph)"
    )
    learning_rate: float = _opt(1e-3, "Adam learning rate")
    batch_size: int = _opt(128, "batch size")
    max_epochs: int = _opt(20, "maximum epochs (early stopping usually ends training sooner)", flag="--epochs")
    patience: int = _opt(3, "epochs without validation-loss improvement before stopping (best weights restored)")
    seed: int = _opt(42, "random seed (Python, NumPy, TensorFlow)")
    test_size: float = _opt(DEFAULT_TEST_SIZE, "fraction of the rows held out, chronologically last, for the test")
    val_size: float = _opt(DEFAULT_VAL_SIZE, "fraction of the train windows, the latest, used for early stopping")
    horizons: tuple[int, ...] = _opt(
        (1,),
        "hours ahead to forecast, comma-separated, 1 among them, e.g. 1,4,24: one quantile output "
        "per horizon, each gated on its own (a model of several symbols only; the universal preset "
        "and pipeline: 1,4,24)",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        problems = []
        try:
            object.__setattr__(self, "horizons", tuple(sorted({int(h) for h in self.horizons})))
        except (TypeError, ValueError):
            problems.append(f"horizons must be whole hours, e.g. 1,4,24; got {self.horizons!r}")
        else:
            if not self.horizons or self.horizons[0] != 1 or self.horizons[-1] > MAX_HORIZON:
                problems.append(f"horizons must be 1 to {MAX_HORIZON} hours including 1 (the next hour), "
                                f"e.g. 1,4,24; got {list(self.horizons)}")
        if self.sequence_length < 1:
            problems.append("sequence_length must be >= 1")
        if self.lstm_units < 1:
            problems.append("lstm_units must be >= 1")
        unknown = sorted(set(self.inputs) - set(INPUT_KINDS))
        if unknown or not self.inputs:
            problems.append(f"inputs must be a non-empty subset of {list(INPUT_KINDS)} (unknown: {unknown})")
        if self.median not in ("learned", "zero"):
            problems.append("median must be 'learned' or 'zero'")
        if self.learning_rate <= 0:
            problems.append("learning_rate must be > 0")
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 0:
            problems.append("batch_size and max_epochs must be >= 1, patience >= 0")
        if not 0.0 <= self.test_size < 1.0:
            problems.append("test_size must be in [0, 1) (0: no test period, universal training only)")
        if not 0.0 < self.val_size < 1.0:
            problems.append("val_size must be in (0, 1)")
        if problems:
            raise ConfigError("invalid training config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["inputs"] = list(self.inputs)
        d["horizons"] = list(self.horizons)
        return d

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        unknown = sorted(k for k in overrides if k not in {f.name for f in fields(self)})
        if unknown:
            raise ConfigError(f"unknown training option(s) {unknown}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


#: Named presets. ``fast`` is the default of a per-symbol model; ``universal`` of a model of many
#: symbols (``mkrich train --symbols``, the universal pipeline); ``tiny`` is for tests and demos
#: (seconds, not quality). ``universal``, chosen on validation (2022, 20 market pairs; research notes
#: of issue 21): the latest 5 % of each symbol's windows for early stopping (20 % of a 5-year symbol
#: would hold back its most relevant year), batch 256, at most 4 epochs with patience 1 (the
#: validation loss improves < 0.1 % after epoch 2-3 on 200k+ windows); the horizons 1, 4 and 24 h
#: (issue 22; docs/horizons.md). A per-symbol model forecasts the next hour only.
PRESETS: dict[str, TrainConfig] = {
    "fast": TrainConfig(),
    "universal": TrainConfig(val_size=0.05, batch_size=256, max_epochs=4, patience=1, horizons=(1, 4, 24)),
    "tiny": TrainConfig(sequence_length=12, lstm_units=8, batch_size=64, max_epochs=2, patience=1),
}
UNIVERSAL = PRESETS["universal"]


def preset(name: str) -> TrainConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}") from None
