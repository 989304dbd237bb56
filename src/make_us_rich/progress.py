"""Progress of long work as plain log lines, so it reads the same in a terminal, in a KFP pod's
log in the Kubeflow dashboard, and to ``mkrich run``, which turns the lines of the step it is
running into a live progress bar."""

from __future__ import annotations

import re

_EPOCH = re.compile(r"\bepoch (\d+)/(\d+)\b")


def epoch_line(epoch: int, total: int, **values: float) -> str:
    """``epoch 3/20 loss=0.412 val_loss=0.398`` (epochs counted from 1)."""
    return " ".join([f"epoch {epoch}/{total}", *(f"{k}={v:.4g}" for k, v in values.items())])


def parse_epoch(line: str) -> tuple[int, int] | None:
    """``(epoch, total)`` from a line written by :func:`epoch_line`, else None."""
    found = _EPOCH.search(line)
    return (int(found.group(1)), int(found.group(2))) if found else None
