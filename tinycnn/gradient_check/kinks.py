"""Kinks: where the derivative jumps, and how a check measures near one.

ReLU and max-pooling are not differentiable at pre-activation 0 or at a tie in a
window; a step that crosses such a kink measures the slope of the other side. Each
forward pass records the on/off pattern of every kink (:func:`kink_pattern`: ReLU
masks, pool winners). :class:`_Function` measures dL/dt along one direction: the
central difference where neither step crosses, else the one-sided difference on the
side that keeps the base point's pattern, else again with a smaller step (h / 10,
h / 100...), and NaN if every step crosses on both sides. A custom layer that does
not declare its kinks (:func:`kinks_declared`) is also re-measured where its output
bends, f(x + h) - f(x) != f(x) - f(x - h) beyond rounding.
"""

from __future__ import annotations

import math

from .. import backend
from ..layers import LAYER_CLASSES, Activation, Conv2D, Dense, MaxPooling2D, ReLU
from .numeric import ROUNDING

KINKED = ("relu", "leaky_relu")  # the activations with a kink, at pre-activation 0


def kink_pattern(layer, x, y):
    """What decides which side of a kink ``layer`` is on, for input x and output y.

    ReLU and leaky ReLU (a layer, or the activation of Conv2D, Dense and Activation):
    which outputs are positive, that is which pre-activations are (y > 0 exactly where
    z > 0, both slopes being positive). MaxPooling2D: which element won each window. A
    step that changes this crossed a kink. A custom layer with kinks may define
    ``kink_pattern(self, x, y)`` returning such an array (a LeakyReLU: ``x > 0``);
    ``None`` means no kinks.
    """
    own = getattr(layer, "kink_pattern", None)
    if callable(own):
        try:
            pattern = own(x, y)
        except TypeError as err:
            if "positional argument" not in str(err):
                raise
            raise TypeError(
                f"{layer._label()}.kink_pattern: write it as kink_pattern(self, x, y), x the "
                f"layer's input and y its output ({err})."
            ) from err
        if pattern is not None and not hasattr(pattern, "shape"):
            raise TypeError(
                f"{layer._label()}.kink_pattern(x, y) must return an array (such as x > 0) "
                f"or None, got {type(pattern).__name__}."
            )
        return pattern
    if isinstance(layer, ReLU) or (
        isinstance(layer, (Conv2D, Dense, Activation)) and layer.activation in KINKED
    ):
        return y > 0
    if isinstance(layer, MaxPooling2D):
        return layer.cache[0].copy()  # the argmax of each window
    return None


def kinks_declared(layer) -> bool:
    """Whether :func:`kink_pattern` knows every kink of ``layer``: a built-in layer's
    (ReLU masks, pool winners, or none at all), or those of a layer that defines its own
    ``kink_pattern``. Else (a class of yours, a subclass of a built-in one included) the
    check also looks for bends."""
    own = callable(getattr(layer, "kink_pattern", None))
    return own or type(layer) in LAYER_CLASSES.values()


def _same_pattern(patterns, others) -> bool:
    return all(p is None or bool((p == q).all()) for p, q in zip(patterns, others, strict=True))


