"""Ready-made models."""

from __future__ import annotations

from ..layers import Conv2D, Dense, Flatten, MaxPooling2D
from .sequential import Sequential


def fashion_mnist_cnn(seed=None, input_shape=(28, 28, 1), num_classes: int = 10) -> Sequential:
    """The seed network of tinycnn (862,410 parameters for 28x28x1 inputs)::

        Conv2D(64, 3x3, relu) -> MaxPool(2) -> Conv2D(64, 3x3, relu) -> MaxPool(2)
        -> Flatten (1600) -> Dense(512, relu) -> Dense(10)   (logits)

    Pair it with ``loss="sparse_categorical_crossentropy"`` (softmax cross-entropy
    on the logits). ``seed`` fixes the initial weights.
    """
    return Sequential(
        [
            Conv2D(64, 3, activation="relu", input_shape=input_shape),
            MaxPooling2D(2),
            Conv2D(64, 3, activation="relu"),
            MaxPooling2D(2),
            Flatten(),
            Dense(512, activation="relu"),
            Dense(num_classes),
        ],
        seed=seed,
    )
