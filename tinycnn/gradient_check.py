"""Numerical gradient checks: is ``backward`` really the derivative of ``forward``?

For a layer with output y = f(x), pick a random "upstream gradient" G of y's shape
and look at the scalar L = sum(f(x) * G). Its gradient with respect to x is exactly
what ``backward(G)`` must return, and it can be estimated with central differences:

    dL/dx[i] ~ (L(x + h e_i) - L(x - h e_i)) / (2 h)

one element at a time (the error of this estimate is O(h^2)). The two are compared
with cs231n's relative error, max |a - n| / max(1e-8, |a| + |n|): around 1e-8 or
below means correct, 1e-5 or more means a bug. Everything runs in float64, where
rounding does not hide mistakes.

One line from a notebook::

    tinycnn.gradcheck(Conv2D(4, 3), x)        # a layer (x: float64 array)
    tinycnn.gradcheck(model, x, labels)       # a whole model + softmax cross-entropy
    tinycnn.gradcheck(SoftmaxCrossEntropy(), logits, labels)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy

from . import backend
from .layers import Layer
from .losses import SoftmaxCrossEntropy
from .models.sequential import Sequential


def rel_error(analytic, numeric) -> numpy.ndarray:
    """Element-wise relative error |a - n| / max(1e-8, |a| + |n|) (cs231n)."""
    a, n = backend.to_numpy(analytic), backend.to_numpy(numeric)
    return numpy.abs(a - n) / numpy.maximum(1e-8, numpy.abs(a) + numpy.abs(n))


@dataclass
class GradCheckResult:
    """The comparison for one array (the input, or one parameter)."""

    name: str
    max_rel_error: float
    worst_index: tuple
    analytic: float
    numeric: float


@dataclass
class GradCheckReport:
    """All comparisons of one check. ``ok`` is True when every error is below ``tol``."""

    what: str
    tol: float
    results: list[GradCheckResult] = field(default_factory=list)

    @property
    def max_rel_error(self) -> float:
        return max((r.max_rel_error for r in self.results), default=0.0)

    @property
    def ok(self) -> bool:
        return self.max_rel_error < self.tol

    def __getitem__(self, name: str) -> GradCheckResult:
        return next(r for r in self.results if r.name == name)

    def __str__(self) -> str:
        lines = [
            f"Gradient check of {self.what}: {'OK' if self.ok else 'FAILED'} (tol {self.tol:g})"
        ]
        for r in self.results:
            lines.append(
                f"  {r.name:<12} max rel. error {r.max_rel_error:.2e} at {r.worst_index}: "
                f"analytic {r.analytic:+.6e}, numeric {r.numeric:+.6e}"
            )
        return "\n".join(lines)

    _repr_pretty_ = lambda self, p, cycle: p.text(str(self))  # noqa: E731  (IPython display)


def numerical_gradient(f, array, h: float = 1e-6, indices=None):
    """Central-difference gradient of the scalar function ``f()`` w.r.t. ``array``.

    ``array`` (NumPy or CuPy) is perturbed in place, one element at a time, and
    restored. ``indices`` (flat positions) limits the work to some elements; the
    result is a NumPy float64 array of ``array``'s shape, NaN where not computed.
    """
    grad = numpy.full(array.size, numpy.nan)
    flat = array.reshape(-1)  # a view: writing to it perturbs ``array``
    for i in range(array.size) if indices is None else indices:
        old = float(flat[i])
        flat[i] = old + h
        plus = f()
        flat[i] = old - h
        minus = f()
        flat[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad.reshape(array.shape)


def sample_indices(size: int, max_elements: int | None, rng) -> numpy.ndarray | None:
    """All positions (None) or ``max_elements`` distinct random flat positions."""
    if max_elements is None or size <= max_elements:
        return None
    return numpy.sort(rng.choice(size, size=max_elements, replace=False))


def _compare(name, analytic, numeric) -> GradCheckResult:
    """Worst relative error over the elements where ``numeric`` was computed."""
    a = backend.to_numpy(analytic).astype(numpy.float64)
    checked = ~numpy.isnan(numeric)
    errors = numpy.where(checked, rel_error(a, numpy.where(checked, numeric, a)), -1.0)
    if not checked.any():
        return GradCheckResult(name, 0.0, (), 0.0, 0.0)
    worst = numpy.unravel_index(int(errors.argmax()), errors.shape)
    return GradCheckResult(
        name=name,
        max_rel_error=float(errors[worst]),
        worst_index=tuple(int(i) for i in worst),
        analytic=float(a[worst]),
        numeric=float(numeric[worst]),
    )


def _require_float64(*arrays) -> None:
    for a in arrays:
        if a.dtype != numpy.float64:
            raise TypeError(
                f"gradcheck needs float64 arrays (got {a.dtype}): rounding in float32 hides "
                "bugs. Build the layer under tinycnn.use_floatx('float64') and pass float64 x."
            )


def check_layer(
    layer: Layer,
    x,
    h: float = 1e-6,
    tol: float = 1e-6,
    training: bool = False,
    seed: int = 0,
    max_elements: int | None = None,
) -> GradCheckReport:
    """Check ``layer.backward`` against numerical gradients for its input and parameters.

    Args:
        layer: any layer; built in float64 on first use if not built yet.
        x: float64 input of shape ``(N, *input_shape)``.
        max_elements: check at most this many random elements of each array (None: all).
    """
    with backend.use_floatx("float64"):
        if not layer.built:
            layer.build(x.shape[1:], rng=seed)
    _require_float64(x, *layer.params.values())
    x = x.copy()
    y = layer.forward(x, training=training)
    upstream = backend.to_backend(
        numpy.random.default_rng(seed).standard_normal(y.shape), backend.backend_of(x)
    )

    def loss():
        return float((layer.forward(x, training=training) * upstream).sum())

    layer.forward(x, training=training)
    dx = layer.backward(upstream)
    analytic = {"x": dx, **{k: g.copy() for k, g in layer.grads.items()}}
    report = GradCheckReport(f"{layer._label()}", tol)
    rng = numpy.random.default_rng(seed)
    for name, array in [("x", x), *layer.params.items()]:
        numeric = numerical_gradient(loss, array, h, sample_indices(array.size, max_elements, rng))
        report.results.append(_compare(name, analytic[name], numeric))
    return report


def check_loss(loss_fn, logits, labels, h: float = 1e-6, tol: float = 1e-6) -> GradCheckReport:
    """Check a loss's ``backward`` (dL/dlogits) against numerical gradients."""
    _require_float64(logits)
    logits = logits.copy()
    loss_fn.forward(logits, labels)
    analytic = loss_fn.backward()

    def loss():
        return float(loss_fn.forward(logits, labels))

    report = GradCheckReport(type(loss_fn).__name__, tol)
    report.results.append(_compare("logits", analytic, numerical_gradient(loss, logits, h)))
    return report