class _Function:
    """The scalar L for one checked array: ``run()`` re-runs the forward pass after the
    array was changed in place and returns (output, kink patterns).

    For a layer the output is y and L = sum(y * upstream); for a model or a loss the
    output is L itself (``upstream`` is None). ``find_bends``: also call it a kink where
    the output bends (:meth:`bend`), for a layer whose kinks no pattern declares.
    """

    def __init__(self, run, upstream=None, find_bends: bool = False):
        self.run, self.upstream, self.find_bends = run, upstream, find_bends
        self.base, self.base_pattern = self._copy(run())

    def _copy(self, result):
        """A layer's output may be a view of x (Flatten): copy it before x moves again."""
        out, pattern = result
        return (out if self.upstream is None else out.copy()), pattern

    def change(self, a, b) -> float:
        """L(a) - L(b), from two outputs: the difference first (see the package doc)."""
        if self.upstream is None:
            return a - b
        return float(((a - b) * self.upstream).sum())

    def rounding(self, a, b) -> float:
        """A bound on the rounding error of ``change(a, b)``: a few ulps of what was
        subtracted (of L for a scalar; of the outputs that changed, for a layer)."""
        if self.upstream is None:
            return ROUNDING * (abs(a) + abs(b))
        xp = backend.get_array_module(a)
        weights = (xp.abs(a) + xp.abs(b)) * xp.abs(self.upstream)
        return ROUNDING * float(weights[a != b].sum())

    def bend(self, a, b, c) -> float:
        """For a layer: |f(a) - 2 f(b) + f(c)| weighted by |upstream|, less its rounding,
        for three equally spaced points: a kink between them bends it by (slope jump) *
        (distance), a smooth curve by f'' * t^2. Finds kinks that no pattern declares
        (custom layers); 0 unless ``find_bends`` (a model or a loss: always 0)."""
        if self.upstream is None or not self.find_bends:
            return 0.0
        xp = backend.get_array_module(a)
        bend = float((xp.abs(a - 2 * b + c) * xp.abs(self.upstream)).sum())
        return max(bend - 2 * self.rounding(a, c), 0.0)

    def derivative(self, move, h: float, steps, scale: float, tol: float):
        """dL/dt of L(p + t d) at t = 0, where ``move(t)`` sets the array to p + t d.

        For each step t = h / s, s in ``steps``: the central difference if neither
        p + t d nor p - t d crosses a kink; else, if the kink patterns show that only
        one side crosses, the one-sided difference on the other side, if it stays
        clear up to 2t: the base point's side of the kink, whose slope is the one
        backward computes (also when the base point sits exactly on it). Returns (estimate, its rounding bound, whether a
        kink was in reach); NaN, NaN, True if every step crossed one on both sides.
        """
        for tries, divisor in enumerate(steps):
            t = h / divisor
            plus, minus = self._at(move, t), self._at(move, -t)
            found = self._central(plus, minus, t, scale, tol)
            for side, near, other in ((1, plus, minus), (-1, minus, plus)):
                # only where a pattern tells on which side of the kink the base point is
                if found is None and self._same_side(near) and not self._same_side(other):
                    far = self._at(move, 2 * side * t)
                    found = self._one_sided(side, near, far, t, scale, tol)
            move(0.0)
            if found is not None:
                estimate, rounding, one_sided = found
                return estimate, rounding, one_sided or tries > 0
        return math.nan, math.nan, True

    def _central(self, plus, minus, t, scale, tol):
        """(f(t) - f(-t)) / 2t, error O(t^2)."""
        if not (self._same_side(plus) and self._same_side(minus)):
            return None
        estimate = self.change(plus[0], minus[0]) / (2 * t)
        if self.bend(plus[0], self.base, minus[0]) / (2 * t) > tol / 4 * max(abs(estimate), scale):
            return None
        return estimate, self.rounding(plus[0], minus[0]) / (2 * t), False

    def _one_sided(self, side, near, far, t, scale, tol):
        """(4 (f(t) - f(0)) - (f(2t) - f(0))) / 2t, error O(t^2); side -1 mirrors it."""
        if not self._same_side(far):
            return None
        base, near, far = self.base, near[0], far[0]
        estimate = side * (4 * self.change(near, base) - self.change(far, base)) / (2 * t)
        if self.bend(base, near, far) / (2 * t) > tol / 4 * max(abs(estimate), scale):
            return None
        rounding = (4 * self.rounding(near, base) + self.rounding(far, base)) / (2 * t)
        return estimate, rounding, True

    def _same_side(self, point) -> bool:
        """Did the point keep the base point's kink pattern (no kink crossed)?"""
        return _same_pattern(point[1], self.base_pattern)

    def _at(self, move, t):
        move(t)
        return self._copy(self.run())
