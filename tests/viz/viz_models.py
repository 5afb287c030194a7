"""Small hand-made models for the viz tests (not the seed network: the pictures must
work for any Sequential)."""

from __future__ import annotations

import numpy as np

import tinycnn
from tinycnn.layers import Conv2D, Dense, Flatten, MaxPooling2D


def small_cnn(seed=0, input_shape=(12, 12, 1), classes=3):
    """A small CNN that is not the seed network: conv (4) -> pool -> conv (6) -> dense."""
    return tinycnn.Sequential(
        [
            Conv2D(4, 3, activation="relu", input_shape=input_shape),
            MaxPooling2D(2),
            Conv2D(6, 2, activation="relu"),
            Flatten(),
            Dense(classes),
        ],
        seed=seed,
    )


def linear_model(weights: np.ndarray, input_shape):
    """Flatten -> Dense(classes) with the given weights ``(H*W*C, classes)`` and zero
    bias: class c's score is sum(x * weights[:, c]), a model we can read by hand."""
    model = tinycnn.Sequential([Flatten(input_shape=input_shape), Dense(weights.shape[1])])
    model.layers[1].set_weights([weights.astype("float32"), np.zeros(weights.shape[1], "float32")])
    return model