def check_model(
    model: Sequential,
    x,
    labels,
    loss_fn=None,
    h: float = 1e-4,
    tol: float = 1e-6,
    max_elements: int | None = None,
    seed: int = 0,
) -> GradCheckReport:
    """Check the whole model end to end: softmax cross-entropy of ``model(x)`` vs ``labels``.

    Compares dL/dx and dL/dparam for every parameter of every layer (or, with
    ``max_elements``, that many random elements of each array).

    The default step h = 1e-4 is larger than for a single layer: through a whole
    network many gradients are tiny (1e-6), and the rounding error of the difference
    quotient, about 1e-16 * L / h, would swamp them at h = 1e-6. The truncation error,
    about h^2 times the third derivative, stays far smaller at h = 1e-4.
    """
    loss_fn = loss_fn or SoftmaxCrossEntropy()
    if not model.built:
        with backend.use_floatx("float64"):
            model.build(x.shape[1:])
    _require_float64(x, *(p for layer in model.layers for p in layer.params.values()))
    x = x.copy()

    def loss():
        return float(loss_fn.forward(model.forward(x, training=False), labels))

    loss()
    dx = model.backward(loss_fn.backward())
    report = GradCheckReport(f"model {model.name!r}", tol)
    rng = numpy.random.default_rng(seed)
    numeric = numerical_gradient(loss, x, h, sample_indices(x.size, max_elements, rng))
    report.results.append(_compare("x", dx, numeric))
    for layer in model.layers:
        for key, param in layer.params.items():
            analytic = layer.grads[key].copy()
            indices = sample_indices(param.size, max_elements, rng)
            numeric = numerical_gradient(loss, param, h, indices)
            report.results.append(_compare(f"{layer.name}/{key}", analytic, numeric))
    return report


def gradcheck(obj, *args, **kwargs) -> GradCheckReport:
    """Check a layer, a loss or a whole model; returns a report (``print`` it).

    ``gradcheck(layer, x)``, ``gradcheck(loss, logits, labels)``, ``gradcheck(model, x, labels)``.
    """
    if isinstance(obj, Sequential):
        return check_model(obj, *args, **kwargs)
    if isinstance(obj, Layer):
        return check_layer(obj, *args, **kwargs)
    if hasattr(obj, "forward") and hasattr(obj, "backward"):
        return check_loss(obj, *args, **kwargs)
    raise TypeError(f"gradcheck: expected a layer, a loss or a model, got {type(obj).__name__}.")
