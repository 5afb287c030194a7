"""Layers, one concept per file: Conv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
Flatten, Dense, ReLU, Dropout, BatchNormalization."""

import reprlib

from .activations import Activation, ReLU
from .average_pooling import (
    AveragePooling2D,
    AvgPool2D,
    GlobalAveragePooling2D,
    GlobalAvgPool2D,
)
from .base import Layer
from .batch_normalization import BatchNormalization
from .conv2d import Conv2D
from .dense import Dense
from .dropout import Dropout
from .flatten import Flatten
from .pooling import MaxPool2D, MaxPooling2D

__all__ = [
    "Activation",
    "AveragePooling2D",
    "AvgPool2D",
    "BatchNormalization",
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
        BatchNormalization,
        GlobalAveragePooling2D,
        Conv2D,
        Dense,
        Dropout,
        Flatten,
        MaxPooling2D,
        ReLU,
    )
}


class UnknownLayerError(ValueError):
    """A layer's class name is neither a built-in layer's nor one of ``custom_objects``."""


def from_config(class_name: str, config: dict, custom_objects=None) -> Layer:
    """Rebuild a layer from ``get_config()``'s output (used by ``load_model``).

    The class is a built-in one or one of ``custom_objects`` (``{"Name": cls}``, which
    take precedence): a class is never looked up from a name given by a file.
    """
    classes = {**LAYER_CLASSES, **(custom_objects or {})}
    try:
        cls = classes[class_name]
    except KeyError:
        # the name may come from a file: shown bounded (reprlib), never looked up elsewhere
        raise UnknownLayerError(
            f"the class {reprlib.repr(class_name)} is not a built-in layer: for a layer of "
            "your own, pass its class, as in load_model(path, custom_objects="
            f"{{{reprlib.repr(class_name)}: "
            f"{class_name if class_name.isidentifier() else 'YourLayer'}}})."
        ) from None
    config = dict(config)
    trainable = config.pop("trainable", True)  # an attribute, not a constructor argument
    if not isinstance(trainable, bool):
        raise ValueError(f"trainable must be True or False, got {trainable!r}.")
    try:
        layer = cls(**config)
    except TypeError as err:
        if class_name in LAYER_CLASSES and cls is LAYER_CLASSES[class_name]:
            raise
        raise TypeError(
            f"{class_name}(**config) with the keys {sorted(config)[:20]} failed: {err}. A custom layer's __init__ takes the "
            "keys of its get_config(): accept **kwargs (name, ...) and pass them to "
            "super().__init__(**kwargs), and return each constructor argument from "
            "get_config()."
        ) from err
    layer.trainable = trainable
    return layer
