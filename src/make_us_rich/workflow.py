"""One training run in this process: :func:`make_us_rich.stages.run_stages` (the same stage
functions the pipeline's components call) with the result as a :class:`TrainingRun`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from make_us_rich.data import DataReport, validate_klines
from make_us_rich.io import read_json
from make_us_rich.training.artifacts import ARTIFACTS
from make_us_rich.training.config import TrainConfig

__all__ = ["ARTIFACTS", "TrainingRun", "train_from_klines", "train_symbol"]


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


def train_symbol(
    source: str,
    symbol: str,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    days: float | None = None,
    **options: Any,
) -> TrainingRun:
    """Fetch ``symbol`` from ``source`` and run every stage; ``options`` as for
    :func:`~make_us_rich.stages.run_stages` (interval, start, end, gate_tolerance, ...)."""
    from make_us_rich.stages import run_stages

    metrics = run_stages(str(source), symbol, out_dir, config, lookback_days=days, **options)
    return _run(out_dir, metrics)


def train_from_klines(
    klines: pd.DataFrame,
    symbol: str,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    data_report: DataReport | None = None,
    source: str = "klines",
    **options: Any,
) -> TrainingRun:
    """Run the stages after fetch on klines already in memory (validated here when no
    ``data_report`` comes with them)."""
    from make_us_rich.stages import run_stages

    if data_report is None:
        klines, data_report = validate_klines(klines, interval=options.get("interval", "1h"))
    metrics = run_stages(source, symbol, out_dir, config, klines=(klines, data_report), **options)
    return _run(out_dir, metrics)
