"""Losses. ``get("sparse_categorical_crossentropy")`` gives the Keras-named one."""

from .softmax_cross_entropy import SoftmaxCrossEntropy

__all__ = ["SoftmaxCrossEntropy", "get"]

_BY_NAME = {
    "sparse_categorical_crossentropy": SoftmaxCrossEntropy,
    "softmax_cross_entropy": SoftmaxCrossEntropy,
}


def get(loss):
    """A loss object from a name (as Keras accepts) or the object itself."""
    if isinstance(loss, str):
        try:
            return _BY_NAME[loss]()
        except KeyError:
            raise ValueError(
                f"Unknown loss {loss!r}: expected one of {sorted(_BY_NAME)}."
            ) from None
    if not (hasattr(loss, "forward") and hasattr(loss, "backward")):
        raise TypeError(f"A loss needs forward() and backward(); got {type(loss).__name__}.")
    return loss
