"""Grad-CAM: which regions of a convolution layer's output raise a class's score.

For the feature maps A (h, w, K) of a convolution layer and the score y_c of class
c (its logit), Grad-CAM (Selvaraju et al., 2017) weighs each channel k by the mean
gradient over the map, then keeps the positive part of the weighted sum:

    alpha_k = mean over (i, j) of dy_c / dA[i, j, k]
    cam     = max(0, sum over k of alpha_k * A[:, :, k])          (h, w)

The gradient comes from tinycnn's own backward pass: the layers run forward one by
one (inference mode, each keeps its cache), then ``backward`` runs from the class
score down to the chosen layer only. The last convolution keeps the most spatial
detail of the deepest features, so it is the default.
"""

from __future__ import annotations

import numpy

from .. import backend
from ..layers import Conv2D
from .checks import check_class, find_layer, one_class, one_image


def gradcam_map(model, image, label, layer=None) -> numpy.ndarray:
    """The Grad-CAM map ``(h, w)`` (>= 0) of class ``label`` at ``layer``'s output.

    Args:
        model: a ``Sequential`` whose output is the class scores.
        image: one image ``(H, W, C)`` or ``(1, H, W, C)``.
        label: the class (an index, or one image's scores: argmax).
        layer: a name, index or layer whose output is ``(h, w, K)``; by default the
            last Conv2D (or, without one, the last layer with such an output).
    """
    x = one_image(model, image, "gradcam_map")
    klass = one_class(label, "gradcam_map")
    check_class(klass, model, "gradcam_map")
    index = target_layer(model, layer)
    features, grad = _features_and_gradient(model, x, klass, index)
    weights = grad.mean(axis=(0, 1))  # alpha_k, (K,)
    return numpy.maximum((features * weights).sum(axis=-1), 0.0)


def target_layer(model, layer=None) -> int:
    """The index of the layer Grad-CAM looks at (see :func:`gradcam_map`)."""
    shapes = model.output_shapes()
    spatial = [k for k, shape in enumerate(shapes[:-1]) if len(shape) == 3]
    if layer is not None:
        index = find_layer(model, layer, "gradcam_map")
        if index not in spatial:
            names = [model.layers[k].name for k in spatial]
            raise ValueError(
                f"gradcam_map: layer {model.layers[index].name!r} outputs shape "
                f"{shapes[index]}, not feature maps (h, w, K) before the last layer; choose "
                f"one of {names}."
            )
        return index
    convolutions = [k for k in spatial if isinstance(model.layers[k], Conv2D)]
    if convolutions or spatial:
        return (convolutions or spatial)[-1]
    raise ValueError(
        "gradcam_map: the model has no layer with feature maps (h, w, K) to look at; "
        "Grad-CAM needs a convolution."
    )


def _features_and_gradient(model, x, klass: int, index: int):
    """A = layer ``index``'s output for ``x`` and dy_klass/dA, both ``(h, w, K)`` NumPy."""
    a = backend.to_backend(x, model.backend_name())
    try:
        for k, layer in enumerate(model.layers):
            a = layer.forward(a, training=False, check_finite=k == 0)
            if k == index:
                features = a
        # d(score of klass)/d(scores) is 1 at klass and 0 elsewhere; backpropagate it
        grad = backend.get_array_module(a).zeros_like(a)
        grad[0, klass] = 1
        for layer in reversed(model.layers[index + 1 :]):
            grad = layer.backward(grad)
    finally:
        model.clear_caches()  # the caches of one image are of no further use
    return backend.to_numpy(features)[0].astype(numpy.float64), backend.to_numpy(grad)[0]
