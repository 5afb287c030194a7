"""Keras' ``keras.callbacks`` names: ``tinycnn.callbacks.EarlyStopping`` and friends."""

from .training.callbacks import (  # noqa: F401
    Callback,
    EarlyStopping,
    History,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
    cosine_decay,
)
