"""What fit, evaluate and predict check before their first step, each error with its fix.

The data is checked once here, as a whole, so that the layers and the loss need not
check every batch again (the loop calls them with ``check_finite=False``/``check=False``).
"""

from __future__ import annotations

import numpy

from .. import backend
from ..callbacks import Callback
from ..losses.softmax_cross_entropy import check_class_labels


def require_compiled(model, what: str) -> None:
    if model.optimizer is None or model.loss is None:
        raise RuntimeError(
            f"{what}: compile the model first, e.g. "
            "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy')."
        )


def check_data(model, x, y, what: str):
    """Images ``x`` (N, *input_shape) of floats, all finite, and integer labels ``y`` (N,)
    in [0, classes), or ``y=None``. Builds the model from ``x`` if it has no input shape.

    Returns ``(x, y)`` where they were (no copy to another device: that is done once,
    later); a ``y`` that is not an array of a backend (a list) becomes a NumPy array.
    """
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(
            f"{what}: x must be an array of images (N, H, W, C), got {type(x).__name__}."
        )
    if x.dtype.kind != "f":
        raise TypeError(
            f"{what}: x must hold floats, got {x.dtype}. Scale uint8 images with "
            "tinycnn.preprocessing.prepare_images(x) (to [0, 1], with a channel axis)."
        )
    model.check_sample_shape(x, what)  # builds the model from x if it has no input_shape
    xp = backend.get_array_module(x)
    if not bool(xp.isfinite(x).all()):
        raise ValueError(f"{what}: x contains NaN or infinite values.")
    if y is not None:
        if backend.backend_of(y) == "numpy":  # a NumPy array, or a list of labels
            y = numpy.asarray(y)
        # the loss's own rules, checked once here rather than at every step
        check_class_labels(y, x.shape[0], model.output_shapes()[-1][-1], what, "y")
    return x, y


def check_validation_data(model, validation_data):
    """``fit(validation_data=(x_val, y_val))``: a pair, checked as ``check_data`` does."""
    if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
        raise ValueError("fit: validation_data must be a pair (x_val, y_val).")
    x_val, y_val = check_data(model, *validation_data, "fit (validation_data)")
    require_samples(x_val, "fit: validation_data")
    return x_val, y_val


def require_samples(x, what: str) -> None:
    if len(x) == 0:
        raise ValueError(f"{what} has no samples: a mean loss over 0 samples means nothing.")


def is_int(value) -> bool:
    return isinstance(value, (int, numpy.integer)) and not isinstance(value, bool)


def check_batch_size(batch_size, what: str) -> None:
    if not is_int(batch_size):
        raise TypeError(f"{what}: batch_size must be an int, got {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"{what}: batch_size must be at least 1, got {batch_size}.")


def check_epochs(epochs, initial_epoch) -> None:
    for name, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
        if not is_int(value):
            raise TypeError(f"fit: {name} must be an int, got {value!r}.")
        if value < 0:
            raise ValueError(f"fit: {name} must be at least 0, got {value}.")
    if initial_epoch > epochs:
        raise ValueError(
            f"fit: initial_epoch={initial_epoch} is past epochs={epochs}. As in Keras, "
            "epochs is the epoch to train until, not a number of further epochs."
        )


def check_callbacks(callbacks) -> list:
    """The callbacks as a list, each a Callback (Keras raises on a bare callback too)."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        name = type(callbacks).__name__
        raise TypeError(f"fit: callbacks must be a list: write callbacks=[{name}(...)].")
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"fit: callbacks must be a list, got {type(callbacks).__name__}.")
    for k, callback in enumerate(callbacks):
        if not isinstance(callback, Callback):
            raise TypeError(
                f"fit: callbacks[{k}] is a {type(callback).__name__}, not a Callback "
                "(subclass tinycnn.callbacks.Callback)."
            )
    return list(callbacks)


def check_seed(seed) -> None:
    if not is_int(seed):
        raise TypeError(f"fit: seed must be an int >= 0 or None, got {seed!r}.")
    if seed < 0:
        raise ValueError(f"fit: seed must be an int >= 0 or None, got {seed}.")
