"""One training run in this process: :func:`make_us_rich.stages.run_stages` (the same stage
functions the pipeline's components call) with the result as a :class:`TrainingRun`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from make_us_rich.data import DataReport, validate_klines
from make_us_rich.io import read_json
from make_us_rich.params import RunSpec
from make_us_rich.training.artifacts import ARTIFACTS
from make_us_rich.training.config import TrainConfig

__all__ = ["ARTIFACTS", "RunSpec", "TrainingRun", "as_spec", "train_from_klines", "train_symbol"]


@dataclass
class TrainingRun:
    out_dir: Path
    metrics: dict[str, Any]
    card: dict[str, Any]

    @property
    def passed_gate(self) -> bool:
        return bool(self.metrics["gate"]["passed"])


def _run(out_dir: str | Path, metrics: dict[str, Any]) -> TrainingRun:
    out = Path(out_dir)
    return TrainingRun(out_dir=out, metrics=metrics, card=read_json(out / "model_card.json"))


def as_spec(spec: RunSpec | TrainConfig | None, **params: Any) -> RunSpec:
    """A run spec from a spec, or a training config alone (the other parameters at their
    defaults), with ``params`` (flat names: ``gate_tolerance``, ``interval``, ...) changed."""
    base = spec if isinstance(spec, RunSpec) else RunSpec(train=spec or TrainConfig())
    return base.with_params(**params)


def train_symbol(
    source: str,
    symbol: str,
    out_dir: str | Path,
    spec: RunSpec | TrainConfig | None = None,
    *,
    days: float | None = None,
    start: str | None = None,
    end: str | None = None,
    progress: bool = False,
    tensorboard_dir: str | Path | None = None,
    **params: Any,
) -> TrainingRun:
    """Fetch ``symbol`` from ``source`` (the last ``days`` up to ``end``, or from ``start``;
    neither: the whole file of a replay source) and run every stage
    (:func:`~make_us_rich.stages.run_stages`); ``params`` change the spec by flat name."""
    from make_us_rich.stages import run_stages

    run = as_spec(spec, **params).with_params(lookback_days=days or 0.0)
    metrics = run_stages(str(source), symbol, out_dir, run, start=start, end=end, progress=progress,
                         tensorboard_dir=tensorboard_dir)
    return _run(out_dir, metrics)


def train_from_klines(
    klines: pd.DataFrame,
    symbol: str,
    out_dir: str | Path,
    spec: RunSpec | TrainConfig | None = None,
    *,
    data_report: DataReport | None = None,
    source: str = "klines",
    **params: Any,
) -> TrainingRun:
    """Run the stages after fetch on klines already in memory (validated here when no
    ``data_report`` comes with them)."""
    from make_us_rich.stages import run_stages

    run = as_spec(spec, **params)
    if data_report is None:
        klines, data_report = validate_klines(klines, interval=run.data.interval)
    metrics = run_stages(source, symbol, out_dir, run, klines=(klines, data_report))
    return _run(out_dir, metrics)
