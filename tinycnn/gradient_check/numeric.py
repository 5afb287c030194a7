"""Central differences and the error measure: the arithmetic of a gradient check.

A central difference (f(x + h) - f(x - h)) / 2h estimates f'(x) with an error of
h^2 f''' / 6 (truncation) plus the rounding of the two evaluations divided by 2h,
so h cannot be as small as one likes: 1e-6 for a layer, 1e-5 for a loss.

The error of one element, analytic a against numeric n, is
max(|a - n| - r, 0) / max(|a| + |n|, floor): r bounds the rounding of n (a few ulps,
``ROUNDING``, of what the difference subtracted, over 2h), so only a difference that
rounding cannot explain counts; floor = max(1e-3 * max|a|, 1e-8) over the whole
array, so a tiny gradient next to large ones is judged against the array's scale.
"""

from __future__ import annotations

import numpy

from .. import backend

LAYER_H = 1e-6  # the output difference keeps rounding small; a small step crosses few kinks
SCALAR_H = 1e-5  # a loss: rounding ~1e-16 * L / h needs a larger step (not 1e-4: truncation)
SCALE_FLOOR = 1e-3  # per-element errors are relative to at least 1e-3 * max|gradient|
ABSOLUTE_FLOOR = 1e-8  # ... and to at least 1e-8 (cs231n's floor)
ROUNDING = 4 * float(numpy.finfo(numpy.float64).eps)  # rounding bound per unit subtracted


def rel_error(analytic, numeric, floor=ABSOLUTE_FLOOR) -> numpy.ndarray:
    """Element-wise |a - n| / max(|a| + |n|, floor) (cs231n's, with a floor of one's choice)."""
    a, n = backend.to_numpy(analytic), backend.to_numpy(numeric)
    return numpy.abs(a - n) / numpy.maximum(floor, numpy.abs(a) + numpy.abs(n))


def error_floor(analytic) -> float:
    """The floor of the relative error for one array: max(1e-3 * max|a|, 1e-8)."""
    a = backend.to_numpy(analytic)
    return max(SCALE_FLOOR * float(numpy.abs(a).max(initial=0.0)), ABSOLUTE_FLOOR)


def numerical_gradient(f, array, h: float = LAYER_H, indices=None):
    """Central-difference gradient of the scalar function ``f()`` w.r.t. ``array``.

    The plain textbook loop, no kink handling (``gradcheck`` does that). ``array``
    (NumPy or CuPy) is perturbed in place, one element at a time, and restored.
    ``indices`` (flat positions) limits the work; the result is a NumPy float64
    array of ``array``'s shape, NaN where not computed.
    """
    grad = numpy.full(array.size, numpy.nan)
    for i in range(array.size) if indices is None else indices:
        at = numpy.unravel_index(int(i), array.shape)
        old = float(array[at])
        array[at] = old + h
        plus = f()
        array[at] = old - h
        minus = f()
        array[at] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad.reshape(array.shape)


def element_errors(analytic, numeric, rounding, floor) -> numpy.ndarray:
    """max(|a - n| - rounding, 0) / max(|a| + |n|, floor), element by element: the part
    of the difference that rounding cannot explain, relative to the gradient's size."""
    return numpy.maximum(numpy.abs(analytic - numeric) - rounding, 0.0) / numpy.maximum(
        floor, numpy.abs(analytic) + numpy.abs(numeric)
    )
