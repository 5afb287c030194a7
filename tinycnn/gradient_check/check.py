"""The driver: :func:`gradcheck` and the three checks it dispatches to.

:func:`check_layer` compares ``layer.backward`` with central differences of
L = sum(layer(x) * G) for a random upstream gradient G; :func:`check_model` the
whole model plus its loss, re-running the forward pass from the layer whose weight
moved; :func:`check_loss` a loss's dL/dlogits. Each one prepares the float64 copy
(state.py), builds the scalar function (kinks.py), checks every array
(sampling.py) and returns a report (report.py).
"""

from __future__ import annotations

import copy
import time

import numpy

from .. import backend
from ..layers import Layer
from ..losses import SoftmaxCrossEntropy
from ..models.sequential import Sequential
from ..training.progress import progress_bar_class
from .kinks import _Function, kink_pattern, kinks_declared
from .numeric import LAYER_H, SCALAR_H
from .report import GradCheckReport
from .sampling import _check_array, sample_indices
from .state import (
    _FixedDropoutMasks,
    _float64_input,
    _KeptNonTrainable,
    _needs_float64_copy,
    _one_blas_thread,
    _to_float64,
)

PROGRESS_DELAY = 3.0  # seconds before the progress bar appears


def _with_gradients(layer) -> list:
    """``(key, param)`` for each parameter backward computes a gradient of: all but a
    weight the layer updates itself (``layer.non_trainable``) left without one."""
    return [
        (k, p)
        for k, p in layer.params.items()
        if k not in layer.non_trainable or layer.grads.get(k) is not None
    ]


def _progress(total: int, what: str, enabled: bool):
    """A bar that appears only when the check takes more than 3 seconds."""
    return progress_bar_class()(  # tqdm's, chosen quietly (see training/progress.py)
        total=total, desc=f"gradcheck {what}", unit="check", delay=PROGRESS_DELAY,
        disable=not enabled,
    )  # fmt: skip


def _check_all(report, targets, h, tol, max_elements, rng, progress) -> None:
    """Check every (name, array, analytic gradient, scalar function) of ``targets``."""
    samples = [sample_indices(array.size, max_elements, rng) for _, array, _, _ in targets]
    with _progress(sum(len(s) + 1 for s in samples), report.what, progress) as bar:
        for (name, array, analytic, fn), indices in zip(targets, samples, strict=True):
            result = _check_array(name, array, analytic, fn(), h, tol, indices, rng, bar)
            report.results.append(result)


