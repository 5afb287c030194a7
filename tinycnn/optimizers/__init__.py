"""Optimizers: SGD (with momentum) and Adam, with Keras defaults."""

from .adam import Adam
from .base import Optimizer
from .sgd import SGD

__all__ = ["SGD", "Adam", "Optimizer", "get", "from_config"]

_BY_NAME = {"sgd": SGD, "adam": Adam}


def get(optimizer):
    """An optimizer from a name ("adam", "sgd") with default settings, or the object itself."""
    if isinstance(optimizer, str):
        try:
            return _BY_NAME[optimizer.lower()]()
        except KeyError:
            raise ValueError(
                f"Unknown optimizer {optimizer!r}: expected one of {sorted(_BY_NAME)}."
            ) from None
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"Expected an optimizer or its name, got {type(optimizer).__name__}.")
    return optimizer


def from_config(config: dict) -> Optimizer:
    """Rebuild an optimizer from ``get_config()``'s output."""
    config = dict(config)
    name = config.pop("name").lower()
    if name not in _BY_NAME:
        raise ValueError(f"Unknown optimizer {name!r} in the saved model.")
    return _BY_NAME[name](**config)
