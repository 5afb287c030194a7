"""Looking inside a model: every layer's output, and the gradient of a class score
with respect to the input (``Sequential.activations`` and ``Sequential.input_gradient``).

Both work batch by batch, in inference mode, on the model's device, and hand back
NumPy arrays. ``activations`` runs the layers one by one, never fused
(``fusion.py``): the fused step never builds the convolution's output, and here that
output is the point.
"""

from __future__ import annotations

import numpy

from .. import backend
from ..training.checks import check_batch_size, check_data


def activations(model, x, batch_size: int = 32) -> dict:
    """``{layer name: its output (N, *shape)}`` for images ``x``, as NumPy arrays."""
    check_batch_size(batch_size, "activations")
    x, _ = check_data(model, x, None, "activations")  # builds the model if needed
    where = model.backend_name()
    outputs = {
        layer.name: numpy.empty((len(x), *shape), dtype=layer.dtype)
        for layer, shape in zip(model.layers, model.output_shapes(), strict=True)
    }
    for start in range(0, len(x), batch_size):
        a = backend.to_backend(x[start : start + batch_size], where)
        for layer in model.layers:
            a = layer.forward(a, training=False, check_finite=False)
            outputs[layer.name][start : start + len(a)] = backend.to_numpy(a)
    model.clear_caches()
    return outputs


def input_gradient(model, x, class_index, batch_size: int = 32):
    """d(logit of ``class_index``)/dx for one image or a batch, as a NumPy array."""
    check_batch_size(batch_size, "input_gradient")
    one_image = model.input_shape is not None and getattr(x, "ndim", None) == len(model.input_shape)
    if one_image:
        x = x[None]
    x, _ = check_data(model, x, None, "input_gradient")
    classes = model.output_shapes()[-1][-1]
    index = class_indices(class_index, len(x), classes)
    where = model.backend_name()
    grads = []
    for start in range(0, len(x), batch_size):
        batch = backend.to_backend(x[start : start + batch_size], where)
        logits = model.forward(batch, training=False, check_finite=False)
        # d(logit[i, c_i])/d(logits) is 1 at (i, c_i) and 0 elsewhere: backpropagate that
        seed = backend.get_array_module(logits).zeros_like(logits)
        rows = numpy.arange(len(logits))
        columns = index[start : start + len(logits)]
        seed[backend.to_backend(rows, where), backend.to_backend(columns, where)] = 1
        grads.append(backend.to_numpy(model.backward(seed)))
    model.clear_caches()
    if not grads:  # no images
        return numpy.zeros(x.shape, dtype=model.layers[0].dtype)
    grad = numpy.concatenate(grads)
    return grad[0] if one_image else grad


def class_indices(class_index, n: int, classes: int) -> numpy.ndarray:
    """``class_index`` (one int, or one per image) as ``n`` checked integers."""
    index = numpy.asarray(backend.to_numpy(class_index))
    if index.dtype.kind not in "iu":
        raise TypeError(
            f"input_gradient: class_index must be an int (or one int per image), got "
            f"{class_index!r}."
        )
    if index.ndim == 0:
        index = numpy.full(n, int(index))
    if index.shape != (n,):
        raise ValueError(
            f"input_gradient: class_index must be one int or {n} of them (one per image), "
            f"got shape {index.shape}."
        )
    if n and (index.min() < 0 or index.max() >= classes):
        raise ValueError(
            f"input_gradient: class_index must lie in [0, {classes - 1}] (the model has "
            f"{classes} classes), got values from {index.min()} to {index.max()}."
        )
    return index