def check_layer(
    layer: Layer,
    x,
    h: float = LAYER_H,
    tol: float = 1e-6,
    max_elements: int | None = 200,
    training: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> GradCheckReport:
    """Check ``layer.backward`` against central differences of L = sum(layer(x) * G).

    Args:
        layer: any layer; built in float64 (seeded by ``seed``) if not built yet.
            A float32 layer is checked as a float64 copy and left untouched.
        x: input of shape ``(N, *input_shape)``; a float64 copy is used.
        h: the step; it shrinks to h / 10 and h / 100 where it crosses a kink.
        tol: the largest relative error that passes.
        max_elements: arrays larger than this are checked on this many random elements
            (plus one random direction over all of them); None checks every element.
        training: run the layer in training mode (Dropout: with one fixed mask).
        seed: seeds G, the sample of elements, the direction and the Dropout mask.
        progress: show a progress bar when the check takes more than a few seconds.
    """
    start, notes = time.perf_counter(), []
    if _needs_float64_copy([layer], layer.built):
        notes.append(f"checked a float64 copy of {layer._label()} (the layer is untouched)")
        layer = copy.deepcopy(layer)
        _to_float64([layer])
    if not layer.built:
        with backend.use_floatx("float64"):
            layer.build(x.shape[1:], rng=seed)
    x = _float64_input(x, notes)
    rng = numpy.random.default_rng(seed)
    report = GradCheckReport(layer._label(), tol, h, notes=notes)
    kept = _KeptNonTrainable([layer])
    with _FixedDropoutMasks([layer], seed, training, notes), kept, _one_blas_thread():
        y = layer.forward(x, training=training)
        kept.restore()
        upstream = backend.to_backend(rng.standard_normal(y.shape), backend.backend_of(y))
        analytic = {"x": layer.backward(upstream)}
        analytic.update({key: layer.grads[key].copy() for key, _ in _with_gradients(layer)})

        def run():
            y = layer.forward(x, training=training, check_finite=False)
            kept.restore()
            return y, [kink_pattern(layer, x, y)]

        # one function of x and the parameters
        fn = _Function(run, upstream, find_bends=not kinks_declared(layer))
        targets = [
            (name, a, analytic[name], lambda: fn) for name, a in [("x", x), *_with_gradients(layer)]
        ]
        _check_all(report, targets, h, tol, max_elements, rng, progress)
    report.seconds = time.perf_counter() - start
    return report


def check_model(
    model: Sequential,
    x,
    labels,
    loss_fn=None,
    h: float = SCALAR_H,
    tol: float = 1e-6,
    max_elements: int | None = 200,
    training: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> GradCheckReport:
    """Check the whole model end to end: the gradient of ``loss_fn(model(x), labels)``
    (softmax cross-entropy by default) with respect to x and every parameter.

    The other arguments are :func:`check_layer`'s. The step h = 1e-5 is larger than a
    layer's: the loss is one number, whose rounding (1e-16 * L) the division by 2h
    enlarges, and through a whole network many gradients are small. It is no larger:
    the truncation error h^2 f''' / 6 of a curved loss (BatchNormalization in training
    over a small batch) reached 9e-5 at h = 1e-4, and the rounding is excused anyway. To save time,
    moving a parameter of layer k re-runs the forward pass from layer k only.
    """
    start, notes = time.perf_counter(), []
    loss_fn = loss_fn or SoftmaxCrossEntropy()
    if _needs_float64_copy(model.layers, model.built):
        notes.append(f"checked a float64 copy of model {model.name!r} (the model is untouched)")
        model = copy.deepcopy(model)
        _to_float64(model.layers)
    if not model.built:
        with backend.use_floatx("float64"):
            model.build(x.shape[1:])
    x = _float64_input(x, notes)
    rng = numpy.random.default_rng(seed)
    report = GradCheckReport(f"model {model.name!r}", tol, h, notes=notes)
    layers = model.layers
    kept = _KeptNonTrainable(layers)
    with _FixedDropoutMasks(layers, seed, training, notes), kept, _one_blas_thread():
        loss_fn.forward(model.forward(x, training=training), labels)
        kept.restore()
        targets = [("x", x, model.backward(loss_fn.backward()), 0)]  # (name, array, grad, k)
        for k, layer in enumerate(layers):
            for key, param in _with_gradients(layer):
                targets.append((f"{layer.name}/{key}", param, layer.grads[key].copy(), k))
        inputs = [x]  # inputs[k]: the input of layer k, unperturbed
        for layer in layers[:-1]:
            inputs.append(layer.forward(inputs[-1], training=training, check_finite=False))
        kept.restore()

        def from_layer(k):
            """L as a function of x or of layer k's weights: the forward from layer k on."""

            def run():
                a, patterns = inputs[k], []
                for layer in layers[k:]:
                    y = layer.forward(a, training=training, check_finite=False)
                    patterns.append(kink_pattern(layer, a, y))
                    a = y
                kept.restore()
                return float(loss_fn.forward(a, labels)), patterns

            return lambda: _Function(run)

        targets = [(name, p, grad, from_layer(k)) for name, p, grad, k in targets]
        _check_all(report, targets, h, tol, max_elements, rng, progress)
    report.seconds = time.perf_counter() - start
    return report


def check_loss(
    loss_fn, logits, labels, h: float = SCALAR_H, tol: float = 1e-6, seed: int = 0
) -> GradCheckReport:
    """Check a loss's ``backward`` (dL/dlogits) against central differences, every element."""
    start, notes = time.perf_counter(), []
    logits = _float64_input(logits, notes, "logits")
    loss_fn.forward(logits, labels)
    analytic = backend.to_numpy(loss_fn.backward()).copy()
    fn = _Function(lambda: (float(loss_fn.forward(logits, labels)), []))
    report = GradCheckReport(type(loss_fn).__name__, tol, h, notes=notes)
    rng = numpy.random.default_rng(seed)
    _check_all(report, [("logits", logits, analytic, lambda: fn)], h, tol, None, rng, False)
    report.seconds = time.perf_counter() - start
    return report


def gradcheck(
    obj,
    x,
    labels=None,
    *,
    h: float | None = None,
    tol: float = 1e-6,
    max_elements: int | None = 200,
    training: bool = False,
    seed: int = 0,
    loss_fn=None,
    progress: bool = True,
) -> GradCheckReport:
    """Check a layer, a loss or a whole model; returns a report (``print`` it).

    ``gradcheck(layer, x)``, ``gradcheck(model, x, labels)``, ``gradcheck(loss, logits, labels)``.

    Args:
        h: the step of the central differences; None: 1e-6 for a layer, 1e-5 for a
            model or a loss. Where a step crosses a kink (a ReLU input near 0, a
            near-tie in a max-pool window) the element is measured again with h / 10
            and h / 100, and skipped if it still crosses (more than 10% skipped fails).
        tol: the largest relative error that passes, ``max(|a - n| - rounding, 0) /
            max(|a| + |n|, 1e-3 * max|a|)`` per element (a correct backward: 0 to 1e-8).
        max_elements: how many random elements of each larger array to check one by
            one (None: all). One random direction always covers every element.
        training: run in training mode; Dropout then uses one fixed mask.
        seed: seeds the random choices (upstream gradient, elements, direction, mask).
        loss_fn: a model's loss (default: softmax cross-entropy).
        progress: show a progress bar when the check takes more than a few seconds.

    A float32 layer or model is checked as a float64 copy (the original is untouched).
    """
    if isinstance(obj, Sequential):
        if labels is None:
            raise TypeError("gradcheck(model, x, labels): a model needs the labels of x.")
        h = SCALAR_H if h is None else h
        return check_model(obj, x, labels, loss_fn, h, tol, max_elements, training, seed, progress)
    if isinstance(obj, Layer):
        h = LAYER_H if h is None else h
        return check_layer(obj, x, h, tol, max_elements, training, seed, progress)
    if hasattr(obj, "forward") and hasattr(obj, "backward"):
        if labels is None:
            raise TypeError("gradcheck(loss, logits, labels): a loss needs the labels.")
        return check_loss(obj, x, labels, SCALAR_H if h is None else h, tol, seed)
    raise TypeError(f"gradcheck: expected a layer, a loss or a model, got {type(obj).__name__}.")
