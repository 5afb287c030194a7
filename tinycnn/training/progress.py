"""A Keras-style progress display for one epoch, built on tqdm.

In a terminal the bar is text; in Jupyter, a widget when ``ipywidgets`` is installed,
else text again. ``tqdm.auto`` makes that choice when it is imported, and warns
(``TqdmWarning: IProgress not found``) in a Jupyter without ipywidgets: so it is
imported at the first bar, quietly, never by ``import tinycnn``. The running loss
and accuracy are read (which waits for the GPU on CuPy) only when the bar redraws,
a few times a second, never at every step.
"""

from __future__ import annotations

import time
import warnings

from tqdm import TqdmExperimentalWarning, TqdmWarning

REFRESH_SECONDS = 0.25


def format_logs(logs: dict) -> str:
    """``loss: 0.3120 - accuracy: 0.8870 - val_loss: ...`` (Keras' order and style)."""
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


def progress_bar_class():
    """tqdm's bar for this place: a widget in Jupyter with ipywidgets, else text."""
    with warnings.catch_warnings():
        # without ipywidgets tqdm falls back to the text bar, which works there too
        warnings.simplefilter("ignore", TqdmWarning)
        warnings.simplefilter("ignore", TqdmExperimentalWarning)  # as tqdm.auto does
        from tqdm.autonotebook import tqdm

    return tqdm


class EpochProgress:
    """verbose=0: silent; 1: a live bar with running metrics; 2: one line per epoch."""

    def __init__(self, epoch: int, epochs: int, steps: int, verbose: int):
        self.verbose = verbose
        self.desc = f"Epoch {epoch + 1}/{epochs}"
        self.bar = None
        self.last_refresh = time.perf_counter()
        if verbose == 1:
            self.bar = progress_bar_class()(
                total=steps, desc=self.desc, unit="step", leave=True, dynamic_ncols=True
            )

    def step(self, running_metrics) -> None:
        """Advance by one step; ``running_metrics()`` is called only when the bar redraws."""
        if self.bar is None:
            return
        self.bar.update(1)
        now = time.perf_counter()
        if now - self.last_refresh >= REFRESH_SECONDS:
            self.bar.set_postfix_str(format_logs(running_metrics()), refresh=False)
            self.last_refresh = now

    def rewind(self, step: int) -> None:
        """Go back to ``step`` (the loop replays steps after a rollback on the GPU)."""
        if self.bar is not None and self.bar.n != step:
            self.bar.n = step

    def close(self, logs: dict, seconds: float) -> None:
        """The epoch's last line: its metrics and ``seconds`` of training."""
        if self.bar is not None:
            self.bar.set_postfix_str(f"{format_logs(logs)} - {seconds:.1f}s", refresh=True)
            self.bar.close()
        elif self.verbose == 2:
            print(f"{self.desc} - {seconds:.1f}s - {format_logs(logs)}", flush=True)
