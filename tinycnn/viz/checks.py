"""The arguments every picture takes, checked once: arrays of either backend brought
to NumPy, class indices from labels or scores, one image for a model, a layer by name,
index or object. Each bad argument gets a short error that says what was expected."""

from __future__ import annotations

import numpy

from .. import backend
from ..layers import Layer
from ..layers.activations import softmax


def as_numpy(values, what: str) -> numpy.ndarray:
    """``values`` (a NumPy or CuPy array, a list) as a NumPy array."""
    if values is None:
        raise TypeError(f"{what}: expected an array, got None.")
    return numpy.asarray(backend.to_numpy(values))


def class_indices(values, what: str) -> numpy.ndarray:
    """Class indices ``(N,)`` from indices ``(N,)`` or scores ``(N, classes)`` (argmax)."""
    values = as_numpy(values, what)
    if values.ndim == 2:  # scores, logits or probabilities: the largest wins
        return values.argmax(axis=1)
    if values.ndim != 1:
        raise ValueError(
            f"{what}: expected class indices (N,) or scores (N, classes), got shape {values.shape}."
        )
    if values.dtype.kind not in "iu":
        raise TypeError(
            f"{what}: class indices must be integers, got {values.dtype}; pass scores as a "
            "2-D array (N, classes) to take their argmax."
        )
    if values.size and values.min() < 0:
        raise ValueError(f"{what}: class indices must be >= 0, got {values.min()}.")
    return values.astype(numpy.int64)


def one_class(label, what: str) -> int:
    """One class index from an int (or a 0-d array), or the scores of one image
    ``(classes,)`` / ``(1, classes)``, reduced with argmax."""
    values = as_numpy(label, what)
    if values.dtype.kind in "iu" and values.size == 1:
        return int(values.reshape(()))
    one_row = values.ndim in (1, 2) and values.size == values.shape[-1] > 1
    if values.dtype.kind == "f" and one_row:
        return int(values.reshape(-1).argmax())
    raise ValueError(
        f"{what}: label must be one class index (an int) or the scores of one image "
        f"(classes,), got {values.dtype} of shape {values.shape}."
    )


def check_class(index: int, model, what: str) -> None:
    classes = model.output_shapes()[-1][-1]
    if not 0 <= index < classes:
        raise ValueError(
            f"{what}: class {index} does not exist: the model has {classes} classes "
            f"(0 to {classes - 1})."
        )


def one_image(model, image, what: str) -> numpy.ndarray:
    """``image`` ``(H, W, C)`` or ``(1, H, W, C)`` as a float NumPy batch of one,
    ``(1, H, W, C)``, checked against the model (which is built from it if needed)."""
    x = as_numpy(image, what)
    expected = model.input_shape
    rank = len(expected) if expected is not None else 3
    if x.ndim == rank + 1 and x.shape[0] != 1:
        raise ValueError(
            f"{what}: expected one image, got a batch of {x.shape[0]} (shape {x.shape}); "
            "pass x[k] for image k."
        )
    if x.ndim == rank:
        x = x[None]
    if x.ndim != rank + 1:
        hint = ""
        if expected is not None and x.ndim == rank - 1 and expected[-1] == 1:
            hint = " A grey image needs its channel axis: image[..., None]."
        shape = "(H, W, C)" if rank == 3 else str(tuple(expected))
        raise ValueError(
            f"{what}: expected one image of shape {shape} or a batch of one (1, ...), got "
            f"shape {x.shape}.{hint}"
        )
    if x.dtype.kind != "f":
        raise TypeError(
            f"{what}: the image must hold floats, got {x.dtype}; scale it as the model's "
            "training data was, e.g. tinycnn.preprocessing.prepare_images."
        )
    model.check_sample_shape(x, what)  # the model's own message; builds it if needed
    return x


def find_layer(model, layer, what: str) -> int:
    """The index in ``model.layers`` of ``layer``: a name, an index or the layer itself."""
    layers = model.layers
    names = [each.name for each in layers]
    if isinstance(layer, Layer):
        for k, each in enumerate(layers):
            if each is layer:
                return k
        raise ValueError(f"{what}: {layer!r} is not a layer of this model; its layers: {names}.")
    if isinstance(layer, (int, numpy.integer)) and not isinstance(layer, bool):
        if not -len(layers) <= layer < len(layers):
            raise IndexError(
                f"{what}: layer index {layer} is out of range: the model has {len(layers)} "
                f"layers ({names})."
            )
        return int(layer) % len(layers)
    if isinstance(layer, str):
        if layer not in names:
            raise ValueError(f"{what}: no layer named {layer!r}; the model's layers: {names}.")
        return names.index(layer)
    raise TypeError(
        f"{what}: layer must be a name, an index or a layer of the model, got "
        f"{type(layer).__name__}."
    )


def class_label(index: int, class_names) -> str:
    """``class_names[index]``, or the index itself when there are no names."""
    if class_names is not None and 0 <= index < len(class_names):
        return str(class_names[index])
    return str(index)


def probabilities(model, x) -> numpy.ndarray:
    """Class probabilities ``(N, classes)`` for images ``x``: the softmax of the logits,
    or the output itself when the last layer already applies softmax."""
    out = backend.to_numpy(model.predict(x, batch_size=128))
    if getattr(model.layers[-1], "activation", None) == "softmax":
        return out
    return softmax(out.astype(numpy.float64))
