"""Training: the fit/evaluate/predict loop and its callbacks.

``loop.py`` is the loop itself (one step, one epoch, fit); beside it, what it checks
before the first step (``checks.py``), Ctrl-C (``interrupt.py``), how a GPU catches a
diverging loss (``rollback.py``) and the progress bar (``progress.py``). The callbacks it
calls live in ``tinycnn/callbacks.py``.
The model is always passed in: nothing here imports ``tinycnn.models``.
"""

from ..callbacks import (  # their home is tinycnn/callbacks.py (Keras's name)
    Callback,
    EarlyStopping,
    History,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
    cosine_decay,
)
from .loop import evaluate, fit, predict, train_on_batch, train_step

__all__ = [
    "Callback",
    "EarlyStopping",
    "History",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
    "cosine_decay",
    "evaluate",
    "fit",
    "predict",
    "train_on_batch",
    "train_step",
]
