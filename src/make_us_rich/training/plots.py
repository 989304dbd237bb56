"""PNG plots of a training run and of an evaluation (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, ax, path: str | Path, legend: str = "best") -> Path:
    ax.grid(True, alpha=0.3)
    ax.legend(loc=legend)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_training_curves(
    history: dict[str, list[float]],
    best_epoch: int,
    path: str | Path,
    initial_val_loss: float | None = None,
) -> Path:
    """Train and validation loss (pinball on volatility-normalized returns) per epoch, best epoch
    marked; epoch 0 is the untrained model (the empirical quantiles, scaled by volatility)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    epochs = np.arange(1, len(history["loss"]) + 1)
    ax.plot(epochs, history["loss"], marker="o", label="train loss")
    val_x, val_y = list(epochs), list(history["val_loss"])
    if initial_val_loss is not None:
        val_x, val_y = [0, *val_x], [initial_val_loss, *val_y]
    ax.plot(val_x, val_y, marker="o", label="validation loss")
    ax.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch ({best_epoch}, restored)")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("pinball loss (normalized returns)")
    ax.set_title("Training curves")
    return _save(plt, fig, ax, path)


def plot_fan_chart(predictions: pd.DataFrame, symbol: str, path: str | Path, hours: int = 24 * 14) -> Path:
    """The last ``hours`` of a ``predictions.csv`` table: the actual close, the median forecast
    and the 50 % / 90 % intervals (each hour forecast from the hours before it)."""
    plt = _pyplot()
    tail = predictions.tail(hours)
    t = pd.to_datetime(tail["timestamp"], utc=True)
    fig, ax = plt.subplots(figsize=(11, 4.8), dpi=100)
    ax.fill_between(t, tail["q05"], tail["q95"], color="tab:blue", alpha=0.18, step="mid", label="90 % interval")
    ax.fill_between(t, tail["q25"], tail["q75"], color="tab:blue", alpha=0.35, step="mid", label="50 % interval")
    ax.plot(t, tail["q50"], color="tab:blue", linewidth=0.9, label="median forecast")
    ax.plot(t, tail["close"], color="black", linewidth=1.1, label="actual close")
    inside = ((tail["close"] >= tail["q05"]) & (tail["close"] <= tail["q95"])).mean()
    ax.set_title(f"{symbol}: next-hour close, forecast intervals ({inside:.0%} of closes inside the 90 % band)")
    ax.set_ylabel("price")
    fig.autofmt_xdate()
    return _save(plt, fig, ax, path, legend="upper left")


def plot_calibration(reliability: pd.DataFrame, symbol: str, path: str | Path) -> Path:
    """Observed share of closes below each forecast quantile against its level, for the model
    and the baselines; a calibrated forecast lies on the diagonal."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5.5), dpi=100)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    for name in reliability.columns.drop("level"):
        style = {"linewidth": 2.2, "marker": "o"} if name == "model" else {"linewidth": 1, "marker": ".", "alpha": 0.8}
        ax.plot(reliability["level"], reliability[name], label=name, **style)
    ax.set_xlabel("quantile level")
    ax.set_ylabel("observed share of closes below it")
    ax.set_title(f"{symbol}: calibration on the test period")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    return _save(plt, fig, ax, path)
