"""Checking one array: a sample of its elements, plus one direction over all of them.

Arrays larger than ``max_elements`` are checked on a random sample of elements
(:func:`sample_indices`), each moved alone (:func:`_element_mover`), plus one
directional derivative over the whole array (as Chainer's ``check_backward``):
along a random +-1 direction d, (L(p + h d) - L(p - h d)) / 2h must equal
sum(grad * d), which a single wrong element anywhere spoils.
"""

from __future__ import annotations

import math

import numpy

from .. import backend
from .kinks import _Function
from .numeric import ABSOLUTE_FLOOR, element_errors, error_floor, rel_error
from .report import GradCheckResult

ELEMENT_STEPS = (1, 10, 100)  # h, h / 10, h / 100 when a step crosses a kink
DIRECTION_STEPS = (1, 10, 100, 1000, 10000)  # a direction moves every element: more kinks


def sample_indices(size: int, max_elements: int | None, rng) -> numpy.ndarray:
    """All flat positions, or ``max_elements`` distinct random ones (sorted)."""
    if max_elements is None or size <= max_elements:
        return numpy.arange(size)
    return numpy.sort(rng.choice(size, size=max_elements, replace=False))


def _element_mover(array, flat_index):
    """``move(t)``: set one element to its value + t (the unperturbed value for t = 0)."""
    at = numpy.unravel_index(int(flat_index), array.shape)
    old = float(array[at])

    def move(t):
        array[at] = old + t

    return move


def _direction_mover(array, direction):
    base = array.copy()

    def move(t):
        array[...] = base + t * direction if t else base

    return move


def _check_array(name, array, analytic, fn: _Function, h, tol, indices, rng, bar):
    """Compare ``analytic`` (dL/d``array``) with central differences; one result."""
    a = backend.to_numpy(analytic).astype(numpy.float64)
    scale = error_floor(a)
    numeric = numpy.full(a.size, numpy.nan)  # NaN: not measured (not sampled, or skipped)
    rounding = numpy.zeros(a.size)
    remeasured = 0
    for i in indices:
        move = _element_mover(array, i)
        numeric[i], rounding[i], near_kink = fn.derivative(move, h, ELEMENT_STEPS, scale, tol)
        remeasured += near_kink and not math.isnan(numeric[i])
        bar.update(1)
    directional = _directional_error(array, a, fn, h, tol, scale, rng)
    bar.update(1)
    measured = ~numpy.isnan(numeric)
    errors = element_errors(a.reshape(-1)[measured], numeric[measured], rounding[measured], scale)
    element_error = float(errors.max(initial=0.0))
    # the element shown is the one where a and n differ most, rounding or not
    raw = numpy.where(measured, rel_error(a.reshape(-1), numpy.nan_to_num(numeric), scale), -1)
    worst = numpy.unravel_index(int(raw.argmax()), a.shape) if measured.any() else None
    return GradCheckResult(
        name=name,
        max_rel_error=max(element_error, float(numpy.nan_to_num(directional))),
        worst_index=() if worst is None else tuple(int(k) for k in worst),
        analytic=0.0 if worst is None else float(a[worst]),
        numeric=0.0 if worst is None else float(numeric.reshape(a.shape)[worst]),
        checked=len(indices),
        total=int(a.size),
        remeasured=int(remeasured),
        skipped=int(len(indices) - measured.sum()),
        element_error=element_error,
        directional_error=directional,
    )


def _directional_error(array, analytic, fn: _Function, h, tol, scale, rng) -> float:
    """Along a random direction d of +-1 over the whole array, compare sum(analytic * d)
    with the numerical dL/dt of L(array + t d). NaN if every step crossed a kink.

    Relative to |a| (the 2-norm), the typical size of sum(a * d): a single wrong
    element shows as its error over |a|, far above rounding.
    """
    direction = rng.choice([-1.0, 1.0], size=analytic.shape)
    move = _direction_mover(array, backend.to_backend(direction, backend.backend_of(array)))
    slope, rounding, _ = fn.derivative(move, h, DIRECTION_STEPS, scale, tol)
    expected = float((analytic * direction).sum())
    return max(abs(expected - slope) - rounding, 0.0) / max(
        abs(expected) + abs(slope), float(numpy.linalg.norm(analytic)), ABSOLUTE_FLOOR
    )
