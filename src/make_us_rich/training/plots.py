"""PNG plots of a training run (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(
    history: dict[str, list[float]],
    best_epoch: int,
    path: str | Path,
    initial_val_loss: float | None = None,
) -> Path:
    """Train and validation loss (MSE on scaled values) per epoch, best epoch marked; epoch 0 is
    the untrained model (persistence with the delta head)."""
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
    ax.set_ylabel("MSE (scaled close)")
    ax.set_title("Training curves")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_predictions(
    times: pd.DatetimeIndex,
    actual: np.ndarray,
    predicted: np.ndarray,
    persistence: np.ndarray,
    symbol: str,
    path: str | Path,
    rmse: tuple[float, float] | None = None,
) -> Path:
    """Actual vs predicted vs persistence next-hour close over the test period."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 4.8), dpi=100)
    ax.plot(times, actual, label="actual close", color="black", linewidth=1.2)
    ax.plot(times, persistence, label="persistence (last close)", color="tab:orange", linewidth=0.9, alpha=0.8)
    ax.plot(times, predicted, label="model", color="tab:blue", linewidth=0.9)
    title = f"{symbol}: next-hour close on the test period"
    if rmse:
        title += f" (RMSE model {rmse[0]:.2f} vs persistence {rmse[1]:.2f})"
    ax.set_title(title)
    ax.set_ylabel("price")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
