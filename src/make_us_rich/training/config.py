"""Hyperparameters of the forecaster: one typed config with documented defaults, and presets.

No TensorFlow here: the pipeline and the CLI read and validate configs without the trainer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from make_us_rich.errors import ConfigError
from make_us_rich.preprocessing.pipeline import DEFAULT_TEST_SIZE, DEFAULT_VAL_SIZE


def _opt(default: Any, help: str, **cli: Any) -> Any:
    """A config field with its help text (and CLI hints): the one declaration the CLI flags and
    the pipeline's parameters are built from (:mod:`make_us_rich.params`)."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass(frozen=True)
class TrainConfig:
    """How one model is trained. Defaults: the ``fast`` preset (see README "Choosing the
    defaults": quality per minute measured on ../shared/data)."""

    sequence_length: int = _opt(24, "hours of history in one window")
    lstm_units: tuple[int, ...] = _opt(
        (64,), "units of each LSTM layer; several values stack layers, e.g. 128,128", flag="--units"
    )
    dropout: float = _opt(0.0, "dropout after each LSTM layer")
    learning_rate: float = _opt(1e-3, "Adam learning rate")
    batch_size: int = _opt(64, "batch size")
    max_epochs: int = _opt(30, "maximum epochs (early stopping usually ends training sooner)", flag="--epochs")
    patience: int = _opt(5, "epochs without validation-loss improvement before stopping (best weights restored)")
    head: str = _opt(
        "delta",
        "delta: a change added to the last close, starting at zero, so the untrained model is "
        "persistence; level: the scaled close itself",
        choices=("delta", "level"),
    )
    seed: int = _opt(42, "random seed (Python, NumPy, TensorFlow)")
    test_size: float = _opt(DEFAULT_TEST_SIZE, "fraction of the rows held out, chronologically last, for the test")
    val_size: float = _opt(DEFAULT_VAL_SIZE, "fraction of the train windows, the latest, used for early stopping")

    def __post_init__(self) -> None:
        object.__setattr__(self, "lstm_units", tuple(int(u) for u in self.lstm_units))
        problems = []
        if self.sequence_length < 1:
            problems.append("sequence_length must be >= 1")
        if not self.lstm_units or min(self.lstm_units) < 1:
            problems.append("lstm_units needs at least one layer of >= 1 unit")
        if not 0.0 <= self.dropout < 1.0:
            problems.append("dropout must be in [0, 1)")
        if self.learning_rate <= 0:
            problems.append("learning_rate must be > 0")
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 0:
            problems.append("batch_size and max_epochs must be >= 1, patience >= 0")
        if self.head not in ("delta", "level"):
            problems.append("head must be 'delta' or 'level'")
        for name in ("test_size", "val_size"):
            if not 0.0 < getattr(self, name) < 1.0:
                problems.append(f"{name} must be in (0, 1)")
        if problems:
            raise ConfigError("invalid training config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lstm_units"] = list(self.lstm_units)
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


#: Named presets. ``fast`` is the default; ``large`` is the original seed project's model
#: (2 x LSTM(128) on 120-hour windows), ~19x slower per epoch for no measured gain.
PRESETS: dict[str, TrainConfig] = {
    "fast": TrainConfig(),
    "large": TrainConfig(sequence_length=120, lstm_units=(128, 128), dropout=0.2),
    "tiny": TrainConfig(sequence_length=12, lstm_units=(8,), max_epochs=2, patience=1),
}


def preset(name: str) -> TrainConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}") from None
