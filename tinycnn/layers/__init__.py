"""Layers, one concept per file: Conv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
Flatten, Dense, ReLU, Dropout."""

from .activations import Activation, ReLU
from .average_pooling import (
    AveragePooling2D,
    AvgPool2D,
    GlobalAveragePooling2D,
    GlobalAvgPool2D,
)
from .base import Layer
from .conv2d import Conv2D
from .dense import Dense
from .dropout import Dropout
from .flatten import Flatten
from .pooling import MaxPool2D, MaxPooling2D

__all__ = [
    "Activation",
    "AveragePooling2D",
    "AvgPool2D",
    "GlobalAveragePooling2D",
    "GlobalAvgPool2D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "Layer",
    "MaxPool2D",
    "MaxPooling2D",
    "ReLU",
]

#: Class name -> class, to rebuild a saved model from its configuration.
LAYER_CLASSES = {
    cls.__name__: cls
    for cls in (
        Activation,
        AveragePooling2D,
        GlobalAveragePooling2D,
        Conv2D,
        Dense,
        Dropout,
        Flatten,
        MaxPooling2D,
        ReLU,
    )
}


def from_config(class_name: str, config: dict) -> Layer:
    """Rebuild a layer from ``get_config()``'s output (used by ``load_model``)."""
    try:
        cls = LAYER_CLASSES[class_name]
    except KeyError:
        raise ValueError(
            f"Unknown layer type {class_name!r} in the saved model; "
            f"known types: {sorted(LAYER_CLASSES)}."
        ) from None
    config = dict(config)
    trainable = config.pop("trainable", True)  # an attribute, not a constructor argument
    if not isinstance(trainable, bool):
        raise ValueError(f"trainable must be True or False, got {trainable!r}.")
    layer = cls(**config)
    layer.trainable = trainable
    return layer
