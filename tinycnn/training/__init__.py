"""Training: the fit/evaluate/predict loop and its callbacks."""

from .callbacks import (
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
