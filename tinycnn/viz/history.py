"""Learning curves: loss and accuracy per epoch, training against validation, and,
when fit recorded them, per training step (``History.batch_history``).

Training and validation curves on the same axes show over- and underfitting: a
validation loss that rises while the training loss keeps falling is overfitting.
The per-step curve is noisy (each point is one batch), which is the point: it shows
how much a single step's loss varies, and a spike the epoch means hide.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy
from matplotlib.ticker import MaxNLocator

from ..callbacks import History

METRICS = ("loss", "accuracy")


def plot_history(history):
    """Loss and accuracy per epoch (top row) and per step (bottom row, when present).

    Args:
        history: what ``model.fit`` returns (a ``History``), or a dict of per-epoch
            lists such as ``history.history`` (then no per-step row).

    Returns:
        The Figure; ``fig.tinycnn_data`` holds ``"epochs"`` (the x values, from 1),
        ``"history"`` (the per-epoch lists drawn) and ``"steps"``/``"batch_history"``.
    """
    per_epoch, per_step, epochs = _logs(history)
    metrics = [m for m in METRICS if m in per_epoch or f"val_{m}" in per_epoch]
    if not metrics:
        raise ValueError(
            f"plot_history: no 'loss' or 'accuracy' in the history (it has {sorted(per_epoch)});"
            " pass what model.fit returned."
        )
    step_metrics = [m for m in metrics if per_step.get(m)]
    rows = 2 if step_metrics else 1
    fig, axes = plt.subplots(
        rows,
        len(metrics),
        figsize=(5 * len(metrics), 3.4 * rows),
        squeeze=False,
        layout="constrained",
    )
    for ax, metric in zip(axes[0], metrics, strict=False):
        for key, style, label in (
            (metric, "o-", "training"),
            (f"val_{metric}", "s--", "validation"),
        ):
            if key in per_epoch:
                values = per_epoch[key]
                ax.plot(epochs[: len(values)], values, style, label=label)
        ax.set(title=f"{metric} per epoch", xlabel="epoch", ylabel=metric)
        if len(epochs) <= 20:  # whole epochs only
            ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend()
    steps = numpy.arange(1, max((len(per_step.get(m, [])) for m in metrics), default=0) + 1)
    for ax, metric in zip(axes[1] if rows == 2 else [], metrics, strict=False):
        if metric in step_metrics:
            values = per_step[metric]
            style = ".-" if len(values) <= 50 else "-"  # a few steps: show each one
            ax.plot(steps[: len(values)], values, style, linewidth=0.8, label="training batch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no step 1.5
            ax.set(title=f"{metric} per step (one batch each)", xlabel="step", ylabel=metric)
            ax.grid(alpha=0.3)
            ax.legend()
        else:
            ax.axis("off")
    fig.tinycnn_data = {
        "epochs": epochs,
        "history": {k: list(v) for k, v in per_epoch.items()},
        "steps": steps,
        "batch_history": {k: list(v) for k, v in per_step.items()},
    }
    return fig


def _logs(history):
    """(per-epoch dict, per-step dict, epoch numbers from 1) from a History or a dict."""
    if isinstance(history, History) or hasattr(history, "batch_history"):
        per_epoch, per_step = dict(history.history), dict(history.batch_history)
        numbers = list(getattr(history, "epoch", []))
    elif isinstance(history, dict):
        per_epoch, per_step, numbers = dict(history), {}, []
    else:
        raise TypeError(
            f"plot_history: expected what model.fit returns (a History) or its .history "
            f"dict, got {type(history).__name__}."
        )
    length = max((len(v) for v in per_epoch.values()), default=0)
    if len(numbers) == length:  # fit(initial_epoch=...) numbers them from there
        epochs = numpy.asarray(numbers) + 1
    else:
        epochs = numpy.arange(1, length + 1)
    return per_epoch, per_step, epochs
